"""From the ``data`` and ``curriculum`` config sections to a :class:`~birdie.Birdie` curriculum for this rank.

The curriculum owns the pipeline (this rank's data shard, the validation batches) and the agent (the mixture,
identical on every rank: validation losses are averaged over ranks and rank 0's decision is broadcast). The
``curriculum`` section is the very :class:`~birdie.curriculum.config.CurriculumConfig` that ``Birdie`` takes;
this module adds what the run knows: the tokenizer, the data source, the micro-batch, the rank.
"""

from __future__ import annotations

import operator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from birdie.callables import import_callable
from birdie.data.packing import BATCH_KEYS
from birdie.tokenizers import Tokenizer
from birdie.train.config import ConfigError, TrainConfig
from birdie.train.distributed import Runtime


def data_source(config: TrainConfig) -> Any:
    """What the pipeline reads: None (synthetic stories), file paths, a shard directory, or a callable."""
    data = config.data
    if data.source == "synthetic":
        return None
    if data.source == "callable":
        return import_callable(data.callable)
    if data.source == "open_lm":
        from birdie.data.open_lm import OpenLMSource

        return OpenLMSource(data.paths, resampled=data.resampled)
    if data.source == "shards":
        if len(data.paths) != 1:
            raise ConfigError(f"data.paths={data.paths!r} must name one shard directory (with manifest.jsonl) "
                              "when data.source=shards")
        if not (Path(data.paths[0]) / "manifest.jsonl").is_file():
            raise ConfigError(f"data.paths={data.paths!r}: {data.paths[0]} has no manifest.jsonl, so it is not a "
                              "shard directory; write one with `birdie data tokenize`, or use data.source=files for "
                              "text files")
        return data.paths[0]
    return list(data.paths)


def build_curriculum(config: TrainConfig, tokenizer: Tokenizer, runtime: Runtime, micro_batch_size: int,
                     log_path: str | None) -> Any:
    """The :class:`~birdie.Birdie` curriculum feeding this rank micro-batches of ``micro_batch_size`` rows."""
    from birdie.curriculum.api import Birdie, BirdieConfig

    text_key = config.data.text_key
    # Ranks of one tensor-parallel group read the same data: the pipeline sees data ranks, not process ranks.
    placement = SimpleNamespace(process_index=runtime.data_rank, num_processes=runtime.data_world,
                                device=runtime.device)
    settings = BirdieConfig(
        tokenizer=tokenizer,
        ds=data_source(config),
        text_grabber_fn=None if text_key == "text" else operator.itemgetter(text_key),
        batch_size=micro_batch_size,
        sequence_length=config.train.sequence_length,
        num_workers=config.data.num_workers,
        num_steps=config.train.steps,
        accelerator=placement,
        seed=config.train.seed,
        log_path=log_path,
        pipeline_options={"prompt_key": config.data.prompt_key, "completion_key": config.data.completion_key,
                          "batch_timeout_s": config.data.batch_timeout_s},
        batch_keys=BATCH_KEYS,
        curriculum=config.curriculum,
    )
    try:
        return Birdie(settings)
    except ConfigError as error:
        ours = str(error).startswith("CurriculumConfig.")  # a curriculum field: name it by its config path
        raise (error.at("curriculum") if ours else ConfigError(f"curriculum/data: {error}")) from None
    except (ValueError, FileNotFoundError) as error:
        raise ConfigError(f"curriculum/data: {error}") from None
