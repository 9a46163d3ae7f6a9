"""Scoring adapters: what the scoring core needs from a model, and adapters for birdie checkpoints and user modules.

The core talks to a :class:`ScoringModel`: a tokenizer, a ``prefix_lm`` flag, and ``logits`` over a right-padded
batch of token ids. A model that can also continue from a saved state (a recurrent state or a KV cache) offers
``scan``; the core then reads a shared context once and reuses its state for every continuation.

Two adapters:

* :class:`BirdieScoringModel` wraps a birdie ``LanguageModel`` (``birdie.load(path)`` or
  ``birdie.models.create(...)``).
* :class:`UserModuleModel` wraps a user's Python module (a JAX, numpy or any-framework model) that defines the
  hooks ``load_model(tag, **kwargs)``, ``logits(model, input_ids)`` and ``load_tokenizer(tag, **kwargs)``, and
  optionally ``scan(model, input_ids, state, prefix_length)`` and ``PREFIX_LM = True``.

:func:`load_scoring_model` builds either from the keyword arguments both front-ends accept
(``checkpoint=DIR`` or ``module=pkg.mod,tag=T,...``).
"""

from __future__ import annotations

import importlib
from typing import Any, Protocol, Sequence, runtime_checkable

import numpy as np
import torch

from birdie.models.registry import get_family
from birdie.tokenizers import Tokenizer, as_tokenizer


@runtime_checkable
class ScoringModel(Protocol):
    """A model the scoring core can evaluate.

    Attributes:
        tokenizer: a birdie :class:`~birdie.tokenizers.Tokenizer`.
        prefix_lm: True when the model was trained with a bidirectional prefix (Birdie); the core then feeds a
            request's context as that prefix followed by ``begin_generating``.
        max_length: the longest sequence the model accepts (positions).
    """

    tokenizer: Tokenizer
    prefix_lm: bool
    max_length: int

    def logits(self, input_ids: np.ndarray, prefix_lengths: np.ndarray) -> Any:
        """Logits (B, T, V), float, as numpy or torch, for right-padded ``input_ids`` (B, T) int64.

        The first ``prefix_lengths[b]`` positions of row ``b`` are a bidirectional prefix (0 = fully causal).
        Positions after a row's real tokens are padding and their logits are ignored.
        """


@runtime_checkable
class StatefulScoringModel(ScoringModel, Protocol):
    """A :class:`ScoringModel` that can continue from a state."""

    def scan(self, input_ids: np.ndarray, state: Any, prefix_length: int = 0) -> tuple[Any, Any]:
        """Run ``input_ids`` (B, T) after ``state`` and return ``(logits (B, T, V), new_state)``.

        ``state=None`` starts fresh; then every row has the same real length and the first ``prefix_length``
        positions are the bidirectional prefix. A non-None ``state`` has batch size B (the core builds it from
        batch-1 states with :func:`birdie.harness.states.concat_states`; rows may continue different contexts)
        and row b is scanned causally after row b of the state. Rows may be right-padded; the returned state is
        only used when no row was padded. ``state`` is never modified.
        """


@runtime_checkable
class BatchedContextModel(StatefulScoringModel, Protocol):
    """A stateful model that can also read several contexts of different lengths in one call."""

    def scan_contexts(self, contexts: Sequence[Sequence[int]], prefix_lengths: Sequence[int]) -> Any:
        """The states after each context (batch = ``len(contexts)``), row ``i`` equal to what
        ``scan([contexts[i]], None, prefix_lengths[i])`` returns."""


