"""The training config: files, command-line overrides with coercion, validation naming the field, --help."""

import argparse

import pytest
import yaml

from birdie.cli import main
from birdie.train import cli as train_cli
from birdie.train.config import SECTIONS, ConfigError, TrainConfig, section_fields
from birdie.train.config_io import build_config, merge, read_config_file, save_config


def parse(argv):
    parser = argparse.ArgumentParser()
    train_cli.build_parser(parser)
    return train_cli.config_from_args(parser.parse_args(argv))


def test_command_line_values_are_coerced_to_the_field_types():
    config = parse(["--steps", "7", "--model", "gated-ssm-tiny", "--optimizer.betas", "0.8,0.99",
                    "--model.overrides", "{n_layers: 1, d_model: 32}", "--logging.tensorboard", "yes",
                    "--checkpoint.resume", "none", "--load-not-strict", "--objectives.ratios", "{copying: 2}"])
    assert config.train.steps == 7 and config.model.preset == "gated-ssm-tiny"
    assert config.optimizer.betas == [0.8, 0.99]
    assert config.model.overrides == {"n_layers": 1, "d_model": 32}
    assert config.logging.tensorboard is True and config.checkpoint.resume is None
    assert config.model.strict is False and config.objectives.ratios == {"copying": 2.0}


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
])
def test_bad_values_raise_an_error_naming_the_field(values, field):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        build_config(merge({}, values))


def test_bad_value_on_the_command_line_exits_with_the_field_in_the_message(capsys):
    assert main(["train", "--optimizer.weight_decay", "-0.1"]) == 2
    assert "optimizer.weight_decay=-0.1 must be >= 0" in capsys.readouterr().err


def test_help_documents_every_field(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = capsys.readouterr().out
    for name, section in SECTIONS.items():
        for f in section_fields(section):
            assert f"--{name}.{f.name}" in text
            assert f.metadata["help"].split()[0] in text


def test_saved_config_reads_back_identically(tmp_path):
    config = build_config(merge({}, {"train.steps": 5, "model.overrides": {"n_layers": 1}}))
    save_config(config, tmp_path / "config.yaml")
    assert build_config(read_config_file(tmp_path / "config.yaml")) == config


def test_shipped_configs_are_valid():
    from pathlib import Path

    paths = sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.y*ml"))
    assert paths, "no shipped configs found under configs/"
    for path in paths:
        assert isinstance(build_config(read_config_file(path)), TrainConfig), path
