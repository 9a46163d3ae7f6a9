"""results.md / results.json from arm results, and the three figures."""

import json

from birdie.experiment.plan import ExperimentPlan
from birdie.experiment.plots import plot_all
from birdie.experiment.report import write_report
from tests.experiment.fakes import arm_result


def context(seeds: int) -> dict:
    plan = ExperimentPlan(scale="cpu", arms=("ntp", "birdie"), seeds=seeds, pretrain_steps=20, finetune_steps=10,
                          budget_minutes=3.0, tokens_per_s=1000.0, eval_books=8, eval_infilling_items=16)
    return {"command": "birdie experiment replicate --seeds 2", "commit": "abc123", "started_at": "now",
            "machine": {"device": "CPU", "cpu_count": 2, "torch_threads": 1, "python": "3.11", "torch": "2.x",
                        "load_average_at_start": [3.0, 2.0, 1.0]},
            "plan": plan.to_dict(), "pretrain_tokens_per_arm": plan.pretrain_tokens,
            "finetune_tokens_per_arm": plan.finetune_tokens, "model_parameters": {"hawk": 1234}}


def test_the_report_has_a_table_per_metric_with_mean_and_spread(tmp_path):
    results = [arm_result("ntp", 0, 0.1), arm_result("birdie", 0, 0.5), arm_result("ntp", 1, 0.2),
               arm_result("birdie", 1, 0.6)]
    write_report(tmp_path, context(2), results)
    text = (tmp_path / "results.md").read_text()
    assert "`birdie experiment replicate --seeds 2`" in text and "`abc123`" in text
    assert "arms finished: 4 of 4" in text
    assert "random digit accuracy ≈ 0.103" in text  # the arms' own baseline (their books' number length)
    assert "1,234 parameters" in text and "2.0–3.0 at the arms' ends" in text
    digits = text.split("## phone-book digit accuracy")[1].split("##")[0]
    # k=1 is the digit accuracy, k=2 half of it (fakes.arm_result); sd of (0.5, 0.6) = 0.0707
    assert "| hawk birdie | 0.550 ± 0.071 | 0.275 ± 0.035 | 0.550 ± 0.071 |" in digits
    for table in ("phone-book number exact match", "story infilling accuracy", "validation loss per objective",
                  "wall time (s)"):
        assert f"## {table}" in text
    assert "birdie − ntp phone-book digit accuracy = +0.400 ± 0.000 over 2 paired seed(s): beyond" in text
    saved = json.loads((tmp_path / "results.json").read_text())
    assert len(saved["arms"]) == 4 and saved["gaps"]["hawk birdie"]["beyond_spread"] is True


def test_a_partial_single_seed_report_says_what_is_missing(tmp_path):
    write_report(tmp_path, context(1), [arm_result("ntp", 0, 0.1)])
    text = (tmp_path / "results.md").read_text()
    assert "arms finished: 1 of 2" in text
    assert "0.100 (1 seed)" in text
    assert "not measured yet" in text


def test_the_three_figures_are_written(tmp_path):
    paths = plot_all([arm_result("ntp", 0, 0.1), arm_result("birdie", 0, 0.5)], tmp_path)
    assert [p.name for p in paths] == ["losses.png", "mixture.png", "retrieval.png"]
    assert all(p.stat().st_size > 1000 for p in paths)
    # without a Birdie arm the mixture figure says so instead of failing
    assert plot_all([arm_result("ntp", 0, 0.1)], tmp_path / "ntp_only")[1].is_file()


def test_the_mixture_over_time_continues_a_second_stage_and_lasts_to_the_end(tmp_path):
    from birdie.experiment.runner import _mixture_over_time

    log = tmp_path / "decisions.jsonl"
    log.write_text("".join(json.dumps({"step": step, "class_mixture": {"copying": share}, "class_losses": {}}) + "\n"
                           for step, share in ((0, 0.5), (10, 0.9))))
    points = _mixture_over_time([(log, 20)], tokens_per_step=100, total_tokens=4000)
    # the stage started at step 20; the last decision holds until the last token
    assert [p["tokens"] for p in points] == [2000, 3000, 4000]
    assert [p["class_mixture"]["copying"] for p in points] == [0.5, 0.9, 0.9]
    assert _mixture_over_time([(tmp_path / "absent.jsonl", 0)], 100, 4000) == []
