"""Bad input data gets a clear error naming the file (or document) and the fix: damaged shards, manifests that
point outside their directory, ids out of the vocabulary or not integers, empty and non-UTF-8 text files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from birdie.data.pairs import tokenize_text
from birdie.data.pipeline import Pipeline
from birdie.data.shards import MANIFEST, ShardSource, tokenize_to_shards, write_shard
from birdie.data.source_dispatch import as_source
from birdie.data.sources import files_source
from birdie.objectives import NextTokenPrediction

TEXTS = [f"story number {i} about a dog and a ball" for i in range(30)]


@pytest.fixture
def shards(tmp_path, tokenizer):
    directory = tmp_path / "shards"
    tokenize_to_shards(TEXTS, directory, tokenizer, documents_per_shard=10, progress=False)
    return directory


def _read_every_document(directory) -> None:
    source = ShardSource(directory, validation_fraction=0.0)
    for index in range(source.num_documents):
        source.item(index)


def test_intact_shards_read_back_every_document(shards, tokenizer):
    source = ShardSource(shards, validation_fraction=0.0)
    assert [tokenizer.decode(source.item(i).tolist()) for i in range(source.num_documents)] == TEXTS


def _rewrite_offsets(directory, change) -> str:
    path = directory / "shard_00001.offsets.npy"
    offsets = np.load(path)
    change(offsets)
    np.save(path, offsets)
    return str(path)


@pytest.mark.parametrize("change, problem", [
    (lambda o: o.__setitem__(3, o[2] - 1), "decreases at entry 3"),
    (lambda o: o.__setitem__(0, 5), "starts at 5"),
    (lambda o: o.__setitem__(-1, o[-1] + 7), "ends at"),
    (lambda o: o.__setitem__(4, -(1 << 40)), "decreases"),
])
def test_damaged_offsets_are_an_error_naming_the_file(shards, change, problem):
    path = _rewrite_offsets(shards, change)
    with pytest.raises(ValueError, match=problem) as caught:
        _read_every_document(shards)
    assert path in str(caught.value)


def test_a_flipped_byte_in_an_offsets_file_is_an_error_naming_the_file(shards):
    path = shards / "shard_00001.offsets.npy"
    raw = bytearray(path.read_bytes())
    raw[-8 * 5 + 7] ^= 0x80  # the top byte of an entry in the middle: a huge negative offset
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="shard is corrupt") as caught:
        _read_every_document(shards)
    assert str(path) in str(caught.value)


def test_a_damaged_npy_header_is_an_error_naming_the_file(shards):
    path = shards / "shard_00002.offsets.npy"
    path.write_bytes(b"garbage" + path.read_bytes()[7:])
    with pytest.raises(ValueError, match="cannot be read") as caught:
        _read_every_document(shards)
    assert str(path) in str(caught.value)


@pytest.mark.parametrize("name", ["../outside", "/etc/passwd", "sub/shard", "..", ""])
def test_manifest_entries_pointing_outside_their_directory_are_rejected(shards, name):
    lines = (shards / MANIFEST).read_text().splitlines()
    lines[1] = json.dumps({**json.loads(lines[1]), "shard": name})
    (shards / MANIFEST).write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=f"{MANIFEST} line 2: shard .* must be a file name inside"):
        ShardSource(shards)


def test_shard_ids_outside_the_vocabulary_name_the_file_and_the_id(shards, tokenizer):
    path = shards / "shard_00000.tokens.npy"
    tokens = np.load(path)
    tokens[5] = tokenizer.vocab_size + 3
    np.save(path, tokens)
    with pytest.raises(ValueError, match=f"token id {tokenizer.vocab_size + 3}, outside the vocabulary") as caught:
        _read_every_document(shards)
    assert str(path) in str(caught.value)


def test_float_shard_tokens_are_an_error_not_truncated(shards):
    path = shards / "shard_00000.tokens.npy"
    np.save(path, np.load(path).astype(np.float32) + 0.5)
    with pytest.raises(ValueError, match="float32 array .* not 1-D integer tokens") as caught:
        _read_every_document(shards)
    assert str(path) in str(caught.value)
    with pytest.raises(TypeError, match="token ids must be integers"):
        write_shard(shards, "new", [np.array([1.7, 2.2])], np.dtype(np.uint16))


@pytest.mark.parametrize("ids, message", [
    (np.array([1.0, 2.9]), "float64 values"),
    (np.array([5, 402]), "token id 402, outside"),  # ByteTokenizer: 402 ids
    (np.array([5, -1]), "token id -1, outside"),
    (np.array([1 << 33], dtype=np.int64), "outside"),  # would wrap to another id as int32
])
def test_pre_tokenized_documents_are_checked_not_truncated(tokenizer, ids, message):
    with pytest.raises(ValueError, match=message):
        tokenize_text(ids, tokenizer)
    np.testing.assert_array_equal(tokenize_text(np.array([0, 255], dtype=np.uint64), tokenizer), [0, 255])


def test_the_pipeline_reports_out_of_vocabulary_ids_of_a_callable_source(tokenizer):
    def ds(split, worker_id, num_workers, rng_seed):
        return [np.arange(10, dtype=np.int64) + 398] * 50  # 402 and up are outside ByteTokenizer's vocabulary

    with Pipeline(tokenizer, [NextTokenPrediction()], ds, batch_size=2, sequence_length=32) as pipeline:
        with pytest.raises(ValueError, match="outside the tokenizer's vocabulary"):
            next(pipeline)


def test_a_shard_directory_without_its_manifest_is_named(shards):
    (shards / MANIFEST).unlink()
    with pytest.raises(FileNotFoundError, match=f"holds shards .* but no {MANIFEST}") as caught:
        as_source(str(shards))
    assert str(shards) in str(caught.value)


def test_an_empty_text_file_is_named(tmp_path):
    (tmp_path / "good.txt").write_text("a story\n")
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(ValueError, match="empty.txt is empty"):
        files_source([str(tmp_path / "good.txt"), str(tmp_path / "empty.txt")])


def test_a_non_utf8_text_file_is_named_with_the_byte(tmp_path):
    (tmp_path / "good.txt").write_text("a story\n\nanother one\n")
    (tmp_path / "latin.txt").write_bytes("caf\u00e9 au lait\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin.txt is not UTF-8 text \(byte 3: invalid continuation byte\)"):
        files_source(str(tmp_path / "*.txt"))


def test_a_non_utf8_jsonl_file_that_datasets_would_load_is_named(tmp_path):
    # `datasets` loads this file and fails only when row 0 is read; the check runs before loading
    (tmp_path / "latin.jsonl").write_bytes('{"text": "caf\u00e9"}\n{"text": "plain"}\n'.encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin.jsonl is not UTF-8 text \(byte 13: invalid continuation byte\)"):
        files_source(str(tmp_path / "latin.jsonl"))
