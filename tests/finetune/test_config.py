"""Fine-tuning configuration: command defaults, EasyLM aliases, shortcuts, errors naming the field, epochs."""

import argparse

import pytest

from birdie.finetune.cli import build_parser, config_from_args
from birdie.finetune.config import build_finetune_config
from birdie.finetune.engine import total_steps
from birdie.train.config import ConfigError


def parse(command, *argv):
    parser = argparse.ArgumentParser()
    build_parser(parser, command)
    return config_from_args(parser.parse_args(list(argv)), command)


def test_easylm_aliases_and_shortcuts(tmp_path):
    config = parse("dpo", "--mesh_dim", "1,-1,1", "--num_epochs", "2", "--warmup_ratio", "0.1", "--data",
                   "a.jsonl,b.jsonl", "--steps", "7", "--dpo.beta", "0.2")
    assert config.command == "dpo" and config.distributed.mesh == "1,-1,1"
    assert config.train.num_epochs == 2 and config.schedule.warmup_ratio == 0.1
    assert config.data.paths == ["a.jsonl", "b.jsonl"] and config.train.steps == 7 and config.dpo.beta == 0.2
    assert total_steps(config, 100) == 2 * (100 // config.train.batch_size)


def test_precedence_defaults_file_flags(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("train:\n  steps: 11\n  batch_size: 8\ndpo:\n  loss_type: ipo\n")
    config = parse("dpo", "--config", str(path), "--train.batch_size", "4")
    assert (config.train.steps, config.train.batch_size, config.dpo.loss_type) == (11, 4, "ipo")
    assert config.optimizer.weight_decay == 0.0  # the dpo command's default, not birdie train's (0.1)
    assert parse("sft").train.out == "runs/sft"


@pytest.mark.parametrize("values, message", [
    ({"dpo": {"beta": -1}}, r"dpo.beta=-1.0 must be > 0"),
    ({"dpo": {"loss_type": "hinge"}}, r"dpo.loss_type='hinge' is not a valid sigmoid\|ipo"),
    ({"data": {"colour": 1}}, r"unknown field\(s\) data.colour"),
    ({"objectives": {}}, r"unknown config section 'objectives'"),
    ({"schedule": {"warmup_ratio": 1.5}}, r"schedule.warmup_ratio=1.5 must be in \[0, 1\)"),
])
def test_bad_values_name_the_field(values, message):
    with pytest.raises(ConfigError, match=message):
        build_finetune_config("sft", values)
