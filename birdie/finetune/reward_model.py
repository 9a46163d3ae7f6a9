"""Reward models: any birdie language model's trunk with a scalar head (EasyLM's ``score`` head, §3.5).

:class:`RewardModel` replaces the output head by ``Linear(d_model, 1, bias=False)`` read at each row's last real
token. Exported like a language model (``model.safetensors`` + ``config.json`` + ``tokenizer.json``) with
``training.json`` recording ``"head": "reward"``, so ``birdie.load`` returns a :class:`RewardModel` whose
:meth:`RewardModel.score` scores conversations or texts.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from birdie.models.mixer import SequenceInfo

HEAD = "reward"


class RewardModel(nn.Module):
    """A language model's trunk (embedding, blocks, final norm) and a scalar score head.

    ``forward(input_ids, segment_ids, position_ids) -> (B,)`` scores at each row's last position with
    ``segment_ids > 0`` (rows are right-padded, one sequence each).
    """

    def __init__(self, lm: nn.Module) -> None:
        super().__init__()
        self.lm = lm
        self.lm.output = nn.Identity()  # the vocabulary head is unused (DDP requires every parameter to be used)
        self.score_head = nn.Linear(lm.config.d_model, 1, bias=False)
        # small random init (as HF's score heads): a zero head would pass no gradient to the trunk at first
        nn.init.normal_(self.score_head.weight, std=lm.config.init_std)
        self.config = lm.config
        self.tokenizer: Any = None

    @property
    def layers(self) -> nn.ModuleList:
        """The trunk's blocks (FSDP2 shards per block)."""
        return self.lm.layers

    def forward(self, input_ids: Tensor, segment_ids: Tensor | None = None,
                position_ids: Tensor | None = None) -> Tensor:
        info = SequenceInfo.from_batch(input_ids, None, segment_ids, position_ids)
        hidden, _ = self.lm.hidden_states(input_ids, info)
        if segment_ids is None:
            last = torch.full((input_ids.shape[0],), input_ids.shape[1] - 1, device=input_ids.device)
        else:
            last = (segment_ids > 0).sum(-1) - 1
        picked = hidden[torch.arange(input_ids.shape[0], device=input_ids.device), last]
        return self.score_head(picked).squeeze(-1).float()

    @torch.no_grad()
    def score(self, texts: Sequence[str | Sequence[dict[str, str]]]) -> Tensor:
        """Scores (N,) of conversations (message lists, rendered in the Tulu format as in training) or plain
        strings (BOS + the text, as is)."""
        from birdie.finetune.chat import render_chat

        if self.tokenizer is None:
            raise ValueError("RewardModel.score needs the tokenizer: load the model with birdie.load(path)")
        bos = self.tokenizer.specials.id("bos")
        sequences = [np.concatenate([[bos], np.asarray(self.tokenizer.encode(text), dtype=np.int64)])
                     if isinstance(text, str) else render_chat(text, self.tokenizer)[0] for text in texts]
        batch = score_inputs(sequences, self.tokenizer.specials.id("pad"))
        device = next(self.parameters()).device
        return self(**{k: v.to(device) for k, v in batch.items()})


def score_inputs(sequences: Sequence[np.ndarray], pad_id: int) -> dict[str, Tensor]:
    """Right-padded rows holding every token of each sequence (the score is read after the last one, EOS for a
    rendered conversation): ``input_ids``, ``segment_ids`` and ``position_ids``, each (N, longest)."""
    from birdie.finetune.batches import pad
    from birdie.finetune.datasets import Example

    # pad() fills L - 1 positions per example (its last token is only a target): append one to keep them all
    examples = [Example(np.append(ids, pad_id), np.zeros(len(ids) + 1, dtype=bool)) for ids in sequences]
    batch = pad(examples, None, pad_id)
    return {k: batch[k] for k in ("input_ids", "segment_ids", "position_ids")}
