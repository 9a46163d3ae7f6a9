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
import logging
from pathlib import Path
from typing import Any, Protocol, Sequence, runtime_checkable

import numpy as np
import torch

from birdie.models.registry import get_family
from birdie.tokenizers import Tokenizer, as_tokenizer

log = logging.getLogger("birdie.harness")


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
    * optional ``MAX_LENGTH: int`` (default 2048) and ``VOCAB_SIZE: int`` (output ids; read from one call of
      ``logits`` when absent).

    Logits of another shape than (B, T, V), and input ids outside the V output ids (e.g. birdie's special tokens
    appended after a user tokenizer's vocabulary), raise a ValueError naming the hook and the shapes.
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
        self.name = model_name(module=name, tag=tag)
        self.model = self.module.load_model(tag, **kwargs)
        self.tokenizer = as_tokenizer(self.module.load_tokenizer(tag, **kwargs))
        self.module_has_prefix = bool(getattr(self.module, "PREFIX_LM", False))
        self.prefix_lm = self.module_has_prefix
        self.max_length = int(getattr(self.module, "MAX_LENGTH", 2048))
        declared = getattr(self.module, "VOCAB_SIZE", None)
        self._vocab_size: int | None = None if declared is None else int(declared)
        if callable(getattr(self.module, "scan", None)):
            self.scan = self._scan
            if callable(getattr(self.module, "scan_contexts", None)):
                self.scan_contexts = self._scan_contexts

    def logits(self, input_ids: np.ndarray, prefix_lengths: np.ndarray) -> Any:
        if np.any(prefix_lengths) and not self.module_has_prefix:
            raise ValueError(f"{self.module.__name__} has no bidirectional prefix (PREFIX_LM is not set)")
        self._check_ids(input_ids)
        return self._checked_shape("logits", self._call_logits(input_ids, prefix_lengths), input_ids)

    def _call_logits(self, input_ids: np.ndarray, prefix_lengths: np.ndarray) -> Any:
        if self.module_has_prefix:
            return self.module.logits(self.model, input_ids, prefix_lengths=prefix_lengths)
        return self.module.logits(self.model, input_ids)

    def _scan(self, input_ids: np.ndarray, state: Any, prefix_length: int = 0) -> tuple[Any, Any]:
        self._check_ids(input_ids)
        logits, state = self.module.scan(self.model, input_ids, state, prefix_length)
        return self._checked_shape("scan", logits, input_ids), state

    @property
    def vocab_size(self) -> int:
        """The module's number of output ids: ``VOCAB_SIZE`` if it sets one, else read once from the logits of a
        one-token input."""
        if self._vocab_size is None:
            probe = np.zeros((1, 1), dtype=np.int64)
            self._vocab_size = int(self._checked_shape("logits", self._call_logits(probe, np.zeros(1, np.int64)),
                                                       probe).shape[2])
        return self._vocab_size

    def _check_ids(self, input_ids: np.ndarray) -> None:
        """Every id must have a row in the model (a framework that clamps or wraps out-of-range ids, as JAX does,
        would score garbage silently)."""
        largest = int(np.max(input_ids)) if np.size(input_ids) else 0
        if largest >= self.vocab_size:
            special = self.tokenizer.specials.name_of(largest)
            raise ValueError(
                f"token id {largest}{f' ({special})' if special else ''} is outside the {self.vocab_size} output ids "
                f"of {self.module.__name__}: its tokenizer has {self.tokenizer.vocab_size} ids once birdie's "
                "special tokens are appended; give the model that many output ids, or give load_tokenizer a "
                "tokenizer whose vocabulary already holds the special tokens")

    def _checked_shape(self, hook: str, logits: Any, input_ids: np.ndarray) -> Any:
        """``logits``, after checking that its shape is (B, T, V) for ``input_ids`` (B, T)."""
        shape = tuple(getattr(logits, "shape", ()))
        batch, length = np.shape(input_ids)
        if len(shape) != 3 or shape[:2] != (batch, length):
            raise ValueError(f"{self.module.__name__}.{hook} returned logits of shape {shape}; expected "
                             f"(batch, length, vocab) = ({batch}, {length}, V) for input_ids of shape "
                             f"({batch}, {length})")
        return logits

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
        model: the ``LanguageModel`` (or any torch module whose ``forward(input_ids, attention_mask=...)`` returns
            ``(logits, ...)``; it is scored with plain forward passes).
        tokenizer: its tokenizer.
        prefix_lm: feed contexts as the bidirectional prefix; default: True when the config has bidirectional
            layers (``bidirectional_layers`` other than ``"none"``).
        device: where to run (default: where the model is).
        name: what results are filed under (the checkpoint directory's name when loaded from one).
    """

    def __init__(self, model: Any, tokenizer: Any, prefix_lm: bool | None = None, device: str | None = None,
                 name: str = "birdie") -> None:
        self.name = name
        self.model = model.eval()
        if device is not None:
            self.model.to(device)
        self.device = next(self.model.parameters()).device
        self.tokenizer = as_tokenizer(tokenizer)
        config = getattr(model, "config", None)
        if config is None:
            # Any torch module with the seeds' forward(input_ids, attention_mask=...) -> (logits, ...): scored with
            # plain forward passes (no state API to continue from), at whatever length it takes.
            self.prefix_lm = bool(prefix_lm)
            self.max_length = 1 << 31
            self.scan = None
            return
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
    trust_checkpoint: bool | str = False,
    **kwargs: Any,
) -> ScoringModel:
    """Load a model for scoring from a birdie export directory or a user module.

    Args:
        checkpoint: a directory written by the trainer's export (read with ``birdie.load``).
        module: an importable module with the user hooks (see :class:`UserModuleModel`); ``tag`` and the other
            keyword arguments go to its ``load_model``/``load_tokenizer``.
        scoring: ``"prefix"`` (context = bidirectional prefix), ``"causal"``, or ``"auto"``: for a checkpoint, how
            the model was trained (``prefix_lm`` in the export's ``training.json``; an export without one is
            guessed from its bidirectional layers, with a warning that says so); for a module, its ``PREFIX_LM``.
        device: torch device for birdie checkpoints (lm-eval's default ``cuda:0`` falls back to CPU when CUDA is
            unavailable).
        dtype: parameter dtype for birdie checkpoints (``float32``, ``bfloat16``, ``float16``); log-softmax stays
            float32.
        trust_checkpoint: allow a training checkpoint directory (its DCP ``.metadata`` is a pickle, which can run
            code); exports need no trust.
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

        model, tokenizer = birdie.load(checkpoint, trust_checkpoint=as_bool(trust_checkpoint, "trust_checkpoint"))
        if dtype is not None:
            if dtype not in ("float32", "bfloat16", "float16"):
                raise ValueError(f"dtype={dtype!r} must be float32, bfloat16 or float16")
            model = model.to(getattr(torch, dtype))
        if prefix is None:
            prefix = trained_as_prefix_lm(checkpoint, model.config)
        return BirdieScoringModel(model, tokenizer, prefix_lm=prefix, device=_torch_device(device),
                                  name=model_name(checkpoint=checkpoint))
    scoring_model = UserModuleModel(module, tag, **kwargs)
    if prefix is not None:
        if prefix and not scoring_model.module_has_prefix:
            raise ValueError(f"scoring='prefix' needs a prefix-LM module; {module} does not set PREFIX_LM = True")
        scoring_model.prefix_lm = prefix
    return scoring_model


def model_name(checkpoint: str | Path | None = None, module: str | None = None, tag: str = "") -> str:
    """What results are filed under: the checkpoint's last two path components (``run7/export``), or
    ``module:tag``."""
    if checkpoint is not None:
        return "/".join(Path(checkpoint).resolve().parts[-2:])
    return f"{module}:{tag}" if tag else str(module)


def trained_as_prefix_lm(checkpoint: str | Path, config: Any) -> bool:
    """Whether the model in ``checkpoint`` was trained with a bidirectional prefix and ``<|begin_generating|>``:
    its ``training.json`` says so; for an export written before birdie recorded it, a guess from the model's
    bidirectional layers, announced with a warning."""
    from birdie.train.export import TRAINING_RECORD, read_training_record

    record = read_training_record(checkpoint)
    if record is None:
        guess = any(config.is_bidirectional(layer) for layer in range(config.n_layers))
        log.warning("%s has no %s (exported before birdie recorded how a model was trained): scoring=auto guesses "
                    "'%s' from its %sbidirectional layers; pass scoring=prefix or scoring=causal to choose",
                    checkpoint, TRAINING_RECORD, "prefix" if guess else "causal", "" if guess else "lack of ")
        return guess
    if not isinstance(record.get("prefix_lm"), bool):
        raise ValueError(f"{checkpoint}: {TRAINING_RECORD} has no boolean 'prefix_lm'; export the model again, or "
                         "pass scoring=prefix or scoring=causal")
    return record["prefix_lm"]


def _torch_device(device: str | None) -> str | None:
    if device is None or not device.startswith("cuda"):
        return device
    return device if torch.cuda.is_available() else "cpu"

