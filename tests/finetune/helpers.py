"""Shared helpers of the fine-tuning tests: a tiny random base export and short runs of the commands."""

from pathlib import Path

import torch

from birdie.cli import main
from birdie.models import create
from birdie.finetune.base import story_tokenizer
from birdie.tokenizers import ByteTokenizer, load_tokenizer
from birdie.train.export import export_model, read_weights

#: A run of a few seconds: tiny batches of the embedded story questions, no progress bar or plots.
QUICK = ["--train.batch_size", "4", "--data.embedded_examples", "32", "--data.heldout_examples", "0",
         "--logging.progress", "false", "--logging.plots", "false", "--logging.log_every", "1",
         "--train.device", "cpu", "--schedule.warmup_steps", "1"]


def make_base(directory: Path, preset: str = "transformer-tiny") -> Path:
    """A freshly initialised tiny model exported with the byte tokenizer."""
    torch.manual_seed(0)
    tokenizer = ByteTokenizer()
    model = create(preset, vocab_size=tokenizer.vocab_size)
    return export_model(directory, model, model.config.to_dict(), tokenizer)


def make_story_base(directory: Path) -> Path:
    """A freshly initialised ``transformer-tiny`` exported with the quick base's BPE tokenizer trained on the
    embedded stories: story words are single tokens, so a tiny model learns to read answers off a passage in a few
    hundred steps (byte-level, it needs thousands)."""
    tokenizer = load_tokenizer(str(story_tokenizer(directory / "tokenizer")))
    torch.manual_seed(0)
    model = create("transformer-tiny", vocab_size=tokenizer.vocab_size)
    return export_model(directory / "export", model, model.config.to_dict(), tokenizer)


def run(command: str, base: Path, out: Path, *extra: str) -> dict[str, torch.Tensor]:
    """Run ``birdie COMMAND`` in this process; returns the exported weights (empty without an export)."""
    assert main([command, "--pretrained", str(base), "--out", str(out), *QUICK, *extra]) == 0
    return read_weights(out / "export") if (out / "export").is_dir() else {}


def max_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a)
