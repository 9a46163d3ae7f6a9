"""Training does something: SFT makes the model prefer the answers it was taught, DPO separates chosen from
rejected (``rewards/accuracies``), the reward model ranks chosen over rejected. Each from a random tiny base on 8
short question/answer pairs (seconds on a CPU), so the margins hold only if the losses and their gradients are right.
"""

import json

import pytest

import birdie
from birdie.finetune.datasets import load_preferences, read_jsonl
from birdie.finetune.evaluate import pair_accuracy
from birdie.train.metrics import read_metrics

from tests.finetune.helpers import make_base, run

WORDS = ["apple", "river", "stone", "cloud", "green", "tiger", "piano", "lemon"]
RUN = ["--train.batch_size", "8", "--train.sequence_length", "64", "--schedule.warmup_steps", "2",
       "--schedule.decay", "constant"]


def turn(question, answer):
    return [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    base = make_base(root / "base")
    questions = [(f"word {i}?", WORDS[i], WORDS[(i + 3) % len(WORDS)]) for i in range(len(WORDS))]
    (root / "chat.jsonl").write_text("".join(json.dumps({"messages": turn(q, a)}) + "\n" for q, a, _ in questions))
    (root / "prefs.jsonl").write_text("".join(
        json.dumps({"chosen": turn(q, a), "rejected": turn(q, w)}) + "\n" for q, a, w in questions))
    model, tokenizer = birdie.load(base)
    pairs, _ = load_preferences(read_jsonl(root / "prefs.jsonl"), tokenizer, 64)
    return base, root, pairs, tokenizer.specials.id("pad"), pair_accuracy(model, pairs, tokenizer.specials.id("pad"))


def test_sft_teaches_the_answers(setup, tmp_path):
    base, root, pairs, pad_id, before = setup
    run("sft", base, tmp_path / "sft", *RUN, "--data", str(root / "chat.jsonl"), "--steps", "40",
        "--optimizer.lr", "1e-2")
    model, _ = birdie.load(tmp_path / "sft" / "export")
    after = pair_accuracy(model, pairs, pad_id)
    assert before <= 0.75 and after >= 0.875, (before, after)
    records = [r for r in read_metrics(tmp_path / "sft" / "metrics.jsonl") if "loss" in r]
    assert records[-1]["loss"] < 0.3 * records[0]["loss"] and records[-1]["accuracy"] > 0.8


def test_dpo_separates_chosen_from_rejected(setup, tmp_path):
    base, root, pairs, pad_id, before = setup
    run("dpo", base, tmp_path / "dpo", *RUN, "--data", str(root / "prefs.jsonl"), "--steps", "20",
        "--optimizer.lr", "3e-3")
    records = [r for r in read_metrics(tmp_path / "dpo" / "metrics.jsonl") if "loss" in r]
    assert records[0]["loss"] == pytest.approx(0.6931, abs=1e-4)  # policy == reference at the first step
    assert records[-1]["rewards/accuracies"] == 1.0 and records[-1]["rewards/margins"] > 0.5
    assert records[-1]["reward_accuracy"] == records[-1]["rewards/accuracies"]  # EasyLM alias
    model, _ = birdie.load(tmp_path / "dpo" / "export")
    assert before <= 0.75 and pair_accuracy(model, pairs, pad_id) == 1.0


def test_reward_model_ranks_chosen_over_rejected(setup, tmp_path):
    base, root, _, _, _ = setup
    run("rm", base, tmp_path / "rm", *RUN, "--data", str(root / "prefs.jsonl"), "--steps", "40",
        "--optimizer.lr", "2e-3")
    model, _ = birdie.load(tmp_path / "rm" / "export")
    assert type(model).__name__ == "RewardModel"
    rows = [row for _, row in read_jsonl(root / "prefs.jsonl")]
    chosen, rejected = model.score([r["chosen"] for r in rows]), model.score([r["rejected"] for r in rows])
    assert bool((chosen > rejected).all()), (chosen, rejected)
    records = [r for r in read_metrics(tmp_path / "rm" / "metrics.jsonl") if "loss" in r]
    assert records[0]["loss"] == pytest.approx(0.6931, abs=0.05) and records[-1]["loss"] < 0.6
