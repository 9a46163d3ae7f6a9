"""Defaults that agree between the in-process lm-eval model and the server: scoring mode from the training record,
truncation and generation caps, state reuse per request type, model names, and clear errors."""

from __future__ import annotations

import logging
import types
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from birdie.harness.adapters import BirdieScoringModel, UserModuleModel, load_scoring_model
from birdie.harness.core import Scorer, ScorerConfig
from birdie.harness.endpoint import ModelEndpoint, RequestError
from birdie.harness.lm import BirdieLM
from birdie.tokenizers import ByteTokenizer
from harness_reference import naive_continuation, naive_generate


def _export(directory, record: dict | None, preset: str = "transformer-tiny", **overrides) -> str:
    from birdie.models import create
    from birdie.train.export import export_model, write_training_record

    torch.manual_seed(3)
    tokenizer = ByteTokenizer()
    model = create(preset, vocab_size=tokenizer.vocab_size, **overrides)
    export_model(directory, model, model.config.to_dict(), tokenizer)
    if record is not None:
        write_training_record(directory, record)
    return str(directory)


@pytest.mark.parametrize("record, expected", [({"prefix_lm": False}, False), ({"prefix_lm": True}, True)])
def test_auto_scoring_follows_the_training_record(tmp_path, caplog, record, expected):
    checkpoint = _export(tmp_path, record)  # transformer-tiny has bidirectional layers either way
    with caplog.at_level(logging.WARNING, logger="birdie.harness"):
        assert load_scoring_model(checkpoint=checkpoint).prefix_lm is expected
    assert "guesses" not in caplog.text


def test_an_export_without_a_training_record_is_guessed_with_a_warning(tmp_path, caplog):
    checkpoint = _export(tmp_path, None)
    with caplog.at_level(logging.WARNING, logger="birdie.harness"):
        assert load_scoring_model(checkpoint=checkpoint).prefix_lm is True
    assert "has no training.json" in caplog.text and "guesses 'prefix'" in caplog.text
    assert load_scoring_model(checkpoint=checkpoint, scoring="causal").prefix_lm is False


def test_a_training_record_without_prefix_lm_is_an_error(tmp_path):
    checkpoint = _export(tmp_path, {"agent": "ntp"})
    with pytest.raises(ValueError, match="training.json has no boolean 'prefix_lm'"):
        load_scoring_model(checkpoint=checkpoint)


def test_results_are_named_after_the_checkpoint_or_module(tmp_path):
    from lm_eval.loggers.evaluation_tracker import GeneralConfigTracker

    from birdie.harness.cli import _name_results_after_the_model

    checkpoint = _export(tmp_path / "run7" / "export", {"prefix_lm": False})
    lm = BirdieLM(checkpoint=checkpoint)
    assert lm.model_name == "run7/export" == lm.config._name_or_path
    assert BirdieLM(module="birdie.harness.numpy_example", tag="tiny").model_name == "birdie.harness.numpy_example:tiny"
    original = GeneralConfigTracker._get_model_name
    try:
        _name_results_after_the_model()
        assert GeneralConfigTracker._get_model_name(f"checkpoint={checkpoint},scoring=causal") == "run7/export"
        assert GeneralConfigTracker._get_model_name("module=pkg.mod,tag=t") == "pkg.mod:t"
        assert GeneralConfigTracker._get_model_name("pretrained=gpt2") == "gpt2"
    finally:
        GeneralConfigTracker._get_model_name = original


@pytest.fixture(scope="module")
def short_causal_model():
    """A causal transformer that takes 32 positions."""
    from birdie.models import create

    torch.manual_seed(0)
    tokenizer = ByteTokenizer()
    model = create("transformer-tiny", vocab_size=tokenizer.vocab_size, max_seq_len=32, bidirectional_layers="none")
    return BirdieScoringModel(model, tokenizer, prefix_lm=False)


def test_default_max_length_is_the_advertised_model_max_length(short_causal_model):
    endpoint = ModelEndpoint("m", Scorer(short_causal_model))
    advertised = endpoint.tokenizer_info()["model_max_length"]
    assert BirdieLM(model=short_causal_model)._window == BirdieLM(model=short_causal_model,
                                                                   max_length=advertised)._window == advertised - 1


@pytest.mark.parametrize("max_gen_toks", [256, 8])
def test_generation_is_cut_and_capped_identically_in_process_and_through_the_server(short_causal_model, caplog,
                                                                                    max_gen_toks):
    lm = BirdieLM(model=short_causal_model)  # lm-eval's default max_gen_toks is 256 > 32 positions
    endpoint = ModelEndpoint("m", Scorer(short_causal_model))
    context = "the cat sat on the mat and looked at the dog for a long while"
    with caplog.at_level(logging.WARNING, logger="birdie.harness"):
        [local] = lm.generate_until([SimpleNamespace(args=(context, {"until": ["\n"], "max_gen_toks": max_gen_toks}))])
    # what lm-eval's local-completions client sends: its own left cut of the prompt, then the raw budget
    ids = lm.tok_encode(context)
    sent = ids[-(lm._window - max_gen_toks) :]
    reply = endpoint.completions({"prompt": [sent], "max_tokens": max_gen_toks, "temperature": 0,
                                  "stop": ["\n", "<|eos|>"]})
    assert reply["choices"][0]["text"] == local
    kept = sent[-31:] or [short_causal_model.tokenizer.specials.eos]
    budget = min(max_gen_toks, 32 - len(kept))
    assert local == naive_generate(short_causal_model, kept, budget, ["\n", "<|eos|>"], prefix=False)
    if max_gen_toks == 256:
        assert "generation is capped at" in caplog.text


