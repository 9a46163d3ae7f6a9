"""Resuming at arm granularity: saved arms are skipped, an interrupted stage resumes, saves are atomic."""

import json

import pytest

from birdie.experiment import configs, runner, store
from birdie.experiment.plan import ExperimentPlan
from birdie.train.integrity import write_manifest


def plan(**fields) -> ExperimentPlan:
    return ExperimentPlan(**{"scale": "cpu", "arms": ("ntp", "birdie"), "seeds": 2, "pretrain_steps": 20,
                             "finetune_steps": 10, "eval_books": 8, "eval_infilling_items": 16, **fields})


def fake_result(model: str, arm: str, seed: int) -> dict:
    return {"model": model, "arm": arm, "seed": seed, "pretrain": {"tokens": 1, "wall_s": 1.0},
            "finetune": {"wall_s": 1.0}, "eval_wall_s": 1.0, "load_average": [1.0, 1.0, 1.0],
            "phonebook": {"digit_accuracy": 0.1, "number_exact_match": 0.0}, "infilling": {"prefix": 0.25,
                                                                                          "causal": 0.25}}


def test_a_killed_run_continues_with_the_first_unsaved_arm(tmp_path, monkeypatch):
    calls = []

    def run_arm(plan, out, model, arm, seed):
        calls.append((arm, seed))
        if len(calls) == 3:
            raise KeyboardInterrupt  # the run is killed during its third arm
        result = fake_result(model, arm, seed)
        store.write_json(store.arm_dir(out, model, arm, seed) / store.RESULT, result)
        return result

    monkeypatch.setattr(runner, "run_arm", run_arm)
    with pytest.raises(KeyboardInterrupt):
        runner.run_experiment(plan(), tmp_path, on_arm=lambda results: None, echo=lambda line: None)
    assert calls == [("ntp", 0), ("birdie", 0), ("ntp", 1)]

    calls.clear()
    seen, lines = [], []
    results = runner.run_experiment(plan(), tmp_path, on_arm=lambda r: seen.append(len(r)), echo=lines.append)
    assert calls == [("ntp", 1), ("birdie", 1)]  # the two saved arms are not run again
    assert [(r["arm"], r["seed"]) for r in results] == [("ntp", 0), ("birdie", 0), ("ntp", 1), ("birdie", 1)]
    assert seen == [1, 2, 3, 4]
    assert sum("saved earlier" in line for line in lines) == 2


def test_a_stage_resumes_from_its_checkpoint_and_a_finished_stage_is_not_rerun(tmp_path, monkeypatch):
    trained = []
    monkeypatch.setattr(configs, "train", lambda config: trained.append(config))
    run_dir = tmp_path / "pretrain0-ntp"
    record = runner._train_stage(run_dir, lambda resume: {"resume": resume})
    assert trained == [{"resume": False}] and record["resumed"] is False

    # an interrupted second attempt: a complete checkpoint exists, the stage is not marked done
    store.done_marker(run_dir).unlink()
    step = run_dir / "checkpoints" / "step_000010"
    step.mkdir(parents=True)
    (step / "meta.json").write_text("{}")
    write_manifest(step)  # written last: what makes a checkpoint complete
    (run_dir / "checkpoints" / "latest").write_text("step_000010")
    record = runner._train_stage(run_dir, lambda resume: {"resume": resume})
    assert trained[-1] == {"resume": True} and record["resumed"] is True

    runner._train_stage(run_dir, lambda resume: pytest.fail("a finished stage must not train again"))
    assert len(trained) == 2


def test_a_resumed_run_must_ask_for_the_same_plan(tmp_path):
    requested = {"scale": "cpu", "arms": ("ntp", "birdie"), "seeds": 2, "budget_minutes": 60.0, "data": None}
    assert store.saved_plan(tmp_path, requested) is None
    store.write_json(tmp_path / store.PLAN, plan(budget_minutes=60.0).to_dict())
    assert store.saved_plan(tmp_path, requested)["pretrain_steps"] == 20
    with pytest.raises(ValueError, match=r"seeds=2, asked 1.*another --out"):
        store.saved_plan(tmp_path, {**requested, "seeds": 1})
    with pytest.raises(ValueError, match=r"budget_minutes=60.0, asked 30.0"):
        store.saved_plan(tmp_path, {**requested, "budget_minutes": 30.0})
    # adding arms or seeds keeps the saved steps, so the new arms train the same tokens
    extended = store.saved_plan(tmp_path, {**requested, "arms": ("ntp", "birdie", "second_stage"), "seeds": 3})
    assert extended["arms"] == ["ntp", "birdie", "second_stage"] and extended["seeds"] == 3
    assert extended["pretrain_steps"] == 20


def test_a_failed_save_leaves_the_previous_file_whole(tmp_path):
    path = tmp_path / "result.json"
    store.write_json(path, {"done": 1})
    with pytest.raises(TypeError):
        store.write_json(path, {"done": object()})
    assert json.loads(path.read_text()) == {"done": 1}
