"""What the recurrent families (Hawk, Gated SSM) share around the scan kernel: the packing rules of a (possibly
bidirectional) layer over packed rows, and the decoding state.

The scan itself (:func:`birdie.models.kernels.scan.linear_scan`) knows nothing of segments or prefixes; here
segment starts become forward resets and the bidirectional prefix becomes the reverse scan's resets.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from birdie.models.kernels.scan import linear_scan
from birdie.models.mixer import SequenceInfo


def reverse_resets(info: SequenceInfo) -> Tensor:
    """(B, T) bool resets of a reverse (right-to-left) scan over the bidirectional prefix.

    State flows from t + 1 into t only when both are prefix positions of the same segment, so the reverse state
    of a prefix position summarises the later prefix positions of its segment, and every target or padding
    position (and the last prefix position, whose successor is the first target-region input) sees nothing
    later. That keeps a prefix's encoding a function of the prefix alone, exactly like the prefix-LM attention
    mask, and makes a prefilled prompt equal the same prompt inside a longer sequence.
    """
    flows = torch.zeros_like(info.prefix)
    flows[:, :-1] = info.prefix[:, :-1] & info.prefix[:, 1:] & (info.segment_ids[:, :-1] == info.segment_ids[:, 1:])
    return ~flows


def channel_resets(info: SequenceInfo, width: int, n_reverse: int) -> Tensor:
    """(B, T, width) bool: per channel, whether its scan resets at t (forward channels first, then reverse)."""
    batch, length = info.segment_ids.shape
    forward = info.segment_start.unsqueeze(-1).expand(batch, length, width - n_reverse)
    if n_reverse == 0:
        return forward
    backward = reverse_resets(info).unsqueeze(-1).expand(batch, length, n_reverse)
    return torch.cat((forward, backward), dim=-1)


def bidirectional_scan(a: Tensor, x: Tensor, info: SequenceInfo, n_reverse: int) -> Tensor:
    """The recurrence of a (possibly bidirectional) layer over packed rows.

    Channels ``[:D - n_reverse]`` run left to right over everything, resetting at segment starts; the last
    ``n_reverse`` channels run right to left over the prefix only (:func:`reverse_resets`). ``n_reverse = 0`` is
    a causal layer. a, x: (B, T, D) -> h: (B, T, D) in the accumulation dtype.
    """
    n_forward = x.shape[-1] - n_reverse
    forward = linear_scan(a[..., :n_forward], x[..., :n_forward], info.segment_start)
    if n_reverse == 0:
        return forward
    backward = linear_scan(a[..., n_forward:], x[..., n_forward:], reverse_resets(info), reverse=True)
    return torch.cat((forward, backward), dim=-1)


@dataclass
class RecurrentState:
    """Decoding cache of a recurrent layer: float32, its size independent of the sequence length.

    Attributes:
        h: (B, n_forward) state of the causal channels (bidirectional layers' reverse half needs no cache: in the
            target region it equals its input).
        conv: (B, conv_width - 1, W) the last inputs of a temporal convolution, oldest first; None without one.
    """

    h: Tensor
    conv: Tensor | None = None
