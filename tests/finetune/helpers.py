"""Shared helpers of the fine-tuning tests: a tiny random base export and short runs of the commands."""

from pathlib import Path

import torch

from birdie.cli import main
from birdie.models import create
from birdie.tokenizers import ByteTokenizer
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


def make_story_base(directory: Path, vocab_size: int = 1024, stories: int = 1000) -> Path:
    """A freshly initialised ``transformer-tiny`` exported with a BPE tokenizer trained on the embedded stories' train
    split: story words are single tokens, so a tiny model learns to read answers off a passage in a few hundred
    steps (byte-level, it needs thousands)."""
    import itertools

    from birdie.data.stories import story_texts
    from birdie.tokenizers import train_bpe

    directory.mkdir(parents=True, exist_ok=True)
    corpus = directory / "stories.txt"
    corpus.write_text("\n\n".join(itertools.islice(story_texts(0, "train"), stories)))
    tokenizer = train_bpe([corpus], vocab_size)
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