class UserModuleModel:
    """A model from a user's module with the seeds' hooks.

    The module defines:

    * ``load_model(tag: str, **kwargs) -> model``
    * ``logits(model, input_ids: np.ndarray (B, T) int64) -> (B, T, V)`` array; when the module sets
      ``PREFIX_LM = True`` it is called as ``logits(model, input_ids, prefix_lengths=...)``.
    * ``load_tokenizer(tag: str, **kwargs)`` -> anything :func:`birdie.tokenizers.as_tokenizer` accepts
      (``"bytes"``, a ``tokenizer.json`` path, a tiktoken encoding, an object with encode/decode).
    * optional ``scan(model, input_ids, state, prefix_length) -> (logits, state)`` (see
      :meth:`StatefulScoringModel.scan`), which enables state reuse, and ``scan_contexts(model, contexts,
      prefix_lengths) -> state`` (see :meth:`BatchedContextModel.scan_contexts`), which batches context reads.
    * optional ``MAX_LENGTH: int`` (default 2048).
    """

    def __init__(self, module: str | Any, tag: str = "", **kwargs: Any) -> None:
        self.module = importlib.import_module(module) if isinstance(module, str) else module
        name = getattr(self.module, "__name__", str(module))
        missing = [hook for hook in ("load_model", "logits", "load_tokenizer") if not callable(getattr(self.module, hook, None))]
        if missing:
            raise TypeError(
                f"user module {name} lacks the hook(s) {', '.join(missing)}; define load_model(tag, **kwargs), "
                "logits(model, input_ids) and load_tokenizer(tag, **kwargs)"
            )
        self.model = self.module.load_model(tag, **kwargs)
        self.tokenizer = as_tokenizer(self.module.load_tokenizer(tag, **kwargs))
        self.module_has_prefix = bool(getattr(self.module, "PREFIX_LM", False))
        self.prefix_lm = self.module_has_prefix
        self.max_length = int(getattr(self.module, "MAX_LENGTH", 2048))
        if callable(getattr(self.module, "scan", None)):
            self.scan = self._scan
            if callable(getattr(self.module, "scan_contexts", None)):
                self.scan_contexts = self._scan_contexts

    def logits(self, input_ids: np.ndarray, prefix_lengths: np.ndarray) -> Any:
        if self.module_has_prefix:
            return self.module.logits(self.model, input_ids, prefix_lengths=prefix_lengths)
        if np.any(prefix_lengths):
            raise ValueError(f"{self.module.__name__} has no bidirectional prefix (PREFIX_LM is not set)")
        return self.module.logits(self.model, input_ids)

    def _scan(self, input_ids: np.ndarray, state: Any, prefix_length: int = 0) -> tuple[Any, Any]:
        return self.module.scan(self.model, input_ids, state, prefix_length)

    def _scan_contexts(self, contexts: Sequence[Sequence[int]], prefix_lengths: Sequence[int]) -> Any:
        return self.module.scan_contexts(self.model, contexts, prefix_lengths)


class BirdieScoringModel:
    """A birdie ``LanguageModel`` (torch) behind the :class:`StatefulScoringModel` protocol.

    ``logits`` runs the parallel form with ``attention_mask = position < prefix_length``, the layout training packs
    (one segment per row, positions from 0). ``scan`` prefills with ``hidden_states`` (the parallel form, which
    returns every layer's cache after the last position) and continues with ``step``, one token at a time, so a
    context is read once: a KV cache for attention, the constant-size recurrent state for Hawk/Gated SSM/SUPRA.
    For families registered with ``fixed_size_state=True`` ``scan_contexts`` reads many contexts in one call: each is left-padded, the
    padding is its own segment (the recurrence restarts at the context), and positions restart at 0.

    Args:
        model: the ``LanguageModel``.
        tokenizer: its tokenizer.
        prefix_lm: feed contexts as the bidirectional prefix; default: True when the config has bidirectional
            layers (``bidirectional_layers`` other than ``"none"``).
        device: where to run (default: where the model is).
    """

    def __init__(self, model: Any, tokenizer: Any, prefix_lm: bool | None = None, device: str | None = None) -> None:
        self.model = model.eval()
        if device is not None:
            self.model.to(device)
        self.device = next(self.model.parameters()).device
        self.tokenizer = as_tokenizer(tokenizer)
        config = model.config
        if prefix_lm is None:
            prefix_lm = any(config.is_bidirectional(layer) for layer in range(config.n_layers))
        self.prefix_lm = prefix_lm
        self.max_length = int(config.max_seq_len)
        if self.tokenizer.vocab_size > config.vocab_size:
            raise ValueError(f"the tokenizer has {self.tokenizer.vocab_size} ids but the model only {config.vocab_size}")
        # A fixed-size state that restarts at segment boundaries lets contexts of different lengths be read in one
        # left-padded batch; an attention cache would keep the padding's keys. The family says which it has.
        if get_family(config.family).fixed_size_state:
            self.scan_contexts = self._scan_contexts

    def _tensor(self, array: Any):
        return torch.as_tensor(np.asarray(array), dtype=torch.long, device=self.device)

    def logits(self, input_ids: np.ndarray, prefix_lengths: np.ndarray):
        ids = self._tensor(input_ids)
        positions = torch.arange(ids.shape[1], device=self.device).expand_as(ids)
        attention_mask = (positions < self._tensor(prefix_lengths)[:, None]).long()
        with torch.inference_mode():
            return self.model(ids, attention_mask=attention_mask)[0]

    def scan(self, input_ids: np.ndarray, state: Any, prefix_length: int = 0):
        """Prefill (``state=None``) or step token by token from ``state = (layer caches, next positions (B,))``."""
        from birdie.models.mixer import SequenceInfo

        ids = self._tensor(input_ids)
        batch, length = ids.shape
        with torch.inference_mode():
            if state is None:
                info = SequenceInfo.single(batch, length, self.device, prefix_len=prefix_length)
                hidden, caches = self.model.hidden_states(ids, info)
                return self.model.output(hidden), (caches, torch.full((batch,), length, device=self.device))
            caches, positions = state
            outputs = []
            for t in range(length):
                step_logits, caches = self.model.step(ids[:, t], positions + t, caches)
                outputs.append(step_logits)
            return torch.stack(outputs, dim=1), (caches, positions + length)

    def _scan_contexts(self, contexts: Sequence[Sequence[int]], prefix_lengths: Sequence[int]):
        from birdie.models.mixer import SequenceInfo

        lengths = [len(c) for c in contexts]
        width = max(lengths)
        ids = np.zeros((len(contexts), width), dtype=np.int64)
        segments, positions, prefix = (np.zeros_like(ids) for _ in range(3))
        for row, (context, prefix_length) in enumerate(zip(contexts, prefix_lengths)):
            start = width - len(context)
            ids[row, start:] = context
            segments[row, start:] = 1
            positions[row, start:] = np.arange(len(context))
            prefix[row, start : start + prefix_length] = 1
        tensors = [self._tensor(a) for a in (ids, prefix, segments, positions)]
        with torch.inference_mode():
            _, caches = self.model.hidden_states(tensors[0], SequenceInfo.from_batch(*tensors))
        return caches, self._tensor(lengths)


