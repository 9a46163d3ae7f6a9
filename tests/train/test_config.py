"""The training config: files, command-line overrides with coercion, validation naming the field, --help."""

import argparse

import pytest
import yaml

from birdie.cli import main
from birdie.train import cli as train_cli
from birdie.curriculum import BirdieAgentConfig, RewardModelConfig, Schedule
from birdie.train.config import ConfigError, TrainConfig
from birdie.train.config_io import build_config, config_leaves, merge, read_config_file, save_config


def parse(argv):
    parser = argparse.ArgumentParser()
    train_cli.build_parser(parser)
    return train_cli.config_from_args(parser.parse_args(argv))


def test_command_line_values_are_coerced_to_the_field_types():
    config = parse(["--steps", "7", "--model", "gated-ssm-tiny", "--optimizer.betas", "0.8,0.99",
                    "--model.overrides", "{n_layers: 1, d_model: 32}", "--logging.tensorboard", "yes",
                    "--checkpoint.resume", "none", "--load-not-strict", "--curriculum.agent", "fixed",
                    "--curriculum.ratios", "{copying: 2}", "--curriculum.schedule.eval_steps", "5,20",
                    "--curriculum.decision_delay_batches", "none", "--curriculum.background_decisions", "no"])
    assert config.train.steps == 7 and config.model.preset == "gated-ssm-tiny"
    assert config.optimizer.betas == [0.8, 0.99]
    assert config.model.overrides == {"n_layers": 1, "d_model": 32}
    assert config.logging.tensorboard is True and config.checkpoint.resume is None
    assert config.model.strict is False and config.curriculum.ratios == {"copying": 2.0}
    assert config.curriculum.schedule.eval_steps == (5, 20)
    assert config.curriculum.decision_delay_batches is None and config.curriculum.background_decisions is False


@pytest.mark.parametrize("suffix", [".yaml", ".toml"])
def test_file_then_flags_precedence(tmp_path, suffix):
    path = tmp_path / f"run{suffix}"
    if suffix == ".yaml":
        path.write_text(yaml.safe_dump({"train": {"steps": 11, "batch_size": 4}, "optimizer": {"lr": 0.01}}))
    else:
        path.write_text("[train]\nsteps = 11\nbatch_size = 4\n[optimizer]\nlr = 0.01\n")
    config = parse(["--config", str(path), "--steps", "3", "--optimizer.lr", "2e-4"])
    assert (config.train.steps, config.train.batch_size, config.optimizer.lr) == (3, 4, 2e-4)


@pytest.mark.parametrize("values, field", [
    ({"optimizer.lr": "-1"}, "optimizer.lr"),
    ({"train.steps": "many"}, "train.steps"),
    ({"train.precision": "fp8"}, "train.precision"),
    ({"optimizer.betas": "0.9"}, "optimizer.betas"),
    ({"schedule.final_lr_ratio": 2}, "schedule.final_lr_ratio"),
    ({"distributed.mesh": "2,2"}, "distributed.mesh"),
    ({"train.batch_size": 6, "train.grad_accum": 4}, "train.batch_size"),
    ({"data.source": "files"}, "data.paths"),
    ({"data.source": "callable", "data.callable": "nocolon"}, "data.callable"),
    ({"train.stepz": 1}, "train.stepz"),
    ({"trian.steps": 1}, "trian"),
    ({"logging.log_every": 1.5}, "logging.log_every"),
    ({"curriculum.agent": "ppo"}, "curriculum.agent"),
    ({"curriculum.decision_delay_batches": -1}, "curriculum.decision_delay_batches=-1 must be an int >= 0"),
    ({"curriculum.num_validation_batches": 0}, "curriculum.num_validation_batches=0 must be >= 1"),
    ({"curriculum.ratios": {"copying": 1}}, "curriculum.ratios=.* is only read with agent=fixed"),
    ({"curriculum.schedule.warmup_steps": -1}, "curriculum.schedule.warmup_steps=-1 must be >= 0"),
    ({"curriculum.schedule.eval_steps": "20,5"}, "curriculum.schedule.eval_steps=.* must be distinct, increasing"),
    ({"curriculum.birdie_agent.top_k": 0}, "curriculum.birdie_agent.top_k=0 must be in"),
    ({"curriculum.reward_model.width": 0}, "curriculum.reward_model.width=0 must be >= 1"),
    ({"curriculum.reward_model.widht": 8}, "unknown field.*curriculum.reward_model.widht"),
])
def test_bad_values_raise_an_error_naming_the_field(values, field):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.").replace(r"\.*", ".*")):
        build_config(merge({}, values))


def test_bad_value_on_the_command_line_exits_with_the_field_in_the_message(capsys):
    assert main(["train", "--optimizer.weight_decay", "-0.1"]) == 2
    assert "optimizer.weight_decay=-0.1 must be >= 0" in capsys.readouterr().err


