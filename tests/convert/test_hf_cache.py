"""The recurrent-state cache of ``modeling_birdie.py``: continuing a state equals re-reading the sequence, and
``generate(use_cache=True)`` gives the tokens of ``use_cache=False`` and of birdie's own cached ``generate``."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("transformers")

from birdie.convert.to_hf import convert_to_hf  # noqa: E402
from tests.convert.test_to_hf import PROMPT, _birdie_export, _hf  # noqa: E402

FAMILIES = [("hawk-tiny", {}), ("gated-ssm-tiny", {}), ("supra-tiny", {}), ("transformer-tiny", {"sliding_window": 5})]
IDS = [name if not extra else f"{name}-window" for name, extra in FAMILIES]


def _pair(tmp_path, preset, overrides):
    """(birdie model, HF remote-code model, two prompt rows that differ in one token)."""
    model, tokenizer = _birdie_export(tmp_path / "export", preset, **overrides)
    convert_to_hf(tmp_path / "export", tmp_path / "hf", remote_code=True)
    theirs, _ = _hf(tmp_path / "hf", remote=True)
    ids = torch.as_tensor(tokenizer.encode(PROMPT + " over"), dtype=torch.long)[None].repeat(2, 1)
    ids[1, 3] = 70
    return model, theirs, ids, tokenizer


def _read_lengths(model):
    """The (B, T) shape of every forward's input ids, recorded by a hook on the embedding."""
    shapes: list[tuple[int, ...]] = []
    model.tok_embeddings.register_forward_hook(lambda module, args, out: shapes.append(tuple(args[0].shape)))
    return shapes


@pytest.mark.parametrize("preset,overrides", FAMILIES, ids=IDS)
def test_continued_state_gives_the_logits_of_one_pass(tmp_path, preset, overrides):
    _, theirs, ids, _ = _pair(tmp_path, preset, overrides)
    with torch.no_grad():
        whole = theirs(ids).logits
        out = theirs(ids[:, :9], use_cache=True)
        pieces, state = [out.logits], out.state
        for start, end in [(9, 12)] + [(t, t + 1) for t in range(12, ids.shape[1])]:  # a chunk, then single tokens
            out = theirs(ids[:, start:end], state=state, use_cache=True)
            pieces.append(out.logits)
            state = out.state
    assert state.length == ids.shape[1] and torch.equal(state.tokens, ids)
    assert torch.allclose(torch.cat(pieces, dim=1), whole, atol=1e-5, rtol=0)


@pytest.mark.parametrize("preset,overrides", FAMILIES, ids=IDS)
def test_cached_generation_gives_birdies_tokens(tmp_path, preset, overrides):
    ours, theirs, ids, _ = _pair(tmp_path, preset, overrides)
    reads = _read_lengths(theirs)
    cached = theirs.generate(ids, max_new_tokens=12, do_sample=False, use_cache=True)
    assert reads == [tuple(ids.shape)] + [(2, 1)] * 11  # the prompt once, then one token per step
    uncached = theirs.generate(ids, max_new_tokens=12, do_sample=False, use_cache=False)
    assert torch.equal(cached, uncached)
    assert torch.equal(cached[:, ids.shape[1]:], ours.generate(ids, 12, temperature=0))


@pytest.mark.parametrize("preset", ["hawk-tiny", "transformer-tiny"])
def test_prefix_lm_generation_reads_the_prefix_bidirectionally(tmp_path, preset):
    ours, theirs, ids, tokenizer = _pair(tmp_path, preset, {})
    prefix = ids[:, :9]
    prompt = torch.cat((prefix, torch.full((2, 1), tokenizer.specials.begin_generating)), dim=1)
    prefix_mask = (torch.arange(prompt.shape[1]) < prefix.shape[1])[None].repeat(2, 1)
    expected = ours.generate(prompt, 8, temperature=0, prefix_len=prefix.shape[1])
    assert not torch.equal(expected, ours.generate(prompt, 8, temperature=0))  # the prefix changes the answer
    for use_cache in (True, False):
        got = theirs.generate(prompt, prefix_mask=prefix_mask, max_new_tokens=8, do_sample=False, use_cache=use_cache)
        assert torch.equal(got[:, prompt.shape[1]:], expected), use_cache


def test_beam_search_reorders_the_state(tmp_path):
    _, theirs, ids, _ = _pair(tmp_path, "hawk-tiny", {})
    reads = _read_lengths(theirs)
    cached = theirs.generate(ids, max_new_tokens=6, num_beams=3, do_sample=False)
    assert all(length == 1 for _, length in reads[1:])
    assert torch.equal(cached, theirs.generate(ids, max_new_tokens=6, num_beams=3, do_sample=False, use_cache=False))


def test_a_state_that_does_not_match_the_ids_is_dropped(tmp_path):
    _, theirs, ids, _ = _pair(tmp_path, "gated-ssm-tiny", {})
    with torch.no_grad():
        state = theirs(ids[:, :9], use_cache=True).state
    assert theirs.prepare_inputs_for_generation(ids, state=state)["input_ids"].shape[1] == ids.shape[1] - 9
    swapped = state.select(torch.tensor([1, 0]))  # rows in another order than the ids (a reorder that was missed)
    assert theirs.prepare_inputs_for_generation(ids, state=swapped)["input_ids"].shape[1] == ids.shape[1]
    assert theirs.prepare_inputs_for_generation(ids[:, :9], state=state)["input_ids"].shape[1] == 9  # a rollback
    with pytest.raises(ValueError, match="prefix_mask marks the prefix of a sequence's first call"):
        theirs(ids[:, 9:], state=state, prefix_mask=torch.ones_like(ids[:, 9:]))
