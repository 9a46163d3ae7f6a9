"""The scoring core against a naive per-request reference: batching, state reuse, prefix caching, is-greedy,
rolling perplexity, echo log-probs and generation."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from birdie.harness.adapters import load_scoring_model
from birdie.harness.core import Scorer, ScorerConfig
from birdie.harness.states import concat_states, state_row
from birdie.tokenizers import ByteTokenizer
from harness_reference import naive_continuation

WORDS = ["the cat", " sat", " on", " a mat", " dog", "!", " ran far away", "x"]

requests_strategy = st.lists(
    st.tuples(st.lists(st.sampled_from(WORDS[:3]), min_size=1, max_size=3),
              st.lists(st.sampled_from(WORDS), min_size=1, max_size=2)),
    min_size=1, max_size=6,
)

FAST_PATHS = [
    ScorerConfig(batch_size=1, state_reuse=False, prefix_cache_size=0),
    ScorerConfig(batch_size=5, state_reuse=False),
    ScorerConfig(batch_size=2, state_reuse=True, prefix_cache_size=0),
    ScorerConfig(batch_size=16, state_reuse=True, prefix_cache_size=4),
]


def _encode(tokenizer, pieces: list[str]) -> list[int]:
    return [int(t) for t in tokenizer.encode("".join(pieces))]


def _check_against_naive(model, requests, prefix: bool) -> None:
    encoded = [(_encode(model.tokenizer, c), _encode(model.tokenizer, x)) for c, x in requests]
    reference = [naive_continuation(model, c, x, prefix) for c, x in encoded]
    for config in FAST_PATHS:
        scores = Scorer(model, config).loglikelihood(encoded, prefix=prefix)
        for score, (picked, greedy) in zip(scores, reference, strict=True):
            np.testing.assert_allclose(score.token_logprobs, picked, rtol=1e-5, atol=1e-5)
            assert math.isclose(score.logprob, sum(picked), rel_tol=1e-5, abs_tol=1e-4)
            assert score.is_greedy == greedy


@settings(max_examples=12, deadline=None)
@given(requests=requests_strategy, prefix=st.booleans())
def test_numpy_user_module_fast_paths_equal_naive(numpy_model, requests, prefix):
    _check_against_naive(numpy_model, requests, prefix)


@settings(max_examples=4, deadline=None)
@given(requests=requests_strategy, prefix=st.booleans())
def test_birdie_model_fast_paths_equal_naive(birdie_model, requests, prefix):
    _check_against_naive(birdie_model, requests, prefix)


def test_recurrent_models_read_contexts_of_different_lengths_in_one_batch():
    from birdie.harness.adapters import BirdieScoringModel
    from birdie.models import create

    torch.manual_seed(0)
    tok = ByteTokenizer()
    model = BirdieScoringModel(create("supra-tiny", vocab_size=tok.vocab_size), tok)  # causal-only family
    requests = [(_encode(tok, ["the cat" + " sat" * n]), _encode(tok, [c])) for n in range(5) for c in (" on", "!")]
    scorer = Scorer(model, ScorerConfig(batch_size=16))
    scores = scorer.loglikelihood(requests)
    assert scorer.stats["model_calls"] == 2  # one call reads the five contexts, one runs all ten tails
    for score, (context, continuation) in zip(scores, requests, strict=True):
        picked, greedy = naive_continuation(model, context, continuation, prefix=False)
        np.testing.assert_allclose(score.token_logprobs, picked, rtol=1e-5, atol=1e-5)
        assert score.is_greedy == greedy


def test_prefix_scoring_uses_the_bidirectional_prefix(birdie_model):
    tok = birdie_model.tokenizer
    request = [(_encode(tok, ["the cat sat on"]), _encode(tok, [" a mat"]))]
    prefix = Scorer(birdie_model).loglikelihood(request, prefix=True)[0].logprob
    causal = Scorer(birdie_model).loglikelihood(request, prefix=False)[0].logprob
    assert not math.isclose(prefix, causal, rel_tol=1e-4)


def test_prefix_cache_is_reused_across_calls_and_gives_the_same_scores(numpy_model):
    tok = numpy_model.tokenizer
    requests = [(_encode(tok, ["the cat sat"]), _encode(tok, [c])) for c in (" on", " a mat", "!")]
    scorer = Scorer(numpy_model, ScorerConfig(prefix_cache_size=8))
    first = scorer.loglikelihood(requests)
    assert scorer.stats["cache_hits"] == 0 and scorer.stats["context_tokens"] == len(requests[0][0])
    second = scorer.loglikelihood(requests)
    assert scorer.stats["cache_hits"] == 1 and scorer.stats["context_tokens"] == len(requests[0][0])
    assert first == second


def test_state_reuse_reads_a_shared_context_once(numpy_model):
    tok = numpy_model.tokenizer
    context = _encode(tok, ["the cat sat on the mat and the dog"])
    requests = [(context, _encode(tok, [c])) for c in (" ran", " sat", " x")]
    plain = Scorer(numpy_model, ScorerConfig(state_reuse=False))
    reuse = Scorer(numpy_model, ScorerConfig(state_reuse=True))
    plain_scores = [s.logprob for s in plain.loglikelihood(requests)]
    assert plain_scores == pytest.approx([s.logprob for s in reuse.loglikelihood(requests)], rel=1e-5)
    assert plain.stats["context_tokens"] == 3 * len(context)
    assert reuse.stats["context_tokens"] == len(context)


def test_greedy_continuation_is_greedy_and_a_perturbed_one_is_not(numpy_model):
    tok = numpy_model.tokenizer
    context = _encode(tok, ["the dog"])
    scorer = Scorer(numpy_model)
    greedy = scorer.generate(context, 5).token_ids
    assert scorer.loglikelihood([(context, greedy)])[0].is_greedy
    other = greedy[:-1] + [(greedy[-1] + 1) % 256]
    assert not scorer.loglikelihood([(context, other)])[0].is_greedy


def test_rolling_equals_naive_causal_scoring(numpy_model):
    from lm_eval.utils import get_rolling_token_windows, make_disjoint_window

    tok = numpy_model.tokenizer
    document = _encode(tok, ["the cat sat on a mat"])
    eos = tok.specials.eos
    whole, _ = naive_continuation(numpy_model, [eos], document, prefix=False)
    total = Scorer(numpy_model).loglikelihood_rolling([document], eos, len(document) + 4)[0]
    assert math.isclose(total, sum(whole), rel_tol=1e-5)
    windows = [make_disjoint_window(w) for w in get_rolling_token_windows(document, eos, 5, context_len=1)]
    assert len(windows) > 2
    expected = sum(sum(naive_continuation(numpy_model, c, x, prefix=False)[0]) for c, x in windows)
    assert math.isclose(Scorer(numpy_model).loglikelihood_rolling([document], eos, 5)[0], expected, rel_tol=1e-5)


def test_prompt_logprobs_have_one_entry_per_token_plus_one(numpy_model):
    tok = numpy_model.tokenizer
    prompts = [_encode(tok, ["the cat sat"]), _encode(tok, ["a"])]
    results = Scorer(numpy_model, ScorerConfig(batch_size=2)).prompt_logprobs(prompts, 3)
    assert len(results) == len(prompts)
    for prompt, scored in zip(prompts, results):
        assert len(scored.token_logprobs) == len(prompt) + 1 == len(scored.top)
        assert scored.token_logprobs[0] is None and scored.top[0] is None
        picked, _ = naive_continuation(numpy_model, prompt[:1], prompt[1:] + [scored.next_token], prefix=False) \
            if len(prompt) > 1 else naive_continuation(numpy_model, prompt, [scored.next_token], prefix=False)
        np.testing.assert_allclose(scored.token_logprobs[-len(picked):], picked, rtol=1e-5, atol=1e-5)
        ids, values = scored.top[-1]
        assert ids[0] == scored.next_token and values[0] == scored.token_logprobs[-1]
        assert values == sorted(values, reverse=True)


def test_generation_stops_at_stop_strings_max_tokens_and_eos(numpy_model):
    tok = numpy_model.tokenizer
    prompt = _encode(tok, ["the cat"])
    scorer = Scorer(numpy_model, ScorerConfig(state_reuse=False))
    free = scorer.generate(prompt, 12)
    assert free.finish_reason == "length" and len(free.token_ids) == 12
    assert Scorer(numpy_model).generate(prompt, 12).token_ids == free.token_ids  # state reuse == plain
    stop = free.text[3:5]
    stopped = scorer.generate(prompt, 12, stop=[stop])
    assert stopped.finish_reason == "stop" and stopped.text == free.text[: free.text.find(stop)]

    class EosAfterTwo:
        tokenizer, prefix_lm, max_length = numpy_model.tokenizer, True, 64

        def logits(self, input_ids, prefix_lengths):
            out = np.zeros((*input_ids.shape, tok.vocab_size), dtype=np.float32)
            out[:, :, 65] = 1.0
            out[:, len(prompt) + 2 :, tok.specials.eos] = 2.0
            return out

    ended = Scorer(EosAfterTwo()).generate(prompt, 10)
    assert ended.text == "AA" and ended.finish_reason == "stop"


def test_invalid_requests_raise_clear_errors(numpy_model):
    scorer = Scorer(numpy_model)
    with pytest.raises(ValueError, match="empty continuation"):
        scorer.loglikelihood([([1, 2], [])])
    with pytest.raises(ValueError, match="at least one context token"):
        scorer.loglikelihood([([], [1])], prefix=False)
    with pytest.raises(ValueError, match="batch_size"):
        ScorerConfig(batch_size=0)
    causal = Scorer(load_scoring_model(module="birdie.harness.numpy_example", tag="tiny", scoring="causal"))
    with pytest.raises(ValueError, match="prefix scoring needs a prefix-LM model"):
        causal.loglikelihood([([1, 2], [3])], prefix=True)
    with pytest.raises(ValueError, match="prefix generation needs a prefix-LM model"):
        causal.generate([1, 2, 3], 3, prefix=True)


def test_state_rows_and_concatenation_handle_nested_states():
    @dataclasses.dataclass
    class State:
        h: torch.Tensor
        conv: torch.Tensor | None = None

    one = ([State(torch.ones(1, 3)), (np.zeros((1, 2)), torch.zeros(1, 4, 5))], 7)
    two = ([State(torch.full((2, 3), 2.0)), (np.ones((2, 2)), torch.ones(2, 4, 5))], 7)
    joined = concat_states([one, two, one])
    assert joined[1] == 7 and joined[0][0].conv is None
    assert joined[0][0].h[:, 0].tolist() == [1.0, 2.0, 2.0, 1.0]
    assert joined[0][1][0].shape == (4, 2) and joined[0][1][1].shape == (4, 4, 5)
    row = state_row(joined, 2)
    assert row[0][0].h.tolist() == [[2.0, 2.0, 2.0]] and row[0][1][0].tolist() == [[1.0, 1.0]]
    with pytest.raises(TypeError, match="cannot batch a state leaf"):
        concat_states([object(), object()])


def test_a_family_registered_with_a_fixed_size_state_gets_the_batched_context_path():
    from birdie.harness.adapters import BirdieScoringModel
    from birdie.models import ModelConfig, create, get_family, register_family

    hawk = get_family("hawk")
    register_family("test_fixed_state", hawk.mixer, has_mlp=True, fixed_size_state=True)
    register_family("test_cache_state", hawk.mixer, has_mlp=True)
    tok = ByteTokenizer()
    base = create("hawk-tiny", vocab_size=tok.vocab_size).config.to_dict()
    torch.manual_seed(0)
    fixed = BirdieScoringModel(create(ModelConfig.from_dict({**base, "family": "test_fixed_state"})), tok)
    other = BirdieScoringModel(create(ModelConfig.from_dict({**base, "family": "test_cache_state"})), tok)
    assert callable(getattr(fixed, "scan_contexts", None)) and not hasattr(other, "scan_contexts")
    requests = [(_encode(tok, ["a cat" + " sat" * n]), _encode(tok, [" on"])) for n in range(4)]
    scorer = Scorer(fixed, ScorerConfig(batch_size=8))
    scores = scorer.loglikelihood(requests, prefix=False)
    assert scorer.stats["model_calls"] == 2  # one call reads the four contexts, one runs their tails
    for score, (context, continuation) in zip(scores, requests):
        picked, _ = naive_continuation(fixed, context, continuation, prefix=False)
        np.testing.assert_allclose(score.token_logprobs, picked, rtol=1e-5, atol=1e-5)
