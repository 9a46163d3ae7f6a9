"""Prompt/completion items: recognising them among a source's items and tokenizing them.

An item is a pair when the mixture has a ``supervised`` objective and the item is a mapping holding both
``PipelineConfig.prompt_key`` and ``PipelineConfig.completion_key`` (default ``"prefix"`` and ``"target"``). Each
value is a ``str`` (tokenized in the worker) or a 1-D integer array of token ids; the prompt may be empty, the
completion may not. Every other item is read as text through the source's ``text_grabber_fn``, as before.
"""

from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Mapping
from typing import Any, Sequence

import numpy as np

from birdie.data.config import PipelineConfig
from birdie.data.sources import Source
from birdie.objectives.base import ObjectiveConfig
from birdie.objectives.supervised import Supervised
from birdie.tokenizers import Tokenizer


@dataclass(frozen=True)
class PromptCompletion:
    """A tokenized pair: int32 ``prompt`` ids (possibly empty) and int32 ``completion`` ids (non-empty)."""

    prompt: np.ndarray
    completion: np.ndarray


def pair_keys(objectives: Sequence[ObjectiveConfig], config: PipelineConfig) -> tuple[str, str] | None:
    """``(prompt_key, completion_key)`` when the mixture has a ``supervised`` configuration, else None."""
    if any(isinstance(o, Supervised) for o in objectives):
        return config.prompt_key, config.completion_key
    return None


def read_item(item: Any, source: Source, tokenizer: Tokenizer,
              pair_keys: tuple[str, str] | None) -> np.ndarray | PromptCompletion | None:
    """The document an item stands for: text ids, a :class:`PromptCompletion`, or None when it is unusable.

    ``pair_keys`` is ``(prompt_key, completion_key)`` when the mixture reads pairs, else None. Items that are
    already read (a :class:`PromptCompletion` or an id array, e.g. from a cache) pass through.
    """
    if isinstance(item, PromptCompletion):
        return item
    if pair_keys is not None and isinstance(item, Mapping) and all(key in item for key in pair_keys):
        prompt = tokenize_text(item[pair_keys[0]], tokenizer)
        completion = tokenize_text(item[pair_keys[1]], tokenizer)
        if prompt is None or completion is None or len(completion) == 0:
            return None
        return PromptCompletion(prompt, completion)
    ids = tokenize_text(source.extract(item), tokenizer)
    return ids if ids is not None and len(ids) else None


def tokenize_text(value: Any, tokenizer: Tokenizer) -> np.ndarray | None:
    """Ids of a ``str`` (blank -> empty) or a 1-D integer array (as is); None for anything else.

    Raises:
        ValueError: an array of non-integer ids (floats are not truncated to ids), or an id outside the
            tokenizer's vocabulary (it would index past the model's embedding).
    """
    if isinstance(value, str):
        return tokenizer.encode(value) if value.strip() else np.zeros(0, dtype=np.int32)
    if isinstance(value, np.ndarray) and value.ndim == 1 and value.dtype.kind in "fcb":
        raise ValueError(f"a pre-tokenized document holds {value.dtype} values ({value[:8]!r:.80}); token ids must "
                         "be integers: pass an integer array")
    if isinstance(value, np.ndarray) and value.ndim == 1 and value.dtype.kind in "iu":  # signed or unsigned ints
        vocab = tokenizer.vocab_size
        if len(value) and (value.max() >= vocab or value.min() < 0):
            bad = int(value[(value >= vocab) | (value < 0)][0])
            raise ValueError(f"a pre-tokenized document holds token id {bad}, outside the tokenizer's vocabulary "
                             f"[0, {vocab}); tokenize with the pipeline's tokenizer")
        return value.astype(np.int32, copy=False)
    return None
