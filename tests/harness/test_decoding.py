"""Batched greedy decoding equals decoding each prompt alone (Scorer.generate), for every model path and batch size."""

from __future__ import annotations

import numpy as np
import pytest

from birdie.harness.core import Scorer, ScorerConfig
from birdie.harness.decoding import greedy_batch

TEXTS = ["the cat sat on the mat", "a", "the dog ran", "xyz", "the cat sat on the rug", "once upon a time there"]
LIMITS = [6, 4, 0, 7, 5, 3]


def _prompts(tokenizer):
    return [[int(t) for t in tokenizer.encode(text)] for text in TEXTS]


def _one_by_one(model, prompts, state_reuse, **kwargs):
    scorer = Scorer(model, ScorerConfig(state_reuse=state_reuse))
    splits = kwargs.pop("prefix_lengths", None) or [None] * len(prompts)
    return [scorer.generate(p, n, prefix_length=s, **kwargs) for p, n, s in zip(prompts, LIMITS, splits)]


@pytest.mark.parametrize("state_reuse", [True, False])
@pytest.mark.parametrize("prefix", [True, False])
def test_batched_equals_unbatched_at_every_batch_size(birdie_model, prefix, state_reuse):
    """Transformer (equal-length groups), Hawk and Gated SSM (one left-padded read), and the plain path."""
    prompts = _prompts(birdie_model.tokenizer)
    prompts[3] = prompts[0][:5] + prompts[3]  # one split inside the prompt: prefix, begin_generating, the rest
    splits = [None, None, None, 5, None, 2] if prefix else None
    expected = _one_by_one(birdie_model, prompts, state_reuse, prefix=prefix, prefix_lengths=splits)
    assert sum(len(g.token_ids) for g in expected) == sum(LIMITS)  # random weights: no EOS, every budget used
    for batch_size in (1, 2, 4, 16):
        scorer = Scorer(birdie_model, ScorerConfig(batch_size=batch_size, state_reuse=state_reuse))
        assert greedy_batch(scorer, prompts, LIMITS, prefix=prefix, prefix_lengths=splits) == expected, batch_size


def test_stop_strings_eos_and_one_token_prompts_on_the_numpy_model(numpy_model):
    prompts = _prompts(numpy_model.tokenizer)
    free = _one_by_one(numpy_model, prompts, True, prefix=False)
    stop = free[0].text[2:4]
    expected = _one_by_one(numpy_model, prompts, True, stop=[stop], prefix=False)
    assert expected[0].finish_reason == "stop" and expected[0].text == free[0].text[: free[0].text.find(stop)]
    for batch_size, state_reuse in ((3, True), (16, True), (4, False)):
        scorer = Scorer(numpy_model, ScorerConfig(batch_size=batch_size, state_reuse=state_reuse))
        assert greedy_batch(scorer, prompts, LIMITS, stop=[stop], prefix=False) == expected


def test_a_row_that_ends_with_eos_leaves_the_batch_and_the_others_go_on(numpy_model):
    tokenizer = numpy_model.tokenizer
    eos = tokenizer.specials.eos

    class EosAfterTwoForShortPrompts:
        """Always 'A', except EOS from the third new token of a row whose prompt (with begin_generating) is 4 long."""

        prefix_lm, max_length = True, 64

        def __init__(self) -> None:
            self.tokenizer = tokenizer

        def logits(self, input_ids, prefix_lengths):
            out = np.zeros((*input_ids.shape, tokenizer.vocab_size), dtype=np.float32)
            out[:, :, 65] = 1.0
            short = (input_ids != 0).sum(axis=1) <= 6
            out[short, 5:, eos] = 2.0
            return out

    prompts = [[1, 2, 3], [1, 2, 3, 4, 5, 6, 7]]
    results = greedy_batch(Scorer(EosAfterTwoForShortPrompts(), ScorerConfig(batch_size=2)), prompts, [5, 5])
    assert [(g.text, g.finish_reason) for g in results] == [("AA", "stop"), ("AAAAA", "length")]


def test_bad_arguments(numpy_model):
    scorer = Scorer(numpy_model)
    with pytest.raises(ValueError, match="2 prompts but 1 max_new_tokens"):
        greedy_batch(scorer, [[1], [2]], [3])
    with pytest.raises(ValueError, match=r"max_new_tokens=-1 \(prompt 0\)"):
        greedy_batch(scorer, [[1]], [-1])
    with pytest.raises(ValueError, match=r"prefix_length=5 \(prompt 0\) must lie in \[0, 2\]"):
        greedy_batch(scorer, [[1, 2]], [3], prefix_lengths=[5])
    with pytest.raises(ValueError, match="empty prompt"):
        greedy_batch(scorer, [[]], [3], prefix=False)


def test_lm_eval_generate_until_batches_greedy_requests_with_the_same_outputs(numpy_model):
    from lm_eval.api.instance import Instance

    from birdie.harness.lm import BirdieLM

    lm = BirdieLM(model=numpy_model, batch_size=4)
    options = [{"until": ["\n"], "max_gen_toks": 6}, {"until": ["e"], "max_gen_toks": 9},
               {"until": ["\n"], "max_gen_toks": 3}, {"until": [], "max_gen_toks": 5, "temperature": 0.7}]
    requests = [Instance("generate_until", {}, (text, kwargs), 0) for text, kwargs in zip(TEXTS, options)]
    expected = []
    for text, kwargs in zip(TEXTS, options):
        stop = kwargs["until"] + ["<|eos|>"]
        prompt = [int(t) for t in numpy_model.tokenizer.encode(text)]
        expected.append(lm.scorer.generate(prompt, kwargs["max_gen_toks"], stop,
                                           temperature=kwargs.get("temperature", 0.0), seed=lm.seed).text)
    assert lm.generate_until(requests) == expected


@pytest.mark.parametrize("prefix_length", [None, [3, 0, 2, 1, 4, 5]])
def test_a_greedy_server_request_decodes_its_prompts_together_as_one_at_a_time(birdie_model, prefix_length,
                                                                              monkeypatch):
    """``/v1/completions`` with several prompts at temperature 0 goes through the batched decoder and answers what
    each prompt alone gets (stock form: causal; ``prefix_length``: the prefix-LM extension)."""
    from birdie.harness.endpoint import ModelEndpoint

    prompts = _prompts(birdie_model.tokenizer)
    body = {"prompt": prompts, "max_tokens": 5, "temperature": 0}
    if prefix_length is not None:
        body["prefix_length"] = prefix_length
    scorer = Scorer(birdie_model, ScorerConfig(batch_size=4))
    splits = prefix_length or [None] * len(prompts)
    expected = [scorer.generate(p, 5, prefix=prefix_length is not None, prefix_length=s)
                for p, s in zip(prompts, splits)]
    monkeypatch.setattr(scorer, "generate", lambda *a, **k: pytest.fail("a greedy request decoded one at a time"))
    reply = ModelEndpoint("m", scorer).completions(body)
    assert [c["text"] for c in reply["choices"]] == [g.text for g in expected]
    assert reply["usage"]["completion_tokens"] == sum(len(g.token_ids) for g in expected)
