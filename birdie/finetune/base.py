"""Where a fine-tuning run starts: the base model and the data.

The base is ``model.pretrained`` (any birdie export, checkpoint or run directory), else ``runs/demo/export`` when
``birdie demo`` left one, else a small base trained on the spot on the synthetic stories (``OUT/base``; one process
only). The data are ``data.paths``, else the embedded story questions (:mod:`birdie.finetune.story_qa`), whose
held-out split also gives the accuracy evaluation.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any, Iterable

from torch import nn

from birdie.finetune.config import FinetuneConfig
from birdie.finetune.datasets import LoadReport, load_preferences, load_sft
from birdie.finetune.rows import read_rows
from birdie.finetune.story_qa import chat_rows, preference_rows
from birdie.train.config import ConfigError
from birdie.train.distributed import Runtime

DEMO_EXPORT = Path("runs/demo/export")
#: The quick base: a minute of next-token prediction on the stories (``model.preset``, CPU), with a BPE tokenizer
#: trained on the stories (words are single tokens: a tiny model learns to read answers off a passage quickly).
QUICK_BASE = {"curriculum": {"mixture": "ntp", "agent": "ntp"},
              "train": {"steps": 300, "sequence_length": 256, "batch_size": 8, "device": "cpu"},
              "schedule": {"warmup_steps": 20}, "logging": {"log_every": 50, "plots": False}}
#: The quick base's tokenizer: vocabulary size and how many training stories it is learnt from.
STORY_VOCAB, STORY_TOKENIZER_STORIES = 1024, 1000


def story_tokenizer(directory: Path, vocab_size: int = STORY_VOCAB, stories: int = STORY_TOKENIZER_STORIES) -> Path:
    """Train a byte-level BPE on the first ``stories`` train-split stories; returns ``directory/tokenizer.json``."""
    from birdie.data.stories import story_texts
    from birdie.tokenizers import train_bpe

    directory.mkdir(parents=True, exist_ok=True)
    corpus = directory / "stories.txt"
    corpus.write_text("\n\n".join(itertools.islice(story_texts(0, "train"), stories)), encoding="utf-8")
    path = directory / "tokenizer.json"
    train_bpe([corpus], vocab_size).save(path)
    corpus.unlink()
    return path


def base_path(config: FinetuneConfig, runtime: Runtime) -> Path:
    """The export to start from (training the quick base first when there is none)."""
    if config.model.pretrained:
        return Path(config.model.pretrained)
    if DEMO_EXPORT.is_dir():
        return DEMO_EXPORT
    quick = Path(config.train.out) / "base"
    if (quick / "export").is_dir():
        return quick / "export"
    if runtime.world_size > 1:
        raise ConfigError("model.pretrained is not set and there is no runs/demo/export; under torchrun pass "
                          "--pretrained EXPORT (or run `birdie demo` once)")
    from birdie.train.config_io import build_config
    from birdie.train.trainer import train

    print(f"no base model given (--pretrained) and no {DEMO_EXPORT}: training a small one into {quick} first")
    values = {**QUICK_BASE, "model": {"preset": config.model.preset},
              "data": {"tokenizer": str(story_tokenizer(quick / "tokenizer"))}}
    values["train"] = {**QUICK_BASE["train"], "out": str(quick), "seed": config.train.seed}
    values["logging"] = {**QUICK_BASE["logging"], "progress": config.logging.progress}
    return train(build_config(values)).export


def load_base(config: FinetuneConfig, runtime: Runtime) -> tuple[nn.Module, Any, Path]:
    """``(language model, tokenizer, its path)``."""
    from birdie.train.export import load

    path = base_path(config, runtime)
    model, tokenizer = load(path)
    if not isinstance(model, nn.Module) or not hasattr(model, "output"):
        raise ConfigError(f"model.pretrained={str(path)!r} is not a language model export (a reward model?)")
    return model.train(), tokenizer, path


def _template(config: FinetuneConfig) -> Any:
    if config.data.chat_template is None:
        return None
    from birdie.finetune.chat_template import ChatTemplate

    return ChatTemplate.from_tokenizer_config(config.data.chat_template)


def data_rows(config: FinetuneConfig, preference: bool) -> Iterable[tuple[str, dict[str, Any]]]:
    """The ``(where, row)`` training rows: ``data.paths`` (each opened now, so a missing file or an unavailable
    dataset fails before any quick base is trained), else the embedded story questions."""
    data = config.data
    if data.paths:
        return itertools.chain(*[read_rows(path, data.columns, data.split, data.allow_download) for path in data.paths])
    rows = (preference_rows if preference else chat_rows)("train", data.embedded_examples, config.train.seed)
    return ((f"embedded story question {index}", row) for index, row in enumerate(rows))


def load_data(config: FinetuneConfig, tokenizer: Any, rows: Iterable[tuple[str, dict[str, Any]]], preference: bool,
              runtime: Runtime) -> tuple[list, LoadReport]:
    """The training examples (SFT) or pairs (DPO, RM) of ``rows``, with the load report printed on rank 0."""
    load = load_preferences if preference else load_sft
    items, report = load(rows, tokenizer, config.train.sequence_length, config.data.drop_truncated,
                         _template(config))
    if runtime.is_main:
        print(f"{config.command} data: {report.summary()}")
    if not items:
        raise ConfigError(f"data.paths={config.data.paths}: no usable rows ({report.summary()})")
    return items, report


def heldout_pairs(config: FinetuneConfig, tokenizer: Any) -> list:
    """Held-out preference pairs for the answer-accuracy evaluation (embedded story questions, validation split);
    none when the run trains on its own files."""
    if config.data.paths or not config.data.heldout_examples:
        return []
    rows = preference_rows("validation", config.data.heldout_examples, config.train.seed)
    pairs, _ = load_preferences(((f"held-out question {i}", row) for i, row in enumerate(rows)), tokenizer,
                                config.train.sequence_length)
    return pairs
