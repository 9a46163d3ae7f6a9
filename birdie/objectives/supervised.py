"""Supervised examples: a source item's own prompt/completion pair, packed as one example.

Unlike the self-supervised objectives, ``supervised`` does not make an example out of plain text: the pipeline
hands it a ready-made pair (read from items such as ``{"prefix": prompt, "target": completion}``, see
``docs/data.md``) and it lays the pair out as ``Example(prefix=prompt ids, target=completion ids [+ eos])``: the
prompt is bidirectional context and only the completion carries loss. The pair is never cut: a pair that does not
fit a whole row is skipped by the pipeline (counted), never truncated.

The pipeline draws ``supervised`` configurations only for pair items and the other objectives only for text
items, so mixing ``supervised`` with e.g. ``next_token_prediction`` trains on both kinds of item from one source.
Called on plain text through the ordinary objective contract, it returns a :class:`Skip`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from birdie.checks import check
from birdie.objectives.base import Example, ObjectiveConfig, ParadigmMode, Skip, as_ids
from birdie.tokenizers import Tokenizer


@dataclass(frozen=True)
class Supervised(ObjectiveConfig):
    """A prompt/completion pair from the source as one example (loss on the completion only).

    Attributes:
        append_eos: end the target with ``specials.eos`` so the model learns where a completion stops.
        paradigm: must stay ``"none"``: the prompt is shown as is, exactly as ``birdie eval``'s ``prefix`` mode
            shows a prompt.
    """

    name: ClassVar[str] = "supervised"
    objective_class: ClassVar[str] = "supervised"
    paradigm: ParadigmMode = "none"
    append_eos: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self, "paradigm", self.paradigm == "none",
              "must be 'none': supervised examples show the prompt without a paradigm token")
        check(self, "length", self.length is None, "must be None: a prompt/completion pair is never cut")
        check(self, "append_eos", isinstance(self.append_eos, bool), "must be true or false")

    def positions(self, prompt: np.ndarray, completion: np.ndarray) -> int:
        """Positions the pair takes when packed: prompt + completion (+ eos)."""
        return len(prompt) + len(completion) + int(self.append_eos)

    def pair_example(self, prompt: np.ndarray, completion: np.ndarray, budget: int,
                     tokenizer: Tokenizer) -> Example | Skip:
        """The pair as ``Example(prefix=prompt, target=completion [+ eos])``, or a :class:`Skip` when it needs more
        than ``budget`` positions (its whole ``positions(...)``; nothing is ever truncated).

        Args:
            prompt: int32 ids of the prompt (may be empty).
            completion: int32 ids of the completion (non-empty).
        """
        need = self.positions(prompt, completion)
        if need > budget:
            return Skip(f"prompt/completion pair needs {need} positions, budget {budget}")
        target = as_ids(completion)
        if self.append_eos:
            target = np.concatenate([target, np.array([tokenizer.specials.eos], dtype=np.int32)])
        return Example(prefix=as_ids(prompt), target=target)

    def __call__(self, ids: np.ndarray, rng: np.random.Generator, budget: int, tokenizer: Tokenizer) -> Example | Skip:
        return Skip("supervised needs a prompt/completion item, got plain text", as_ids(ids))
