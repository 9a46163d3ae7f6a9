"""The end-of-run plots of fine-tuning and PPO runs are written from their metrics.jsonl."""

import json

from birdie.finetune.plots import plot_finetune, plot_ppo


def _write_metrics(out, records):
    out.mkdir()
    (out / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


def test_a_finetune_run_plots_its_loss_and_accuracies(tmp_path):
    _write_metrics(tmp_path / "sft", [{"step": s, "loss": 2.0 / s, "token_accuracy": 0.1 * s} for s in (1, 2, 3)]
                   + [{"step": 3, "eval/accuracy": 0.5}])
    path = plot_finetune(tmp_path / "sft")
    assert path == tmp_path / "sft" / "plots" / "finetune.png" and path.read_bytes().startswith(b"\x89PNG")


def test_a_ppo_run_plots_reward_kl_entropy_and_losses(tmp_path):
    records = [{"step": s, "objective/scores": 0.1 * s, "objective/scores_std": 0.05, "objective/kl": 0.2 * s,
                "objective/entropy": 5.0 - s, "loss/policy_avg": -0.01} for s in (1, 2, 3)]
    _write_metrics(tmp_path / "grpo", records)  # no critic: no value loss
    path = plot_ppo(tmp_path / "grpo")
    assert path == tmp_path / "grpo" / "plots" / "ppo.png" and path.read_bytes().startswith(b"\x89PNG")
