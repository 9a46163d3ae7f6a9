"""The attention mixer: its mask against the definition, GQA, RoPE."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import family_checks as checks
from birdie.models import SequenceInfo
from birdie.models.layers import apply_rope
from birdie.models.transformer import attention_mask


@st.composite
def packed_layouts(draw):
    """A packed row: segments of random lengths with random prefix lengths, then padding."""
    lengths = draw(st.lists(st.integers(1, 6), min_size=1, max_size=4))
    padding = draw(st.integers(0, 3))
    segments, prefix = [], []
    for index, length in enumerate(lengths, start=1):
        prefix_len = draw(st.integers(0, length))
        segments += [index] * length
        prefix += [1] * prefix_len + [0] * (length - prefix_len)
    segments += [0] * padding
    prefix += [0] * padding
    return torch.tensor([segments]), torch.tensor([prefix])


@settings(max_examples=60, deadline=None)
@given(packed_layouts(), st.booleans())
def test_mask_matches_definition(layout, bidirectional):
    segments, prefix = layout
    info = SequenceInfo.from_batch(torch.zeros_like(segments), attention_mask=prefix, segment_ids=segments)
    mask = attention_mask(info, bidirectional)[0, 0]
    length = segments.shape[1]
    for q in range(length):
        for k in range(length):
            same = segments[0, q] == segments[0, k]
            sees = k <= q or (bidirectional and bool(prefix[0, q]) and bool(prefix[0, k]))
            assert bool(mask[q, k]) == bool(same and sees), (q, k)
    assert mask.any(dim=1).all(), "a query row is fully masked"


def test_grouped_query_attention_keeps_the_contract():
    model = checks.tiny_model("transformer", n_kv_heads=2)
    assert model.layers[0].attention.in_proj.out_features == 64 + 2 * 2 * 16
    checks.check_packed_equals_separate(model)
    checks.check_step_equals_forward(model)


def test_unpacked_fast_path_equals_masked_path():
    attention = checks.tiny_model("transformer").layers[0].attention
    x = torch.randn(2, 12, 64)
    info = SequenceInfo.single(2, 12, x.device)
    fast, _ = attention(x, info)
    q, k, v = attention._project(x, info.position_ids)
    masked = attention.out_proj(attention._attend(q, k, v, attention_mask(info, True), is_causal=False))
    assert torch.allclose(fast, masked, atol=1e-6)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 500), st.integers(0, 500), st.integers(1, 50))
def test_rope_scores_depend_only_on_relative_position(i, j, shift):
    torch.manual_seed(0)
    q, k = torch.randn(1, 1, 2, 16, dtype=torch.float64).unbind(2)
    q, k = q[:, :, None], k[:, :, None]

    def score(pq, pk):
        rq = apply_rope(q, torch.tensor([[pq]]), 10_000.0)
        rk = apply_rope(k, torch.tensor([[pk]]), 10_000.0)
        return (rq * rk).sum()

    assert torch.allclose(score(i, j), score(i + shift, j + shift), atol=1e-9)


def test_rope_base_changes_the_rotation():
    x = torch.randn(1, 1, 1, 8)
    position = torch.tensor([[7]])
    assert not torch.allclose(apply_rope(x, position, 10_000.0), apply_rope(x, position, 250_000.0))
    assert torch.equal(apply_rope(x, torch.tensor([[0]]), 10_000.0), x)
