"""``birdie train`` input checks: config syntax errors name the file and line, a shard directory must have its
manifest, the pipeline's batch timeout is a config field, and a step that cannot fit in memory fails before
anything large is allocated."""

from __future__ import annotations

import argparse

import pytest

from birdie.cli import main
from birdie.train import memory
from birdie.train.cli import build_parser, config_from_args
from birdie.train.config import ConfigError
from birdie.train.config_io import build_config, read_config_file
from birdie.train.curriculum_setup import build_curriculum, data_source
from birdie.train.trainer import Trainer
from birdie.tokenizers import ByteTokenizer
from tests.train.helpers import SINGLE


@pytest.mark.parametrize("name, text, where", [
    ("run.yaml", "train:\n  steps: 5\n  out: [unclosed\nmodel:\n  preset: x\n", "line 4, column 6"),
    ("run.yml", "train:\n\tsteps: 5\n", "line 2, column 1"),
    ("run.toml", "[train\nsteps = 1\n", "line 1"),
])
def test_a_config_syntax_error_names_the_file_and_line(tmp_path, capsys, name, text, where):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigError, match=where) as caught:
        read_config_file(path)
    assert str(path) in str(caught.value) and "fix the syntax" in str(caught.value)
    assert main(["train", "--config", str(path)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and str(path) in error and where in error  # one line, no traceback


def test_a_shard_directory_without_a_manifest_is_a_config_error(tmp_path):
    (tmp_path / "shard_00000.tokens.npy").write_bytes(b"")
    config = build_config({"data": {"source": "shards", "paths": [str(tmp_path)]}})
    with pytest.raises(ConfigError, match="has no manifest.jsonl, so it is not a shard directory"):
        data_source(config)


@pytest.mark.parametrize("value, expected", [("12.5", 12.5), ("none", None)])
def test_the_batch_timeout_is_settable_and_reaches_the_pipeline(value, expected):
    parser = argparse.ArgumentParser()
    build_parser(parser)
    config = config_from_args(parser.parse_args(["--data.batch_timeout_s", value, "--curriculum.agent", "ntp"]))
    assert config.data.batch_timeout_s == expected
    curriculum = build_curriculum(config, ByteTokenizer(), SINGLE, 2, None)
    try:
        assert curriculum.pipeline.config.batch_timeout_s == expected
    finally:
        curriculum.close()


@pytest.mark.parametrize("value", [0, -1.0, float("inf")])
def test_a_batch_timeout_must_be_positive_and_finite(value):
    with pytest.raises(ConfigError, match="data.batch_timeout_s"):
        build_config({"data": {"batch_timeout_s": value}})


def test_the_step_memory_bound_grows_with_the_tokens_of_a_micro_batch():
    config = {"d_model": 64, "n_layers": 2, "vocab_size": 402, "mlp_hidden": None}
    one = memory.step_memory(config, 1000, 4, 256, bf16=False)
    four = memory.step_memory(config, 1000, 8, 512, bf16=False)
    assert one["weights"] == four["weights"] == 16_000
    for part in ("activations", "logits", "batches"):
        assert four[part] == 4 * one[part]
    assert memory.step_memory(config, 1000, 4, 256, bf16=True)["activations"] == one["activations"] // 2
    sharded = memory.step_memory(config, 1000, 4, 256, bf16=False, fsdp=4, tp=2)
    assert sharded["weights"] == one["weights"] // 8 and sharded["logits"] == one["logits"] // 2
    assert sharded["batches"] == one["batches"]


def test_a_step_too_large_for_memory_fails_fast_with_the_numbers_and_the_fix(capsys, tmp_path):
    status = main(["train", "--train.sequence_length", "1000000", "--train.batch_size", "64", "--steps", "1",
                   "--out", str(tmp_path / "run"), "--train.device", "cpu"])
    error = capsys.readouterr().err
    assert status == 2 and error.count("\n") == 1
    assert "64 x 1000000 = 64,000,000 tokens" in error and "GiB" in error
    assert "lower train.batch_size" in error and "train.check_memory=false" in error
    assert not (tmp_path / "run").exists()  # refused before the run wrote anything


@pytest.mark.parametrize("check", [True, False])
def test_check_memory_false_skips_the_bound(monkeypatch, tmp_path, check):
    monkeypatch.setattr(memory, "available_memory", lambda device: 1)  # a machine with no memory
    config = build_config({"train": {"steps": 1, "out": str(tmp_path / "run"), "device": "cpu",
                                     "check_memory": check}, "curriculum": {"agent": "ntp"}})
    if check:
        with pytest.raises(ConfigError, match="but the cpu has 0.0 GiB"):
            Trainer(config, SINGLE)
    else:
        Trainer(config, SINGLE).close()