def test_a_continuation_longer_than_the_window_is_scored_on_its_last_tokens(caplog):
    causal = load_scoring_model(module="birdie.harness.numpy_example", tag="tiny", scoring="causal")
    lm = BirdieLM(model=causal, max_length=16)
    tok = causal.tokenizer
    context, continuation = [int(t) for t in tok.encode("abc")], [int(t) for t in tok.encode(" a long continuation")]
    with caplog.at_level(logging.WARNING, logger="birdie.harness"):
        [(logprob, _)] = lm._loglikelihood_tokens([(None, context, continuation)])
    whole = (context + continuation)[-15:]
    picked, _ = naive_continuation(causal, whole[:1], whole[1:], prefix=False)
    assert logprob == pytest.approx(sum(picked), rel=1e-5)
    assert "truncated from the left" in caplog.text and "scored on its last 14 tokens" in caplog.text


def test_rolling_windows_run_without_state_reuse_unless_asked(numpy_model, monkeypatch):
    documents = [[int(t) for t in numpy_model.tokenizer.encode("the cat sat on the mat. " * 3)]]
    eos = numpy_model.tokenizer.specials.eos
    expected = Scorer(numpy_model, ScorerConfig(state_reuse=False)).loglikelihood_rolling(documents, eos, 20)
    with_reuse = Scorer(numpy_model, ScorerConfig(rolling_state_reuse=True))
    assert with_reuse.loglikelihood_rolling(documents, eos, 20)[0] == pytest.approx(expected[0], rel=1e-5)
    assert with_reuse.stats["context_tokens"] > 0  # windows were read as contexts, then continued from a state
    default = Scorer(numpy_model)
    monkeypatch.setattr(numpy_model, "scan", lambda *a, **k: pytest.fail("rolling windows used the state path"))
    assert default.loglikelihood_rolling(documents, eos, 20) == expected


def test_chat_templates_are_refused_with_the_reason(numpy_model):
    from birdie.harness.evaluation import evaluate

    lm = BirdieLM(model=numpy_model)
    with pytest.raises(ValueError, match="this model has no chat template"):
        lm.apply_chat_template([{"role": "user", "content": "hi"}])
    with pytest.raises(ValueError, match="this model has no chat template"):
        evaluate(lm, tasks=["birdie_ll"], builtin_tasks=False, apply_chat_template=True, limit=1)
    with pytest.raises(RequestError, match="this model has no chat template"):
        ModelEndpoint("m", Scorer(numpy_model)).tokenize({"prompt": [{"role": "user", "content": "hi"}]})


def _module(vocab: int, shape_bug: bool = False, tokenizer=None) -> types.ModuleType:
    module = types.ModuleType("user_model")
    module.load_model = lambda tag, **kw: np.random.default_rng(0).normal(size=(vocab, vocab)).astype(np.float32)
    module.load_tokenizer = lambda tag, **kw: tokenizer or "bytes"

    def logits(weights, input_ids):
        out = weights[np.asarray(input_ids)]
        return out[:, :-1] if shape_bug else out

    module.logits = logits
    if shape_bug:
        module.VOCAB_SIZE = vocab  # no probe call: the scored request itself meets the bug
    return module


def test_logits_of_the_wrong_shape_name_the_expected_shape():
    model = UserModuleModel(_module(ByteTokenizer().vocab_size, shape_bug=True))
    with pytest.raises(ValueError, match=r"user_model.logits returned logits of shape \(1, 2, \d+\); expected "
                                         r"\(batch, length, vocab\) = \(1, 3, V\)"):
        Scorer(model).loglikelihood([([1, 2], [3, 4])])


def test_a_tokenizer_smaller_than_the_special_token_range_is_a_clear_error():
    class Letters:  # a user tokenizer with 256 ids; birdie appends its special tokens after them
        vocab_size = 256

        def encode(self, text):
            return list(text.encode())

        def decode(self, ids):
            return bytes(i for i in ids if i < 256).decode(errors="replace")

    model = UserModuleModel(_module(256, tokenizer=Letters()))
    eos = model.tokenizer.specials.eos
    assert eos >= 256
    with pytest.raises(ValueError, match=rf"token id {eos} \(<\|eos\|>\) is outside the 256 output ids of user_model"):
        Scorer(model).loglikelihood_rolling([[104, 105]], eos, 16)


def test_prefix_length_extension_scores_the_continuation_as_prefix_loglikelihood(numpy_model):
    endpoint = ModelEndpoint("m", Scorer(numpy_model))
    tok = numpy_model.tokenizer
    context, continuation = [int(t) for t in tok.encode("the cat")], [int(t) for t in tok.encode(" sat")]
    reply = endpoint.completions({"prompt": [context + continuation], "echo": True, "max_tokens": 1, "logprobs": 1,
                                  "prefix_length": len(context)})
    logprobs = reply["choices"][0]["logprobs"]["token_logprobs"]
    assert logprobs[: len(context)] == [None] * len(context)
    [expected] = Scorer(numpy_model).loglikelihood([(context, continuation)], prefix=True)
    assert logprobs[len(context) : -1] == pytest.approx(list(expected.token_logprobs), rel=1e-6)
    with pytest.raises(RequestError, match="'prefix_length' must lie in"):
        endpoint.completions({"prompt": [[1, 2]], "echo": True, "max_tokens": 1, "prefix_length": 3})
