"""A user module for the harness bridge written with numpy alone (standing in for a JAX or other framework model).

It is a tiny random-weight Elman RNN over birdie's byte tokenizer: useful as a template for your own hooks and as
the model the harness tests and benchmark run without torch models. Pass it as
``--model_args module=birdie.harness.numpy_example,tag=tiny``.

Hooks (see :class:`birdie.harness.adapters.UserModuleModel`):

* ``load_model(tag, **kwargs)``: the weights; ``tag`` picks a size (``"tiny"``), ``seed`` and ``hidden`` override.
* ``load_tokenizer(tag, **kwargs)``: ``"bytes"``.
* ``logits(model, input_ids, prefix_lengths)``: (B, T, V) float32.
* ``scan(model, input_ids, state, prefix_length)``: the same computation continued from a state, which lets the
  core read a shared context once.
* ``scan_contexts(model, contexts, prefix_lengths)``: the states after many contexts of different lengths, read in
  one left-padded batch (the hidden state stays at zero over the padding).

Prefix-LM: positions inside the bidirectional prefix also receive the mean embedding of the whole prefix (a
stand-in for a bidirectional layer), so their outputs depend on later prefix tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from birdie.tokenizers import ByteTokenizer

PREFIX_LM = True
MAX_LENGTH = 4096
SIZES = {"tiny": 32, "small": 128}


@dataclass(frozen=True)
class NumpyRNN:
    """Weights: embedding (V, H), recurrence (H, H), prefix mixing (H, H), output (H, V)."""

    embed: np.ndarray
    recur: np.ndarray
    mix: np.ndarray
    out: np.ndarray


def load_model(tag: str = "tiny", seed: int | str = 0, hidden: int | str | None = None, **_: object) -> NumpyRNN:
    if tag not in SIZES and hidden is None:
        raise ValueError(f"unknown tag {tag!r}; valid: {', '.join(SIZES)} (or pass hidden=N)")
    width = int(hidden) if hidden is not None else SIZES[tag]
    vocab = ByteTokenizer().vocab_size
    rng = np.random.default_rng(int(seed))
    return NumpyRNN(
        embed=rng.normal(0, 1.0, (vocab, width)).astype(np.float32),
        recur=rng.normal(0, 1.0 / np.sqrt(width), (width, width)).astype(np.float32),
        mix=rng.normal(0, 1.0 / np.sqrt(width), (width, width)).astype(np.float32),
        out=rng.normal(0, 2.0 / np.sqrt(width), (width, vocab)).astype(np.float32),
    )


def load_tokenizer(tag: str = "tiny", **_: object) -> str:
    return "bytes"


# Products go through np.einsum, not ``@``: BLAS picks its kernel and summation order by the batch shape, so a row's
# float32 result would depend on which other rows share its call (a state-reuse batch vs. a server batch differed in
# the last bits). einsum sums each output element in the same order whatever the batch, so every path agrees
# bit for bit.
def _matmul(x: np.ndarray, weight: np.ndarray) -> np.ndarray:
    return np.einsum("...h,hk->...k", x, weight)


def _run(model: NumpyRNN, inputs: np.ndarray, hidden: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """inputs (B, T, H) -> (logits (B, T, V), last hidden (B, H))."""
    outputs = np.empty_like(inputs)
    for t in range(inputs.shape[1]):
        hidden = np.tanh(inputs[:, t] + _matmul(hidden, model.recur))
        outputs[:, t] = hidden
    return _matmul(outputs, model.out), hidden


def _inputs(model: NumpyRNN, input_ids: np.ndarray, prefix_lengths: np.ndarray) -> np.ndarray:
    x = model.embed[np.asarray(input_ids)]
    for b, length in enumerate(np.asarray(prefix_lengths)):
        if length > 0:
            x[b, :length] += _matmul(x[b, :length].mean(axis=0), model.mix)
    return x


def logits(model: NumpyRNN, input_ids: np.ndarray, prefix_lengths: np.ndarray | None = None) -> np.ndarray:
    ids = np.asarray(input_ids)
    lengths = np.zeros(len(ids), dtype=np.int64) if prefix_lengths is None else prefix_lengths
    zero = np.zeros((len(ids), model.recur.shape[0]), dtype=np.float32)
    return _run(model, _inputs(model, ids, lengths), zero)[0]


def scan(model: NumpyRNN, input_ids: np.ndarray, state: np.ndarray | None, prefix_length: int = 0):
    ids = np.asarray(input_ids)
    if state is None:
        state = np.zeros((len(ids), model.recur.shape[0]), dtype=np.float32)
        x = _inputs(model, ids, np.full(len(ids), prefix_length))
    else:
        x = model.embed[ids]
    return _run(model, x, state)


def scan_contexts(model: NumpyRNN, contexts: list, prefix_lengths: list) -> np.ndarray:
    width = max(len(c) for c in contexts)
    x = np.zeros((len(contexts), width, model.recur.shape[0]), dtype=np.float32)
    real = np.zeros((len(contexts), width), dtype=bool)
    for row, (context, prefix_length) in enumerate(zip(contexts, prefix_lengths)):
        x[row, width - len(context) :] = _inputs(model, np.asarray([context]), np.array([prefix_length]))[0]
        real[row, width - len(context) :] = True
    hidden = np.zeros((len(contexts), model.recur.shape[0]), dtype=np.float32)
    for t in range(width):
        hidden = np.where(real[:, t, None], np.tanh(x[:, t] + _matmul(hidden, model.recur)), hidden)
    return hidden
