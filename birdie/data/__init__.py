"""Data: sources, synthetic stories, pre-tokenized shards, best-fit packing and the multi-process pipeline.

The public names below are imported lazily, so ``import birdie.data.stories`` does not pull in torch.
See ``docs/data.md`` for the batch format and the pipeline's guarantees.
"""

from __future__ import annotations

from birdie.lazy import lazy_getattr

_LAZY = {
    "Pipeline": "birdie.data.pipeline",
    "PipelineConfig": "birdie.data.config",
    "PipelineWorkerError": "birdie.data.workers",
    "PipelineDataError": "birdie.data.streams",
    "BatchBuilder": "birdie.data.packing",
    "BATCH_KEYS": "birdie.data.packing",
    "pack_examples": "birdie.data.packing",
    "Source": "birdie.data.sources",
    "CallableSource": "birdie.data.sources",
    "DatasetSource": "birdie.data.sources",
    "files_source": "birdie.data.sources",
    "as_source": "birdie.data.source_dispatch",
    "ShardSource": "birdie.data.shards",
    "tokenize_to_shards": "birdie.data.shards",
}

__getattr__ = lazy_getattr(__name__, _LAZY)


__all__ = sorted(_LAZY)
