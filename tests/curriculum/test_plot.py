"""``birdie plot mixture LOG`` draws a decision log to PNG; bad logs fail with the line number."""

import numpy as np
import pytest

from birdie.cli import main
from birdie.curriculum import Decision
from birdie.curriculum.log import DecisionLog, decision_record, read_log


def write_log(path, steps=(10, 50, 250)):
    log = DecisionLog(path)
    class_ids, names = np.array([0, 1, 1]), ["next_token_prediction", "infilling"]
    for index, step in enumerate(steps):
        action = np.array([0.5, 0.25, 0.25]) if index == 0 else np.array([0.2, 0.6, 0.2])
        rewards = None if index == 0 else np.array([0.1, 0.2, 0.4])
        decision = Decision(step, np.array([3.0, 4.0, 5.0]) - index, rewards, None if rewards is None else 0.4,
                            action, index > 0, False, None)
        log.write(decision_record(decision, "birdie", ["ntp", "inf_a", "inf_b"], class_ids, names))
    log.close()


def test_records_round_trip_with_class_summaries(tmp_path):
    write_log(tmp_path / "log.jsonl")
    records = read_log(tmp_path / "log.jsonl")
    assert [r["step"] for r in records] == [10, 50, 250]
    assert records[1]["class_mixture"] == pytest.approx({"next_token_prediction": 0.2, "infilling": 0.8})
    assert records[1]["class_losses"] == pytest.approx({"next_token_prediction": 2.0, "infilling": 3.5})
    assert records[1]["class_rewards"] == pytest.approx({"next_token_prediction": 0.1, "infilling": 0.3})


def test_plot_mixture_cli_writes_a_png(tmp_path, capsys):
    write_log(tmp_path / "log.jsonl")
    assert main(["plot", "mixture", str(tmp_path / "log.jsonl"), "--out", str(tmp_path / "out" / "m.png")]) == 0
    assert (tmp_path / "out" / "m.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "wrote" in capsys.readouterr().out
    assert main(["plot", "mixture", str(tmp_path / "log.jsonl")]) == 0
    assert (tmp_path / "log.png").stat().st_size > 1000


def test_bad_logs_name_the_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    write_log(path)
    path.write_text(path.read_text() + "{not json\n")
    with pytest.raises(ValueError, match=r"bad.jsonl:4 is not valid JSON"):
        read_log(path)
    path.write_text('{"step": 1}\n')
    with pytest.raises(ValueError, match="not a birdie decision record"):
        read_log(path)


def test_plot_mixture_cli_reports_a_missing_or_bad_log_without_a_traceback(tmp_path, capsys):
    assert main(["plot", "mixture", str(tmp_path / "missing.jsonl")]) == 2
    assert "birdie plot:" in capsys.readouterr().err
    (tmp_path / "bad.jsonl").write_text('{"step": 1}\n')
    assert main(["plot", "mixture", str(tmp_path / "bad.jsonl")]) == 2
    assert "bad.jsonl:1 is not a birdie decision record" in capsys.readouterr().err
    assert not (tmp_path / "bad.png").exists()
