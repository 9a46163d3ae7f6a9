"""open_lm webdataset tars: birdie writes them, reads them (and open_lm's own layout), samples and resumes."""

from __future__ import annotations

import gzip
import io
import itertools
import json
import tarfile
import uuid

import numpy as np
import pytest

from birdie.data.open_lm import OpenLMSource, expand_braces, read_shard, write_open_lm_shards


def _documents(count=40, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(1, 300, size=rng.integers(5, 60)).astype(np.int32) for _ in range(count)]


def _write(tmp_path, seq_len=16, per_shard=10, count=40):
    docs = _documents(count)
    summary = write_open_lm_shards(docs, tmp_path / "shards", eos=0, seq_len=seq_len, sequences_per_shard=per_shard)
    return docs, summary


def test_written_sequences_are_the_documents_joined_by_eos(tmp_path):
    docs, summary = _write(tmp_path)
    stream = np.concatenate([np.append(d, 0) for d in docs])
    manifest = [json.loads(line) for line in (tmp_path / "shards" / "manifest.jsonl").read_text().splitlines()]
    assert [m["shard"] for m in manifest] == [f"{i:08d}" for i in range(1, summary["shards"] + 1)]
    sequences = [s for m in manifest for s in read_shard(str(tmp_path / "shards" / f"{m['shard']}.tar"))]
    assert [len(list(read_shard(str(tmp_path / "shards" / f"{m['shard']}.tar")))) for m in manifest] == \
        [m["num_sequences"] for m in manifest]
    assert all(len(s) == 17 for s in sequences) and len(sequences) == summary["sequences"]
    assert np.array_equal(np.concatenate(sequences), stream[: 17 * len(sequences)])
    assert summary["leftover_tokens"] == len(stream) - 17 * len(sequences)
    with tarfile.open(tmp_path / "shards" / "00000001.tar") as tar:
        assert tar.getnames()[:2] == ["000000000000.json.gz", "000000000001.json.gz"]


def test_brace_globs_expand_like_webdataset():
    assert expand_braces("d/shard_{00000..00002}.tar") == [f"d/shard_0000{i}.tar" for i in range(3)]
    assert expand_braces("{a,b}/{1..2}.tar") == ["a/1.tar", "a/2.tar", "b/1.tar", "b/2.tar"]


def test_open_lm_own_layout_reads(tmp_path):
    """Tars as tokenize_shuffle.py writes them: uuid keys, gzipped JSON under json.gz; make_2048's txt too."""
    (tmp_path / "raw").mkdir()
    sequences = [list(range(i, i + 9)) for i in range(6)]
    for shard, part in (("shard-0000000", sequences[:3]), ("shard-0000001", sequences[3:])):
        with tarfile.open(tmp_path / "raw" / f"{shard}.tar", "w") as tar:
            for index, ids in enumerate(part):
                key = uuid.uuid4().hex
                for suffix, data in (("json.gz", gzip.compress(json.dumps(ids).encode())),):
                    info = tarfile.TarInfo(f"{key}.{suffix}")
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
    with tarfile.open(tmp_path / "raw" / "shard-0000002.tar", "w") as tar:
        data = str(list(range(100, 109))).encode()
        info = tarfile.TarInfo("000000000000.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    source = OpenLMSource([str(tmp_path / "raw" / "shard-{0000000..0000002}.tar")], validation_fraction=0.0)
    got = sorted(tuple(d.tolist()) for d in source.documents("train", 0, 1, epoch=0, seed=0))
    assert got == sorted([tuple(s) for s in sequences] + [tuple(range(100, 109))])


def test_without_replacement_each_epoch_sees_every_sequence_once(tmp_path):
    _write(tmp_path)
    source = OpenLMSource([str(tmp_path / "shards" / "manifest.jsonl")], validation_fraction=0.2)
    for epoch in (0, 1):
        train = [tuple(d.tolist()) for stream in range(2)
                 for d in source.documents("train", stream, 2, epoch=epoch, seed=3)]
        valid = [tuple(d.tolist()) for stream in range(2)
                 for d in source.documents("validation", stream, 2, epoch=epoch, seed=3)]
        everything = [tuple(s.tolist()) for path in source.shards for s in read_shard(path)]
        assert sorted(train + valid) == sorted(everything) and valid and not set(train) & set(valid)
    orders = [[tuple(d.tolist()) for d in source.documents("train", 0, 2, epoch=e, seed=3)] for e in (0, 1, 2)]
    assert len({tuple(o) for o in orders}) > 1  # epochs reshuffle the shards


def test_with_replacement_draws_shards_iid_as_open_lm(tmp_path):
    _write(tmp_path, per_shard=1, count=10)
    source = OpenLMSource([str(tmp_path / "shards")], resampled=True, validation_fraction=0.0)
    drawn = list(itertools.islice(source.shard_order(stream=1, num_streams=2, epoch=0, seed=5), 200))
    from birdie.data.sources import stream_seed

    rng = np.random.default_rng(stream_seed(5, 0, 1))
    assert drawn == [int(rng.choice(len(source.shards))) for _ in range(200)]
    assert len(set(drawn)) == len(source.shards) and len(drawn) > len(set(drawn))  # repeats: with replacement


@pytest.mark.parametrize("resampled", [False, True])
def test_resume_is_exact(tmp_path, resampled):
    _write(tmp_path)
    source = OpenLMSource([str(tmp_path / "shards")], resampled=resampled)
    full = [d.tolist() for d in itertools.islice(source.documents("train", 0, 1, epoch=2, seed=1), 25)]
    resumed = [d.tolist() for d in itertools.islice(source.documents("train", 0, 1, epoch=2, seed=1, start=13), 12)]
    assert resumed == full[13:]


def test_missing_shards_fail_clearly(tmp_path):
    _write(tmp_path)
    with pytest.raises(FileNotFoundError, match="00000009.tar"):
        OpenLMSource([str(tmp_path / "shards" / "{00000001..00000009}.tar")])


def test_more_streams_than_shards_share_the_shards_disjointly(tmp_path):
    _write(tmp_path)
    source = OpenLMSource([str(tmp_path / "shards")], validation_fraction=0.0)
    assert len(source.shards) < 9
    per_stream = [[tuple(d.tolist()) for d in source.documents("train", s, 9, epoch=1, seed=0)] for s in range(9)]
    everything = [tuple(s.tolist()) for path in source.shards for s in read_shard(path)]
    assert sorted(sum(per_stream, [])) == sorted(everything) and all(per_stream)
    resumed = [tuple(d.tolist()) for d in source.documents("train", 4, 9, epoch=1, seed=0, start=1)]
    assert resumed == per_stream[4][1:]


def test_tokenize_cli_then_pipeline_trains_on_it(tmp_path):
    from birdie.cli import main
    from birdie.data.pipeline import Pipeline
    from birdie.tokenizers import ByteTokenizer

    assert main(["data", "tokenize", "--stories", "30", "--format", "open_lm", "--seq-len", "63",
                 "--sequences-per-shard", "20", "--out", str(tmp_path / "shards")]) == 0
    source = OpenLMSource([str(tmp_path / "shards" / "manifest.jsonl")])
    with Pipeline(ByteTokenizer(), "ntp", source, batch_size=2, sequence_length=64, seed=0,
                  num_validation_batches=0) as pipeline:
        batch = next(iter(pipeline))
    assert batch["input_ids"].shape == (2, 64) and (batch["label_ids"] != -100).any()
