"""The in-process lm-eval model: the real harness, offline, on the task pack, against direct computation."""

from __future__ import annotations

import json

import pytest

from birdie.harness.evaluation import evaluate
from birdie.harness.adapters import load_scoring_model
from harness_reference import assert_same_responses, direct_responses, logged_responses

NUMPY_ARGS = "module=birdie.harness.numpy_example,tag=tiny"


@pytest.mark.parametrize("scoring", ["prefix", "causal"])
def test_user_module_through_lm_eval_equals_direct_computation(numpy_model, scoring):
    results = evaluate(f"{NUMPY_ARGS},scoring={scoring}", tasks=["birdie_smoke"], builtin_tasks=False,
                       log_samples=True, batch_size=3)
    samples = results["samples"]
    assert set(samples) == {"birdie_mc", "birdie_ll", "birdie_ppl", "birdie_gen"}
    assert_same_responses(logged_responses(samples), direct_responses(numpy_model, samples, scoring == "prefix"))
    assert 0.0 <= results["results"]["birdie_mc"]["acc,none"] <= 1.0


def test_birdie_checkpoint_through_lm_eval_is_scored_as_a_prefix_lm(birdie_checkpoint):
    model = load_scoring_model(checkpoint=birdie_checkpoint)
    assert model.prefix_lm  # transformer-tiny has bidirectional layers: contexts are the prefix
    results = evaluate(f"checkpoint={birdie_checkpoint}", tasks=["birdie_mc", "birdie_gen"], builtin_tasks=False,
                       log_samples=True, device="cpu")
    samples = results["samples"]
    assert_same_responses(logged_responses(samples), direct_responses(model, samples, prefix=True))


def test_checkpoint_in_bfloat16_scores_close_to_float32(birdie_checkpoint):
    from birdie.harness.core import Scorer

    full = load_scoring_model(checkpoint=birdie_checkpoint)
    half = load_scoring_model(checkpoint=birdie_checkpoint, dtype="bfloat16")
    tok = full.tokenizer
    request = [([int(t) for t in tok.encode("the cat sat")], [int(t) for t in tok.encode(" on the mat")])]
    expected = Scorer(full).loglikelihood(request)[0].logprob
    assert Scorer(half).loglikelihood(request)[0].logprob == pytest.approx(expected, rel=0.05)
    with pytest.raises(ValueError, match="dtype="):
        load_scoring_model(checkpoint=birdie_checkpoint, dtype="int8")


def test_registry_holds_birdie_and_the_builtin_models():
    from lm_eval.api.registry import get_model

    from birdie.harness.lm import BirdieLM

    assert get_model("birdie") is BirdieLM
    assert get_model("dummy").__name__ == "DummyLM"


def test_bad_model_args_are_rejected_with_the_fix():
    from birdie.harness.lm import BirdieLM

    with pytest.raises(ValueError, match="exactly one of checkpoint"):
        BirdieLM()
    with pytest.raises(ValueError, match="scoring="):
        BirdieLM(module="birdie.harness.numpy_example", tag="tiny", scoring="sideways")
    with pytest.raises(ValueError, match="state_reuse"):
        BirdieLM(module="birdie.harness.numpy_example", tag="tiny", state_reuse="maybe")
    with pytest.raises(TypeError, match="lacks the hook"):
        BirdieLM(module="json")


def test_birdie_lm_eval_console_command_runs_the_harness_cli(tmp_path, monkeypatch):
    import sys

    from lm_eval.tasks import TaskManager

    from birdie.harness.cli import main

    index = TaskManager.__init__

    def without_builtin_index(self, *args, **kwargs):  # the CLI indexes lm-eval's 14k built-in tasks (~30 s)
        index(self, *args, **{**kwargs, "include_defaults": False})

    monkeypatch.setattr(TaskManager, "__init__", without_builtin_index)
    monkeypatch.setattr(sys, "argv", ["birdie-lm-eval"])  # main() replaces it; restored afterwards
    out = tmp_path / "out"
    main(["run", "--model", "birdie", "--model_args", NUMPY_ARGS, "--tasks", "birdie_mc", "--limit", "3",
          "--device", "cpu", "--output_path", str(out)])
    [result_file] = out.rglob("results_*.json")
    results = json.loads(result_file.read_text())["results"]
    assert "acc,none" in results["birdie_mc"]
