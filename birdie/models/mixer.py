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

Construction and registration (the shell's side of the contract):

* A family's mixer class is built once per layer as ``mixer_cls(config, layer_index)`` with the
  :class:`~birdie.models.config.ModelConfig` and the 0-based layer index. It reads the fields it needs
  (``d_model``, ``n_heads``, ``state_dim`` via ``config.recurrent_width``, ``conv_width``, ``options``, ...) and
  asks ``config.is_bidirectional(layer_index)`` whether this layer gives the prefix a bidirectional view.
  The mixer initialises its own parameters in ``__init__``; the shell never re-initialises them.
* The family module registers itself at import time:
  ``birdie.models.registry.register_family("hawk", HawkMixer, has_mlp=True)``. ``has_mlp=True`` adds the shell's
  gated MLP after the mixer in every block (its activation is ``config.mlp_activation``: ``silu`` = SwiGLU,
  ``gelu_tanh`` = GeGLU). The built-in families live in ``birdie.models.{transformer,supra,hawk,gated_ssm}`` and
  are imported on first use by name, so ``birdie.models.create("hawk-tiny")`` works without importing them.
* The input ``x`` of ``forward``/``step`` is the pre-normed residual stream (B, T, D) or (B, D); the output is
  added to the residual by the shell.
* ``no_weight_decay`` (class attribute): names, relative to the mixer, of parameters the optimizer must not
  decay even though they are matrices (Birdie §5: Hawk's RG-LRU, the Gated SSM's forget gate). Norms,
  embeddings and biases are excluded by the optimizer anyway; ``LanguageModel.no_weight_decay()`` collects the
  full names.
* ``state`` is opaque to the shell, except that generation keeps it across steps. Recurrent families keep it in
  float32 with a size independent of the length (the bidirectional layers cache only their forward half).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn


def segment_starts(segment_ids: Tensor) -> Tensor:
    """(B, T) -> (B, T) bool, True where a row's run of equal ``segment_ids`` begins (always at t = 0)."""
    start = torch.ones_like(segment_ids, dtype=torch.bool)
    start[:, 1:] = segment_ids[:, 1:] != segment_ids[:, :-1]
    return start


def segment_runs(segment_ids: Tensor) -> Tensor:
    """(B, T) -> (B, T) int64 ids 1, 2, ... numbering the contiguous runs of equal ``segment_ids`` in each row,
    so that a segment id that happens to repeat later in the row still starts a new, separate run."""
    return segment_starts(segment_ids).long().cumsum(dim=1)


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
        return segment_starts(self.segment_ids)

    @property
    def segment_runs(self) -> Tensor:
        """(B, T) int64: contiguous runs of equal segment ids numbered 1, 2, ...; two positions may exchange
        information only if their run ids are equal."""
        return segment_runs(self.segment_ids)

    @property
    def segment_end(self) -> Tensor:
        """(B, T) bool: True on the last position of a segment (or padding run); reverse recurrences reset there."""
        seg = self.segment_ids
        end = torch.ones_like(seg, dtype=torch.bool)
        end[:, :-1] = seg[:, :-1] != seg[:, 1:]
        return end

    @classmethod
    def from_batch(
        cls,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        segment_ids: Tensor | None = None,
        position_ids: Tensor | None = None,
    ) -> "SequenceInfo":
        """Layout of a pipeline batch; absent keys default to one segment per row, positions restarting at every
        segment start, and no bidirectional prefix (fully causal). Shapes must all equal ``input_ids``' (B, T)."""
        if input_ids.dim() != 2:
            raise ValueError(f"input_ids must be (batch, length); got shape {tuple(input_ids.shape)}")
        for name, value in (("attention_mask", attention_mask), ("segment_ids", segment_ids),
                            ("position_ids", position_ids)):
            if value is not None and value.shape != input_ids.shape:
                raise ValueError(
                    f"{name} has shape {tuple(value.shape)} but input_ids has {tuple(input_ids.shape)}; "
                    "every batch tensor must be (batch, length)"
                )
        batch, length = input_ids.shape
        device = input_ids.device
        if segment_ids is None:
            segment_ids = torch.ones(batch, length, dtype=torch.long, device=device)
        segment_ids = segment_ids.long()
        if position_ids is None:
            index = torch.arange(length, device=device).expand(batch, length)
            start = segment_starts(segment_ids)
            position_ids = index - torch.where(start, index, 0).cummax(dim=1).values
        if attention_mask is None:
            prefix = torch.zeros_like(segment_ids, dtype=torch.bool)
        else:
            prefix = attention_mask == 1
        return cls(segment_ids=segment_ids, position_ids=position_ids.long(), prefix=prefix)

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

    no_weight_decay: tuple[str, ...] = ()

    def tp_plan(self) -> dict[str, Any] | None:
        """``{submodule name: ParallelStyle}`` sharding this mixer over a tensor-parallel group, or None when the
        family has no tensor-parallel layout (the default)."""
        return None

    def forward(self, x: Tensor, info: SequenceInfo) -> tuple[Tensor, Any]:  # pragma: no cover - interface
        raise TypeError(f"{type(self).__name__} must implement forward")

    def step(self, x: Tensor, position: Tensor, state: Any) -> tuple[Tensor, Any]:  # pragma: no cover - interface
        raise TypeError(f"{type(self).__name__} must implement step")
