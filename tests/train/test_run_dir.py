"""A run directory: another run is never overwritten by accident, its logs stay consistent with its checkpoints,
an incomplete checkpoint is an error, and the export records how the model was trained."""

import json
import shutil

import pytest

from birdie.train.checkpoint import resolve_checkpoint
from birdie.train.config import ConfigError
from birdie.train.export import read_training_record
from birdie.train.integrity import IntegrityError, write_manifest
from birdie.train.metrics import read_metrics
from birdie.train.trainer import train

from tests.train.helpers import tiny_config

pytestmark = pytest.mark.slow  # each test trains a tiny model for a few steps (10-30 s on 2 cores)

SETTINGS = {"train.steps": 4, "checkpoint.save_every": 2, "checkpoint.milestone_every": 2, "checkpoint.export": True}


def _decisions(out):
    return [json.loads(line) for line in (out / "decisions.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A finished 4-step run with checkpoints at steps 2 (a milestone) and 4, and an export."""
    out = tmp_path_factory.mktemp("run") / "out"
    train(tiny_config(out, **SETTINGS))
    return out


def _copy(run, tmp_path):
    return shutil.copytree(run, tmp_path / "copy")


def test_a_fresh_run_into_another_runs_directory_is_refused(finished_run, tmp_path):
    out = _copy(finished_run, tmp_path)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    with pytest.raises(ConfigError, match=r"holds another run \(config.yaml, metrics.jsonl, decisions.jsonl, "
                                          r"checkpoints, export.*--resume latest.*--overwrite"):
        train(tiny_config(out, **SETTINGS))
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_overwrite_replaces_the_old_run_and_keeps_other_files(finished_run, tmp_path):
    out = _copy(finished_run, tmp_path)
    (out / "notes.txt").write_text("mine")
    train(tiny_config(out, **{**SETTINGS, "train.steps": 2, "train.overwrite": True}))
    assert (out / "notes.txt").read_text() == "mine"
    assert [r["step"] for r in read_metrics(out / "metrics.jsonl")] == [1, 2]
    assert [d["step"] for d in _decisions(out)] == [d["step"] for d in _decisions(finished_run) if d["step"] < 2]
    assert sorted(p.name for p in (out / "checkpoints").glob("step_*")) == ["step_000002"]


def test_resume_after_a_crash_cuts_the_logs_back_to_the_checkpoint(finished_run, tmp_path):
    """As if killed after the step-2 checkpoint: the logs hold lines up to step 4, latest names step 2."""
    out = _copy(finished_run, tmp_path)
    (out / "checkpoints" / "latest").write_text("step_000002\n")
    shutil.rmtree(out / "checkpoints" / "step_000004")
    (out / "checkpoints" / ".tmp-step_000004").mkdir()  # the save the kill interrupted
    train(tiny_config(out, **{**SETTINGS, "checkpoint.resume": "latest"}))
    assert _decisions(out) == _decisions(finished_run)  # no step logged twice
    exact = ("step", "loss", "lr", "grad_norm", "mixture")  # not the timings
    assert [{k: r[k] for k in exact} for r in read_metrics(out / "metrics.jsonl")] == \
        [{k: r[k] for k in exact} for r in read_metrics(finished_run / "metrics.jsonl")]
    assert not (out / "checkpoints" / ".tmp-step_000004").exists()


def test_a_deleted_rank_file_is_an_error_naming_it(finished_run, tmp_path):
    out = _copy(finished_run, tmp_path)
    (resolve_checkpoint("latest", out) / "rank_0.pt").unlink()
    with pytest.raises(IntegrityError, match=r"incomplete: rank_0\.pt is missing"):
        train(tiny_config(out, **{**SETTINGS, "train.steps": 6, "checkpoint.resume": "latest"}))


def test_another_process_count_keeps_the_agent_and_restarts_the_data(finished_run, tmp_path, capsys):
    out = _copy(finished_run, tmp_path)
    checkpoint = resolve_checkpoint("latest", out)
    meta = json.loads((checkpoint / "meta.json").read_text())
    (checkpoint / "meta.json").write_text(json.dumps({**meta, "world_size": 2}))
    (checkpoint / "rank_0.pt").rename(checkpoint / "rank_1.pt")  # as two processes would have left it (rank 1's)
    write_manifest(checkpoint)
    summary = train(tiny_config(out, **{**SETTINGS, "train.steps": 6, "checkpoint.resume": "latest"}))
    assert summary.step == 6
    assert "written by 2 process(es) and this run has 1, so weights, optimizer, schedule and the curriculum agent " \
           "continue while the data stream restarts" in capsys.readouterr().out
    old, new = _decisions(finished_run), _decisions(out)
    assert new[:len(old)] == old and len(new) > len(old)
    assert all(d["step"] > old[-1]["step"] for d in new[len(old):])
    assert new[len(old)]["rewards"] is not None  # rewards need the previous losses: the agent's history went on


def test_the_export_records_how_the_model_was_trained(finished_run):
    record = read_training_record(finished_run / "export")
    assert record["sequence_length"] == 256 and record["agent"] == "birdie" and record["source"] == "birdie train"
    assert record["prefix_lm"] is True
    assert abs(sum(o["prob"] for o in record["objectives"]) - 1) < 1e-9
    assert {o["objective_class"] for o in record["objectives"]} > {"next_token_prediction"}
    checkpoint = resolve_checkpoint("latest", finished_run)
    assert json.loads((checkpoint / "training.json").read_text()) == record