def test_help_documents_every_leaf_of_the_tree(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = capsys.readouterr().out
    leaves = list(config_leaves())
    for name, f, _ in leaves:
        assert f"--{name} " in text, name
        assert f.metadata["help"].split()[0] in text
    names = {name for name, _, _ in leaves}
    assert {"curriculum.decision_delay_batches", "curriculum.schedule.warmup_steps", "curriculum.birdie_agent.top_k",
            "curriculum.reward_model.train_steps"} <= names
    assert not any(name.endswith((".schedule", ".birdie_agent", ".reward_model")) for name in names)


def test_saved_config_reads_back_identically(tmp_path):
    config = build_config(merge({}, {"train.steps": 5, "model.overrides": {"n_layers": 1},
                                     "curriculum.schedule.eval_steps": [3, 9], "curriculum.reward_model.lr": 0.01}))
    save_config(config, tmp_path / "config.yaml")
    assert build_config(read_config_file(tmp_path / "config.yaml")) == config


def test_shipped_configs_are_valid():
    from pathlib import Path

    paths = sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.y*ml"))
    assert len(paths) >= 2  # the demo and the phone-book recipe: an empty glob must not pass
    for path in paths:
        assert isinstance(build_config(read_config_file(path)), TrainConfig), path


@pytest.mark.parametrize("suffix", [".yaml", ".toml"])
def test_nested_sections_from_files_and_flags(tmp_path, suffix):
    path = tmp_path / f"run{suffix}"
    if suffix == ".yaml":
        path.write_text(yaml.safe_dump({"curriculum": {"mixture": "demo", "decision_delay_batches": 4,
                                                       "schedule": {"warmup_steps": 7, "eval_steps": [1, 2]},
                                                       "reward_model": {"train_steps": 9}}}))
    else:
        path.write_text('[curriculum]\nmixture = "demo"\ndecision_delay_batches = 4\n'
                        "[curriculum.schedule]\nwarmup_steps = 7\neval_steps = [1, 2]\n"
                        "[curriculum.reward_model]\ntrain_steps = 9\n")
    config = parse(["--config", str(path), "--curriculum.schedule.warmup_steps", "3",
                    "--curriculum.birdie_agent.num_candidates", "16"])
    curriculum = config.curriculum
    assert (curriculum.mixture, curriculum.decision_delay_batches) == ("demo", 4)
    assert curriculum.schedule == Schedule(warmup_steps=3, eval_steps=(1, 2))  # the flag beats the file
    assert curriculum.reward_model == RewardModelConfig(train_steps=9)
    assert curriculum.birdie_agent == BirdieAgentConfig(num_candidates=16)


@pytest.mark.parametrize("old, new", [
    ({"mixture": "demo"}, "objectives.mixture -> curriculum.mixture"),
    ({"agent": "fixed", "ratios": {"copying": 1}}, "objectives.ratios -> curriculum.ratios"),
    ({"agent_options": {"warmup_steps": 5, "train_steps": 3, "num_candidates": 8, "decision_delay_batches": 2}},
     "objectives.agent_options.warmup_steps -> curriculum.schedule.warmup_steps; "
     "objectives.agent_options.train_steps -> curriculum.reward_model.train_steps; "
     "objectives.agent_options.num_candidates -> curriculum.birdie_agent.num_candidates; "
     "objectives.agent_options.decision_delay_batches -> curriculum.decision_delay_batches"),
])
def test_old_objectives_keys_are_errors_naming_the_new_field(tmp_path, old, new):
    path = tmp_path / "old.yaml"
    path.write_text(yaml.safe_dump({"objectives": old}))
    with pytest.raises(ConfigError, match="'objectives' was replaced by 'curriculum'") as error:
        build_config(read_config_file(path))
    for move in new.split("; "):
        assert move in str(error.value)


def test_old_objectives_flag_names_its_replacement(capsys):
    assert main(["train", "--objectives.agent_options", "{steps_between_evaluations: 5}"]) == 2
    assert "curriculum.schedule.steps_between_evaluations" in capsys.readouterr().err


def test_one_validation_idiom_names_class_or_config_path():
    from birdie.models.config import ModelConfig
    from birdie.train.config import ModelSection, OptimizerConfig

    with pytest.raises(ConfigError, match=r"^ModelConfig\.vocab_size=0 must be a positive integer$"):
        ModelConfig(family="hawk", vocab_size=0, d_model=8, n_layers=1)
    with pytest.raises(ConfigError, match=r"^OptimizerConfig\.lr=-1\.0 must be > 0$"):
        OptimizerConfig(lr=-1.0)
    with pytest.raises(ConfigError, match=r"^optimizer\.lr=-1\.0 must be > 0$"):
        build_config({"optimizer": {"lr": -1.0}})
    with pytest.raises(ConfigError, match=r"^Schedule\.eval_every=0 must be >= 1$"):
        Schedule(eval_every=0)
    assert issubclass(ConfigError, ValueError) and ModelSection is not ModelConfig
