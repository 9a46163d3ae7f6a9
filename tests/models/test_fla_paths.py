"""flash-linear-attention paths: the recurrent families' scan and SUPRA's decayed attention on fla's Triton kernels
equal the plain references, forward and gradients.

Two places run the same checks (``fla_checks.py``):

* everywhere fla is installed (``pip install birdie-lm[fla]``, part of ``[dev]``): the fla wiring on CPU tensors
  under Triton's interpreter, op by op and inside whole tiny models, in a subprocess (``fla_interpreted.py``),
  so the interpreter never leaks into other tests;
* on a CUDA GPU: the public functions, so the real dispatch picks the compiled kernels
  (``fused_recurrent_hgrn`` for scans, ``chunk_simple_gla`` for SUPRA), and whole tiny models of the recurrent
  families against the same models on the CPU's chunked forms.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import fla_checks
from birdie.models.kernels.backend import fla_available, uses_fla
from birdie.models.kernels.decay_attention import decay_linear_attention
from birdie.models.kernels.scan import linear_scan
from birdie.models.kernels.scan.fla import fla_linear_scan

needs_fla = pytest.mark.skipif(not fla_available(), reason="flash-linear-attention not installed: "
                                                          "pip install 'birdie-lm[fla]'")
needs_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_cpu_tensors_stay_on_the_chunked_forms():
    assert not uses_fla(torch.zeros(1))


def test_fla_scan_rejects_negative_decays_instead_of_returning_nan():
    a = torch.full((1, 4, 2), 0.5)
    a[0, 2, 1] = -0.5
    with pytest.raises(ValueError, match="a >= 0"):
        fla_linear_scan(a, torch.ones(1, 4, 2))


@needs_fla
@pytest.mark.slow
@pytest.mark.multiprocess
def test_fla_wiring_under_triton_interpreter():
    here = Path(__file__).parent
    env = {**os.environ, "TRITON_INTERPRET": "1", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W",
               "ignore:Triton is not supported on current platform", str(here / "fla_interpreted.py")]
    result = subprocess.run(command, env=env, cwd=here.parent.parent, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and "skipped" not in result.stdout, result.stdout[-2000:]


@needs_gpu
@needs_fla
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("case", fla_checks.SCAN_CASES)
def test_linear_scan_on_gpu_matches_reference(case, reverse):
    assert uses_fla(torch.zeros(1, device="cuda"))
    assert not uses_fla(torch.zeros(1, dtype=torch.float64, device="cuda")), "fla has no float64 kernels"
    fla_checks.assert_scan_matches_reference(linear_scan, "cuda", case, reverse)


@needs_gpu
@needs_fla
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_decay_attention_on_gpu_matches_reference(dtype):
    # chunk_simple_gla's float32 matmuls may run in TF32 on the GPU.
    fla_checks.assert_decay_attention_matches_reference(decay_linear_attention, "cuda", dtype, tolerance=2e-3)


@needs_gpu
@needs_fla
@pytest.mark.parametrize("family, bidirectional_layers", fla_checks.MODEL_CASES)
def test_models_on_gpu_match_the_chunked_forms(family, bidirectional_layers, monkeypatch):
    # Hawk's temporal conv would otherwise run in TF32 (cuDNN's default); chunk_simple_gla's matmuls still may.
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    fla_checks.assert_model_matches_chunked(family, bidirectional_layers, "cuda", contextlib.nullcontext(), 2e-3)
