"""The sequence kernels of the recurrent families, one folder per op, flash-linear-attention style.

Each op keeps its forms apart, with one contract:

* ``naive.py``: the definition as a plain loop over time steps, the oracle the other forms are tested against
  (forward and gradients); never used by the models.
* ``chunked.py``: the form that runs on any device (training, prefill, float64 checks).
* ``fla.py``: the same contract on flash-linear-attention's Triton kernels (``pip install birdie-lm[fla]``),
  imported lazily and never required.
* ``__init__.py``: the dispatching entry point the models call, which picks ``fla.py`` on CUDA with fla
  installed (:func:`birdie.models.kernels.backend.uses_fla`) and ``chunked.py`` otherwise.

Ops: :mod:`birdie.models.kernels.scan` (``h_t = a_t * h_{t-1} + x_t``: Hawk, Gated SSM, the curriculum's
reward model) and :mod:`birdie.models.kernels.decay_attention` (SUPRA's decayed linear attention). The packing
rules of a (bidirectional) layer over packed rows live with the layers, in :mod:`birdie.models.recurrence`.
"""
