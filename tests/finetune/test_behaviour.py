"""Training does something: SFT makes the model prefer the right answers it was taught, DPO separates chosen from
rejected (``rewards/accuracies``), the reward model ranks chosen over rejected. Each from a random tiny base on 16
story questions, so the margins hold only if the loss and its gradients are right."""

import pytest

import birdie
from birdie.finetune.datasets import load_preferences
from birdie.finetune.evaluate import pair_accuracy
from birdie.finetune.story_qa import preference_rows
from birdie.train.metrics import read_metrics

from tests.finetune.helpers import make_base, run

STEPS = ["--data.embedded_examples", "16", "--train.batch_size", "8", "--schedule.warmup_steps", "2"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    base = make_base(tmp_path_factory.mktemp("base") / "export")
    model, tokenizer = birdie.load(base)
    pairs, _ = load_preferences(((str(i), row) for i, row in enumerate(preference_rows("train", 16))), tokenizer,
                                256)
    return base, tokenizer, pairs, pair_accuracy(model, pairs, tokenizer.specials.id("pad"))


@pytest.mark.slow
def test_sft_teaches_the_right_answers(setup, tmp_path):
    base, tokenizer, pairs, before = setup
    run("sft", base, tmp_path / "sft", *STEPS, "--steps", "40", "--optimizer.lr", "1e-2",
        "--schedule.decay", "constant")
    model, _ = birdie.load(tmp_path / "sft" / "export")
    after = pair_accuracy(model, pairs, tokenizer.specials.id("pad"))
    assert before < 0.75 and after >= before + 0.25, (before, after)
    records = [r for r in read_metrics(tmp_path / "sft" / "metrics.jsonl") if "loss" in r]
    assert records[-1]["loss"] < 0.5 * records[0]["loss"] and records[-1]["accuracy"] > records[0]["accuracy"]


@pytest.mark.slow
def test_dpo_separates_chosen_from_rejected(setup, tmp_path):
    base, tokenizer, pairs, before = setup
    run("dpo", base, tmp_path / "dpo", *STEPS, "--steps", "20", "--optimizer.lr", "1e-3")
    records = [r for r in read_metrics(tmp_path / "dpo" / "metrics.jsonl") if "loss" in r]
    assert records[0]["loss"] == pytest.approx(0.6931, abs=0.01)  # policy == reference at the first step
    assert records[-1]["rewards/accuracies"] >= 0.9 and records[-1]["rewards/margins"] > 0.1
    assert records[-1]["reward_accuracy"] == records[-1]["rewards/accuracies"]  # EasyLM alias
    model, _ = birdie.load(tmp_path / "dpo" / "export")
    assert pair_accuracy(model, pairs, tokenizer.specials.id("pad")) >= 0.9


@pytest.mark.slow
def test_reward_model_ranks_chosen_over_rejected(setup, tmp_path):
    base, tokenizer, pairs, _ = setup
    run("rm", base, tmp_path / "rm", *STEPS, "--steps", "30", "--optimizer.lr", "1e-3")
    model, _ = birdie.load(tmp_path / "rm" / "export")
    assert type(model).__name__ == "RewardModel"
    rows = list(preference_rows("train", 16))
    chosen, rejected = model.score([r["chosen"] for r in rows]), model.score([r["rejected"] for r in rows])
    assert float((chosen > rejected).float().mean()) >= 0.9