def parse_model_args(text: str) -> dict[str, str]:
    """Parse lm-eval's ``key=value,key=value`` model-args string."""
    args: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"model args must be key=value pairs separated by commas; got {item!r} in {text!r}")
        args[key.strip()] = value.strip()
    return args


def as_bool(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name}={value!r} must be true or false")


def load_scoring_model(
    checkpoint: str | None = None,
    module: str | None = None,
    tag: str = "",
    scoring: str = "auto",
    device: str | None = None,
    dtype: str | None = None,
    **kwargs: Any,
) -> ScoringModel:
    """Load a model for scoring from a birdie export directory or a user module.

    Args:
        checkpoint: a directory written by the trainer's export (read with ``birdie.load``).
        module: an importable module with the user hooks (see :class:`UserModuleModel`); ``tag`` and the other
            keyword arguments go to its ``load_model``/``load_tokenizer``.
        scoring: ``"prefix"`` (context = bidirectional prefix), ``"causal"``, or ``"auto"`` (the model's own
            ``prefix_lm``).
        device: torch device for birdie checkpoints (lm-eval's default ``cuda:0`` falls back to CPU when CUDA is
            unavailable).
        dtype: parameter dtype for birdie checkpoints (``float32``, ``bfloat16``, ``float16``); log-softmax stays
            float32.
    """
    if scoring not in ("auto", "prefix", "causal"):
        raise ValueError(f"scoring={scoring!r} must be 'auto', 'prefix' or 'causal'")
    if (checkpoint is None) == (module is None):
        raise ValueError("give exactly one of checkpoint=DIR (a birdie export) or module=pkg.mod (user hooks)")
    prefix = None if scoring == "auto" else scoring == "prefix"
    if checkpoint is not None:
        if kwargs:
            raise ValueError(f"unknown model argument(s) for a checkpoint: {', '.join(sorted(kwargs))}")
        import birdie

        model, tokenizer = birdie.load(checkpoint)
        if dtype is not None:
            if dtype not in ("float32", "bfloat16", "float16"):
                raise ValueError(f"dtype={dtype!r} must be float32, bfloat16 or float16")
            model = model.to(getattr(torch, dtype))
        return BirdieScoringModel(model, tokenizer, prefix_lm=prefix, device=_torch_device(device))
    scoring_model = UserModuleModel(module, tag, **kwargs)
    if prefix is not None:
        if prefix and not scoring_model.module_has_prefix:
            raise ValueError(f"scoring='prefix' needs a prefix-LM module; {module} does not set PREFIX_LM = True")
        scoring_model.prefix_lm = prefix
    return scoring_model


def _torch_device(device: str | None) -> str | None:
    if device is None or not device.startswith("cuda"):
        return device
    return device if torch.cuda.is_available() else "cpu"

