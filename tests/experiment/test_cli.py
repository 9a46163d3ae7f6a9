"""``birdie experiment replicate``: argument errors are one clear line and exit status 2, before any training."""

import pytest

from birdie.cli import main
from birdie.experiment import store
from birdie.experiment.plan import ExperimentPlan


@pytest.mark.parametrize("argv, message", [
    (["--arms", "ntp,gpt"], "--arms 'ntp,gpt': give distinct arms among ntp, ul2, birdie, second_stage"),
    (["--arms", "ntp,ntp"], "give distinct arms"),
    (["--arms", ""], "give distinct arms"),
    (["--seeds", "0"], "'0' must be a int > 0"),
    (["--budget-minutes", "-3"], "'-3' must be a float > 0"),
    (["--budget-minutes", "soon"], "'soon' must be a float > 0"),
    (["--scale", "tpu"], "invalid choice: 'tpu'"),
    (["--threads", "0"], "'0' must be a int > 0"),
])
def test_bad_arguments_are_rejected_by_the_parser(argv, message, capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        main(["experiment", "replicate", "--out", str(tmp_path / "out"), *argv])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_missing_data_file_is_named(capsys, tmp_path):
    missing = tmp_path / "stories.txt"
    assert main(["experiment", "replicate", "--data", str(missing), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert f"--data {str(missing)!r} is not a file" in err
    assert not (tmp_path / "out").exists()


def test_resuming_with_other_options_is_refused_before_training(capsys, tmp_path):
    saved = ExperimentPlan(scale="cpu", arms=("ntp", "birdie"), seeds=2, pretrain_steps=20, finetune_steps=10,
                           budget_minutes=3.0, eval_books=8, eval_infilling_items=16)
    store.write_json(tmp_path / store.PLAN, saved.to_dict())
    code = main(["experiment", "replicate", "--out", str(tmp_path), "--budget-minutes", "3", "--seeds", "2",
                 "--arms", "ntp,ul2"])
    assert code == 2
    err = capsys.readouterr().err
    assert "holds a run with other options (arms=['ntp', 'birdie'], asked ('ntp', 'ul2'))" in err
    assert "more arms or seeds may be added" in err
    assert not (tmp_path / "arms").exists()
