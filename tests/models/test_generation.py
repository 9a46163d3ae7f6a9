"""Decoding: parallel form == steps, cached generation == recomputation, sampling filters, stopping."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import family_checks as checks
from birdie.models import SequenceInfo
from birdie.models.generation import filter_logits

FAMILIES = checks.families()


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("prefix_len", [0, 6])
def test_parallel_form_equals_step_by_step_decoding(family, prefix_len):
    checks.check_step_equals_forward(checks.tiny_model(family), prefix_len=prefix_len)


@pytest.mark.parametrize("family", FAMILIES)
def test_step_never_modifies_the_state_it_is_given(family):
    checks.check_step_leaves_state_unchanged(checks.tiny_model(family))


@pytest.mark.parametrize("family", FAMILIES)
def test_cached_generation_equals_recomputation(family):
    checks.check_generation_matches_recompute(checks.tiny_model(family))


@pytest.mark.parametrize("family", [f for f in FAMILIES if f != "transformer"])
def test_recurrent_state_size_does_not_grow_with_context(family):
    model = checks.tiny_model(family)
    sizes = []
    for length in (4, 40):
        info = SequenceInfo.single(1, length, torch.device("cpu"))
        _, states = model.hidden_states(torch.randint(0, 512, (1, length)), info)
        sizes.append(sum(t.numel() for t in _tensors(states)))
    assert sizes[0] > 0, "no tensors found in the states: _tensors no longer sees inside them"
    assert sizes[0] == sizes[1]


def _tensors(value):
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _tensors(item)
    elif hasattr(value, "__dict__"):
        yield from _tensors(list(vars(value).values()))


def test_eos_stops_rows_and_fills_them():
    model = checks.tiny_model("transformer")
    prompt = torch.randint(0, 512, (1, 5))
    free = model.generate(prompt, 6, temperature=0.0)
    eos = int(free[0, 2])
    stopped = model.generate(prompt, 6, temperature=0.0, eos=eos)
    first = (free[0] == eos).nonzero()[0].item()
    assert stopped[0].tolist() == free[0, : first + 1].tolist()
    two_rows = torch.cat((prompt, torch.randint(0, 512, (1, 5))))
    both = model.generate(two_rows, 6, temperature=0.0, eos=eos)
    assert both[0, : first + 1].tolist() == free[0, : first + 1].tolist()
    assert (both[0, first:] == eos).all()


def test_one_dimensional_prompt_and_zero_tokens():
    model = checks.tiny_model("supra")
    out = model.generate(torch.tensor([1, 2, 3]), 4, temperature=0.0)
    assert out.shape == (4,)
    assert model.generate(torch.tensor([[1, 2]]), 0).shape == (1, 0)


def test_sampling_is_reproducible_and_respects_top_k():
    model = checks.tiny_model("transformer")
    prompt = torch.randint(0, 512, (3, 4))
    a = model.generate(prompt, 8, temperature=1.0, top_k=1, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, model.generate(prompt, 8, temperature=0.0))
    b = model.generate(prompt, 8, temperature=2.0, top_p=0.9, generator=torch.Generator().manual_seed(1))
    c = model.generate(prompt, 8, temperature=2.0, top_p=0.9, generator=torch.Generator().manual_seed(1))
    assert torch.equal(b, c)


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 10_000), st.floats(0.05, 1.0), st.integers(1, 20))
def test_filters_keep_the_smallest_nucleus_and_the_top_k(seed, top_p, top_k):
    logits = torch.randn(2, 20, generator=torch.Generator().manual_seed(seed)) * 3
    kept = torch.isfinite(filter_logits(logits, top_p=top_p))
    probs = logits.softmax(-1)
    for row in range(2):
        kept_probs = probs[row][kept[row]]
        assert kept_probs.sum() >= top_p - 1e-6
        assert kept_probs.sum() - kept_probs.min() < top_p + 1e-6
        dropped = probs[row][~kept[row]]
        assert dropped.numel() == 0 or dropped.max() <= kept_probs.min()
    top = torch.isfinite(filter_logits(logits, top_k=top_k))
    assert (top.sum(-1) == top_k).all()
    assert torch.equal(top, logits >= logits.topk(top_k, dim=-1).values[:, -1:])


@pytest.mark.parametrize("kwargs, message", [
    ({"max_new_tokens": -1}, "max_new_tokens"),
    ({"temperature": -0.5}, "temperature"),
    ({"top_p": 1.5}, "top_p"),
    ({"top_k": 0}, "top_k"),
    ({"prefix_len": 9}, "prefix_len=9"),
])
def test_bad_generation_arguments_fail_clearly(kwargs, message):
    model = checks.tiny_model("transformer")
    arguments = {"max_new_tokens": 2, **kwargs}
    with pytest.raises(ValueError, match=message):
        model.generate(torch.tensor([[1, 2, 3]]), **arguments)
