"""SUPRA: the chunked decayed linear attention against its reference, the decays, open_lm compatibility."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import family_checks as checks
from birdie.models import create
from birdie.models.kernels.decay_attention import decay_linear_attention, decay_linear_attention_step
from birdie.models.kernels.decay_attention.naive import decay_linear_attention_reference
from birdie.models.supra import decay_rates


def _inputs(batch, heads, length, dim, seed=0, dtype=torch.float64):
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, heads, length, dim, generator=generator, dtype=dtype) for _ in range(3)]


@st.composite
def segment_rows(draw, batch=2):
    """(B, T) segment ids: random run lengths per row, equal total length, padding (0) runs allowed."""
    length = draw(st.integers(1, 40))
    rows = []
    for _ in range(batch):
        cuts = sorted(draw(st.lists(st.integers(1, length - 1), max_size=5, unique=True))) if length > 1 else []
        bounds = [0] + cuts + [length]
        ids = [draw(st.sampled_from([0, 1, 2, 3, 4])) for _ in range(len(bounds) - 1)]
        rows.append(sum(([ident] * (hi - lo) for ident, lo, hi in zip(ids, bounds, bounds[1:])), []))
    return torch.tensor(rows)


@settings(max_examples=40, deadline=None)
@given(segment_rows(), st.sampled_from([1, 3, 8, 16]), st.sampled_from(["alibi", "retnet", "none"]))
def test_chunked_equals_reference_forward_and_gradients(segments, chunk_size, decay):
    heads = 4
    q, k, v = (t.requires_grad_() for t in _inputs(2, heads, segments.shape[1], 5))
    log_decay = -decay_rates(heads, decay)
    out, state = decay_linear_attention(q, k, v, log_decay, segments, chunk_size)
    ref_out, ref_state = decay_linear_attention_reference(q, k, v, log_decay, segments)
    assert torch.allclose(out, ref_out, atol=1e-10) and torch.allclose(state, ref_state, atol=1e-10)
    weights = torch.randn_like(out)
    grads = torch.autograd.grad((out * weights).sum() + state.sum(), (q, k, v))
    ref_grads = torch.autograd.grad((ref_out * weights).sum() + ref_state.sum(), (q, k, v))
    for grad, ref_grad in zip(grads, ref_grads):
        assert torch.allclose(grad, ref_grad, atol=1e-10)


def test_chunked_form_passes_gradcheck():
    q, k, v = (t.requires_grad_() for t in _inputs(1, 2, 11, 3))
    segments = torch.tensor([[1, 1, 1, 1, 2, 2, 2, 2, 2, 0, 0]])
    log_decay = -decay_rates(2, "alibi")
    assert torch.autograd.gradcheck(
        lambda q, k, v: decay_linear_attention(q, k, v, log_decay, segments, chunk_size=4), (q, k, v)
    )


def test_float32_chunked_matches_float64_reference():
    q, k, v = _inputs(2, 4, 300, 16, dtype=torch.float32)
    segments = torch.tensor([[1] * 130 + [2] * 170, [1] * 300])
    log_decay = -decay_rates(4, "alibi")
    out, _ = decay_linear_attention(q, k, v, log_decay, segments, chunk_size=64)
    ref, _ = decay_linear_attention_reference(q.double(), k.double(), v.double(), log_decay, segments)
    assert (out.double() - ref).abs().max() / ref.abs().max() < 1e-5


def test_step_continues_the_reference_recurrence():
    q, k, v = _inputs(2, 3, 9, 4)
    log_decay = -decay_rates(3, "alibi")
    segments = torch.ones(2, 9, dtype=torch.long)
    ref, _ = decay_linear_attention_reference(q, k, v, log_decay, segments)
    _, state = decay_linear_attention(q[:, :, :5], k[:, :, :5], v[:, :, :5], log_decay, segments[:, :5], 2)
    for t in range(5, 9):
        out, state = decay_linear_attention_step(q[:, :, t], k[:, :, t], v[:, :, t], log_decay, state)
        assert torch.allclose(out, ref[:, :, t], atol=1e-12)


def test_alibi_decays_match_open_lm():
    gammas = torch.exp(-decay_rates(8, "alibi"))
    assert math.isclose(gammas[0].item(), math.exp(-0.5)) and math.isclose(gammas[-1].item(), math.exp(-1 / 256))
    assert math.isclose(torch.exp(-decay_rates(32, "alibi"))[-1].item() ** 2048, 3.35e-4, rel_tol=1e-2)
    # Non-power-of-two head counts interleave ALiBi's 2H set (upstream crashes here).
    twelve = decay_rates(12, "alibi")
    assert torch.equal(twelve[:8], decay_rates(8, "alibi"))
    assert torch.equal(twelve[8:], decay_rates(16, "alibi")[0::2][:4])
    retnet_gammas = 1 - 2.0 ** (-5 - torch.arange(4.0, dtype=torch.float64))
    assert torch.allclose(torch.exp(-decay_rates(4, "retnet")), retnet_gammas)


def test_grouped_query_supra_keeps_the_contract():
    model = checks.tiny_model("supra", n_kv_heads=2)
    assert model.layers[0].attention._totrain_embed_kv is not None
    checks.check_packed_equals_separate(model)
    checks.check_step_equals_forward(model)


def test_softmax_open_lm_checkpoint_loads_leaving_only_new_supra_weights():
    softmax = create("linear_tiny", family="transformer", vocab_size=300, n_layers=2)
    supra = create("linear_tiny", vocab_size=300, n_layers=2)
    missing, unexpected = supra.load_state_dict(softmax.state_dict(), strict=False)
    assert unexpected == []
    assert missing and all(".attention._totrain_" in key for key in missing)
    assert {key.split(".attention.")[1].rsplit(".", 1)[0] for key in missing} == {
        "_totrain_embed", "_totrain_q_norm", "_totrain_k_norm"}


def test_supra_refuses_bidirectional_layers():
    with pytest.raises(ValueError, match="SUPRA layers are causal"):
        create("supra-tiny", bidirectional_layers="alternate")


def test_supra_is_exact_in_float64():
    model = checks.tiny_model("supra").double()
    ids = torch.randint(0, 512, (1, 40))
    logits, _ = model(ids)
    assert logits.dtype == torch.float64
    attention = model.layers[0].attention
    x = torch.randn(1, 40, 64, dtype=torch.float64)
    q, k, v = attention._features(x, torch.arange(40)[None])
    chunked, _ = decay_linear_attention(q, k, v, attention.log_decay, torch.ones(1, 40, dtype=torch.long), 16)
    reference, _ = decay_linear_attention_reference(q, k, v, attention.log_decay, torch.ones(1, 40, dtype=torch.long))
    assert torch.allclose(chunked, reference, atol=1e-12)


def test_state_stays_float32_under_bf16_autocast():
    q, k, v = _inputs(1, 2, 70, 8, dtype=torch.float32)
    segments = torch.ones(1, 70, dtype=torch.long)
    log_decay = -decay_rates(2, "alibi")
    expected, expected_state = decay_linear_attention(q, k, v, log_decay, segments, 32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, state = decay_linear_attention(q, k, v, log_decay, segments, 32)
    assert out.dtype == state.dtype == torch.float32
    assert torch.equal(out, expected) and torch.equal(state, expected_state)
