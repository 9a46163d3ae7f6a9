"""Fine-tuning generalises: on the embedded story questions, each command raises the held-out answer accuracy
(questions about validation stories, never trained on) well above where it started, from a random tiny base.

The base is a fresh ``transformer-tiny`` with a BPE tokenizer trained on the stories (words are single tokens, so
reading an answer off the passage is learnable in a few hundred CPU steps). The held-out pairs put the right
answer against a corrupted one of the same kind; a model that learnt nothing stays near 0.5 on them, so every
margin below fails if training does nothing (an untrained model scores exactly its "before" on the same pairs);
the margins leave room under the values seen (in comments) for other CPUs' rounding.
"""

import pytest

from birdie.finetune.config import build_finetune_config
from birdie.finetune.story_qa import story_questions
from birdie.train.metrics import read_metrics

from tests.finetune.helpers import make_story_base, run

pytestmark = pytest.mark.slow

HELDOUT = 200
RUN = ["--data.embedded_examples", "2000", "--data.heldout_examples", str(HELDOUT), "--train.batch_size", "16",
       "--schedule.decay", "constant"]


@pytest.fixture(scope="module")
def sft(tmp_path_factory):
    """SFT of a random story-tokenizer base in two runs of 100 steps: ``(half, full)`` run directories. The reward
    model starts from the full export, as in ``birdie demo finetune``; DPO from the half-way export, which leaves it
    room to raise the held-out chosen rate."""
    root = tmp_path_factory.mktemp("heldout")
    run("sft", make_story_base(root / "base"), root / "half", *RUN, "--steps", "100", "--optimizer.lr", "3e-3")
    run("sft", root / "half" / "export", root / "full", *RUN, "--steps", "100", "--optimizer.lr", "3e-3")
    return root / "half", root / "full"


def evaluations(out):
    """(first, last) held-out evaluation records of a run."""
    records = [r for r in read_metrics(out / "metrics.jsonl") if "eval/answer_accuracy" in r]
    return records[0], records[-1]


def test_heldout_questions_do_not_overlap_the_training_questions():
    defaults = build_finetune_config("sft").data
    train = story_questions("train", defaults.embedded_examples)
    heldout = story_questions("validation", defaults.heldout_examples)
    assert len(heldout) == defaults.heldout_examples
    assert not {q.prompt for q in train} & {q.prompt for q in heldout}
    assert not {q.passage for q in train} & {q.passage for q in heldout}


def test_sft_raises_heldout_answer_accuracy(sft):
    (before, _), (_, after) = evaluations(sft[0]), evaluations(sft[1])
    assert before["eval/answer_accuracy"] < 0.65
    assert after["eval/answer_accuracy"] > before["eval/answer_accuracy"] + 0.1, (before, after)  # seen: +0.175


def test_dpo_raises_rewards_accuracies_and_the_heldout_chosen_rate(sft, tmp_path):
    run("dpo", sft[0] / "export", tmp_path, *RUN, "--steps", "150", "--optimizer.lr", "3e-3")
    before, after = evaluations(tmp_path)
    assert before["eval/reward_accuracy"] == 0.0  # policy == reference: every implicit reward is 0, no strict win
    assert after["eval/reward_accuracy"] > 0.65, after  # seen: 0.73
    assert after["eval/answer_accuracy"] > before["eval/answer_accuracy"] + 0.06, (before, after)  # seen: +0.12
    steps = [r for r in read_metrics(tmp_path / "metrics.jsonl") if "loss" in r]
    late = [r["rewards/accuracies"] for r in steps[-50:]]  # 800 training pairs (one batch of 16 is too noisy)
    assert sum(late) / len(late) > 0.6, late  # seen: 0.69


def test_reward_model_ranks_heldout_chosen_over_rejected(sft, tmp_path):
    run("rm", sft[1] / "export", tmp_path, *RUN, "--steps", "200", "--optimizer.lr", "2e-3")
    before, after = evaluations(tmp_path)
    assert after["eval/answer_accuracy"] > 0.6, after  # seen: 0.67
    assert after["eval/answer_accuracy"] > before["eval/answer_accuracy"] + 0.1, (before, after)  # seen: +0.165
