"""The whole command at a 3-minute budget: every arm trains, fine-tunes and is evaluated; table, JSON, plots."""

import json

import pytest

from birdie.cli import main
from birdie.eval.phonebook import random_digit_accuracy
from birdie.experiment.plan import ARMS, SCALES


@pytest.mark.slow
@pytest.mark.timeout(1800)  # ~5 minutes on 2 idle cores; far longer on a loaded machine
def test_replicate_runs_end_to_end_and_reports_every_arm(tmp_path, capsys):
    out = tmp_path / "replicate"
    argv = ["experiment", "replicate", "--budget-minutes", "3", "--seeds", "1", "--threads", "1", "--out", str(out)]
    assert main(argv) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("[")]
    assert sum(" seed 0: " in line and "digit acc" in line for line in lines) == len(ARMS)  # a progress line per arm

    report = json.loads((out / "results.json").read_text())
    assert sorted(r["arm"] for r in report["arms"]) == sorted(ARMS)
    plan = report["context"]["plan"]
    for result in report["arms"]:
        assert result["pretrain"]["tokens"] == report["context"]["pretrain_tokens_per_arm"]  # equal tokens
        assert 0.0 <= result["phonebook"]["digit_accuracy"] <= 1.0
        cpu = SCALES["cpu"]
        assert set(result["phonebook"]["by_num_queries"]) == {str(k) for k in range(1, cpu.max_queries + 1)}
        # the scale's short numbers, scored against their own random baseline
        assert all(len(number) == cpu.number_digits for s in result["phonebook"]["samples"]
                   for number in s["answer"].split(", "))
        assert result["phonebook"]["random_digit_accuracy"] == random_digit_accuracy(cpu.number_digits)
        low, high = cpu.book_entries
        assert set(result["phonebook"]["by_num_entries"]) <= {str(n) for n in range(low, high + 1)}
        assert set(result["infilling"]) == {"prefix", "causal"}
        assert result["val_loss"] and result["loss_curve"]
    second = next(r for r in report["arms"] if r["arm"] == "second_stage")
    assert [s["stage"] for s in second["pretrain"]["stages"]] == ["ntp", "birdie"]
    assert sum(s["steps"] for s in second["pretrain"]["stages"]) == plan["pretrain_steps"]
    assert second["mixture"] and second["mixture"][0]["tokens"] >= plan["pretrain_steps"] // 2 * 8 * 256

    table = (out / "results.md").read_text()
    assert table.count("## ") >= 6
    for arm in ARMS:
        assert f"| hawk {arm} |" in table
    assert "birdie experiment replicate --scale cpu --seeds 1" in table
    for name in ("losses", "mixture", "retrieval"):
        assert (out / "plots" / f"{name}.png").stat().st_size > 0

    # a second invocation finds every arm saved and trains nothing
    assert main(argv) == 0
    assert capsys.readouterr().out.count("saved earlier") == len(ARMS)
