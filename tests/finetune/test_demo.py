"""`birdie demo finetune` chains SFT -> DPO -> RM and prints the held-out accuracies; with no base it trains one."""

from birdie.cli import main
from birdie.finetune import base as base_module
from birdie.finetune.config import COMMAND_DEFAULTS, build_finetune_config
from birdie.train.distributed import init_runtime
from birdie.train.export import load, read_training_record

from tests.finetune.helpers import make_base


def test_demo_chains_the_three_stages(tmp_path, capsys, monkeypatch):
    for command in COMMAND_DEFAULTS:  # a few rows, so the test takes seconds
        monkeypatch.setitem(COMMAND_DEFAULTS[command], "data", {"embedded_examples": 32, "heldout_examples": 16})
    base = make_base(tmp_path / "base")
    assert main(["demo", "finetune", "--pretrained", str(base), "--out", str(tmp_path / "ft"), "--steps", "2",
                 "--no-progress"]) == 0
    printed = capsys.readouterr().out
    for stage in ("sft", "dpo", "rm", "ppo"):
        assert f"== birdie {stage} ==" in printed and f"  {stage} " in printed
        assert (tmp_path / "ft" / stage / "export" / "model.safetensors").is_file()
    assert read_training_record(tmp_path / "ft" / "dpo" / "export")["base"] == str(tmp_path / "ft" / "sft" / "export")
    assert type(load(tmp_path / "ft" / "rm" / "export")[0]).__name__ == "RewardModel"


def test_quick_base_is_trained_when_none_is_given(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no runs/demo/export here
    monkeypatch.setitem(base_module.QUICK_BASE, "train", {**base_module.QUICK_BASE["train"], "steps": 2})
    config = build_finetune_config("sft", {"train": {"out": str(tmp_path / "sft")}, "logging": {"progress": False}})
    path = base_module.base_path(config, init_runtime(config.distributed, "cpu"))
    assert path == tmp_path / "sft" / "base" / "export"
    model, tokenizer = load(path)
    assert model.config.family == "transformer"
    assert model.config.vocab_size == tokenizer.vocab_size == base_module.STORY_VOCAB
    assert len(tokenizer.encode(" village")) == 1  # the story tokenizer: story words are single tokens
    assert base_module.base_path(config, init_runtime(config.distributed, "cpu")) == path  # reused, not retrained
