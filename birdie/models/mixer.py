"""The protocol between the language-model shell and each family's sequence mixer.

The shell (:mod:`birdie.models.lm`) owns embeddings, pre-norm residual blocks, the optional MLP, the output head,
the loss and generation. A family contributes one :class:`Mixer` per layer: attention (Transformer), RG-LRU
(Hawk), the gated recurrence (Gated SSM) or decayed linear attention (SUPRA).

Packing conventions, read from the pipeline's batch (see ``docs/architecture.md``):

* ``segment_ids`` (B, T): 1..k per packed example, 0 = padding. Nothing may flow between different segments.
* ``position_ids`` (B, T): restart at 0 in every segment.
* ``prefix`` (B, T) bool: ``attention_mask == 1``, the example's bidirectional context. Target and padding are
  causal. Bidirectional layers let prefix positions see later prefix positions of the same segment; target
  positions never see later positions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class SequenceInfo:
    """Per-batch layout shared by every layer of one forward pass.

    Attributes:
        segment_ids: (B, T) int64, 0 = padding.
        position_ids: (B, T) int64, 0 at each segment start.
        prefix: (B, T) bool, True on bidirectional-prefix positions.
    """

    segment_ids: Tensor
    position_ids: Tensor
    prefix: Tensor

    @property
    def segment_start(self) -> Tensor:
        """(B, T) bool: True where a new segment (or padding run) begins; recurrent state resets there."""
        seg = self.segment_ids
        start = torch.ones_like(seg, dtype=torch.bool)
        start[:, 1:] = seg[:, 1:] != seg[:, :-1]
        return start

    @classmethod
    def single(cls, batch: int, length: int, device: torch.device, prefix_len: int = 0) -> "SequenceInfo":
        """Layout of unpacked rows: one segment per row, positions 0..T-1, the first ``prefix_len`` bidirectional."""
        pos = torch.arange(length, device=device).expand(batch, length)
        return cls(
            segment_ids=torch.ones(batch, length, dtype=torch.long, device=device),
            position_ids=pos,
            prefix=pos < prefix_len,
        )


class Mixer(nn.Module):
    """One layer's sequence mixer. Input and output are (B, T, D) in the residual stream's width.

    Subclasses implement:

    * ``forward(x, info) -> (y, state)``: the parallel form over whole packed rows. ``state`` is the cache a
      decoder continues from after the *last* position of each row (KV cache or recurrent state); it is only
      consumed for single-segment rows during generation.
    * ``step(x, position, state) -> (y, state)``: one causal token, x (B, D), position (B,) int64.

    ``forward`` followed by ``step`` must equal ``forward`` on the longer sequence (the parallel form equals
    step-by-step decoding), and packed rows must equal their segments run separately.
    """

    def forward(self, x: Tensor, info: SequenceInfo) -> tuple[Tensor, Any]:  # pragma: no cover - interface
        raise TypeError(f"{type(self).__name__} must implement forward")

    def step(self, x: Tensor, position: Tensor, state: Any) -> tuple[Tensor, Any]:  # pragma: no cover - interface
        raise TypeError(f"{type(self).__name__} must implement step")
