"""Birdie's Gated SSM block against its equations, with a brute-force definition of the bidirectional prefix.

The packing, prefix, decoding and overfit invariants shared with Hawk run on ``gated-ssm-tiny`` in
``test_hawk.py``.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from birdie import models
from birdie.models.config import ModelConfig
from birdie.models.gated_ssm import GatedSSMMixer
from birdie.models.mixer import SequenceInfo
from birdie.models.registry import get_family


def _config(**overrides) -> ModelConfig:
    values = dict(family="gated_ssm", vocab_size=64, d_model=12, n_layers=2, state_dim=10,
                  bidirectional_layers="alternate")
    return ModelConfig(**(values | overrides))


def _packed_info() -> SequenceInfo:
    """Segments of lengths 5 (prefix 3), 1 (prefix 1), 6 (no prefix), 7 (prefix 7), then 2 padding."""
    segments = [(5, 3), (1, 1), (6, 0), (7, 7)]
    segment_ids, positions, prefix = [], [], []
    for index, (n, p) in enumerate(segments, start=1):
        segment_ids += [index] * n
        positions += list(range(n))
        prefix += [True] * p + [False] * (n - p)
    segment_ids += [0, 0]
    positions += [0, 1]
    prefix += [False, False]
    return SequenceInfo(torch.tensor([segment_ids]), torch.tensor([positions]), torch.tensor([prefix]))


def brute_force_gated_ssm(mixer: GatedSSMMixer, x: torch.Tensor, info: SequenceInfo) -> torch.Tensor:
    """The block for one row x (T, D) with every state written as an explicit sum over the positions it sees.

    Forward channel at t: sum over s <= t in t's segment of (prod_{s < k <= t} f_k) * i_s * z_s.
    Reverse channel at t: t alone outside the prefix; in the prefix, the sum over the run of prefix positions
    t..e of t's segment of (prod_{t <= k < s} f_k) * i_s * z_s.
    """
    seg, prefix = info.segment_ids[0].tolist(), info.prefix[0].tolist()
    length = x.shape[0]
    i, z, o = (x @ mixer.in_proj.weight.T + mixer.in_proj.bias).chunk(3, dim=-1)
    f = x @ mixer.forget_proj.weight.T + mixer.forget_proj.bias
    f, inputs, o = torch.sigmoid(f), torch.sigmoid(i) * z, F.gelu(o, approximate="tanh")
    n_forward = mixer.n_forward
    h = torch.zeros_like(inputs)
    for t in range(length):
        first = t
        while first > 0 and seg[first - 1] == seg[t]:
            first -= 1
        for s in range(first, t + 1):
            h[t, :n_forward] += f[s + 1 : t + 1, :n_forward].prod(dim=0) * inputs[s, :n_forward]
        last = t
        while prefix[t] and last + 1 < length and prefix[last + 1] and seg[last + 1] == seg[t]:
            last += 1
        for s in range(t, last + 1):
            h[t, n_forward:] += f[t:s, n_forward:].prod(dim=0) * inputs[s, n_forward:]
    return (o * h) @ mixer.out_proj.weight.T + mixer.out_proj.bias


@pytest.mark.parametrize("layer", [0, 1])
def test_gated_ssm_matches_brute_force_definition_on_packed_rows(layer):
    torch.manual_seed(0)
    mixer = GatedSSMMixer(_config(), layer).double()
    assert mixer.n_reverse == (5 if layer == 0 else 0)
    with torch.no_grad():
        mixer.in_proj.bias.normal_()  # the biases start at zero
        mixer.forget_proj.bias.normal_()
        mixer.out_proj.bias.normal_()
    info = _packed_info()
    x = torch.randn(1, info.segment_ids.shape[1], 12, dtype=torch.float64)
    with torch.no_grad():
        y, state = mixer(x, info)
        torch.testing.assert_close(y[0], brute_force_gated_ssm(mixer, x[0], info), rtol=0, atol=1e-12)
    assert state.h.shape == (1, mixer.n_forward) and state.h.dtype == torch.float64 and state.conv is None


def test_state_is_float32_and_constant_size_under_bfloat16_inputs():
    mixer = GatedSSMMixer(_config(), 0).bfloat16()
    for length in (3, 40):
        y, state = mixer(torch.randn(2, length, 12, dtype=torch.bfloat16), SequenceInfo.single(2, length, "cpu"))
        assert y.dtype == torch.bfloat16
        assert state.h.dtype == torch.float32 and state.h.shape == (2, mixer.n_forward)


def test_step_at_position_zero_starts_a_fresh_sequence():
    torch.manual_seed(1)
    mixer = GatedSSMMixer(_config(), 1).double()
    x = torch.randn(2, 4, 12, dtype=torch.float64)
    _, stale = mixer(x, SequenceInfo.single(2, 4, "cpu"))
    token = torch.randn(2, 12, dtype=torch.float64)
    fresh_y, _ = mixer.step(token, torch.zeros(2, dtype=torch.long), None)
    reused_y, _ = mixer.step(token, torch.zeros(2, dtype=torch.long), stale)
    parallel_y, _ = mixer(token[:, None], SequenceInfo.single(2, 1, "cpu"))
    assert torch.equal(fresh_y, reused_y)
    torch.testing.assert_close(fresh_y, parallel_y[:, 0], rtol=0, atol=1e-12)


def test_family_is_registered_without_a_separate_mlp():
    family = get_family("gated_ssm")
    assert family.mixer is GatedSSMMixer and not family.has_mlp
    model = models.create("gated-ssm-tiny")
    assert all(block.feed_forward is None for block in model.layers)


def test_paper_block_has_26_2_million_parameters():
    """Birdie Table 7: D = 2048, N = 2560, about 26.2M parameters per fused block (four gates in, one out)."""
    config = models.preset_config("gated-ssm-1.4b")
    with torch.device("meta"):
        mixer = GatedSSMMixer(config, 0)
    d, n = config.d_model, config.recurrent_width
    count = sum(p.numel() for p in mixer.parameters())
    assert count == 4 * (d * n + n) + n * d + d
    assert round(count / 1e6, 1) == 26.2
