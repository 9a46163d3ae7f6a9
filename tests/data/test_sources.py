"""Sources and shards: splits never share documents, streams partition a split, shards round-trip ids."""

import json

import numpy as np
import pytest

from birdie.cli import main as birdie_main
from birdie.data.pipeline import Pipeline
from birdie.data.shards import MANIFEST, ShardSource, tokenize_to_shards
from birdie.data.source_dispatch import as_source
from birdie.data.sources import (
    CallableSource,
    DatasetSource,
    files_source,
    split_hash,
)
from birdie.objectives import NextTokenPrediction
from birdie.tokenizers import ByteTokenizer

TEXTS = [f"document number {i} " + "word " * (i % 17) for i in range(300)]


def read_all(source, split, num_streams, epoch=0, seed=0):
    return [list(source.documents(split, s, num_streams, epoch, seed)) for s in range(num_streams)]


def texts_of(streams):
    return [source_item["text"] if isinstance(source_item, dict) else source_item
            for stream in streams for source_item in stream]


def test_split_hash_is_uniform_and_fixed():
    values = split_hash(np.arange(100_000))
    assert 0 <= values.min() and values.max() < 1
    assert abs((values < 0.1).mean() - 0.1) < 0.005
    assert np.array_equal(values, split_hash(np.arange(100_000)))


@pytest.mark.parametrize("streaming", [False, True])
def test_dataset_source_partitions_streams_and_splits(streaming):
    import datasets

    dataset = datasets.Dataset.from_dict({"text": TEXTS})
    if streaming:
        dataset = dataset.to_iterable_dataset(num_shards=4)
    source = DatasetSource(dataset, validation_fraction=0.2)
    train, validation = texts_of(read_all(source, "train", 4)), texts_of(read_all(source, "validation", 4))
    assert len(train) == len(set(train)) and set(train).isdisjoint(validation)
    assert sorted(train + validation) == sorted(TEXTS)
    assert 30 <= len(validation) <= 90
    assert train == texts_of(read_all(source, "train", 4))  # the same order on a re-run
    resumed = list(source.documents("train", 1, 4, 0, 0, start=5))
    assert resumed == read_all(source, "train", 4)[1][5:]


def test_map_style_train_order_reshuffles_per_epoch_but_not_its_documents():
    import datasets

    source = DatasetSource(datasets.Dataset.from_dict({"text": TEXTS}))
    first, second = texts_of(read_all(source, "train", 2, epoch=0)), texts_of(read_all(source, "train", 2, epoch=1))
    assert first != second and sorted(first) == sorted(second)


def test_files_source_reads_txt_jsonl_and_parquet(tmp_path):
    import datasets

    (tmp_path / "a.txt").write_text("first paragraph\nstill first\n\nsecond paragraph\n")
    with open(tmp_path / "b.jsonl", "w") as f:
        for text in TEXTS[:20]:
            f.write(json.dumps({"body": text}) + "\n")
    datasets.Dataset.from_dict({"text": TEXTS[:10]}).to_parquet(str(tmp_path / "c.parquet"))

    txt = files_source(tmp_path / "a.txt", validation_fraction=0.0)
    assert [txt.extract(i).strip() for i in txt.dataset] == ["first paragraph\nstill first", "second paragraph"]
    jsonl = files_source(str(tmp_path / "*.jsonl"), text_grabber_fn=lambda item: item["body"])
    assert sorted(jsonl.extract(i) for i in jsonl.dataset) == sorted(TEXTS[:20])
    assert files_source([tmp_path / "c.parquet"]).num_documents == 10
    with pytest.raises(ValueError, match="mixed file types"):
        files_source([tmp_path / "a.txt", tmp_path / "b.jsonl"])
    with pytest.raises(FileNotFoundError, match="no such file"):
        files_source(tmp_path / "missing.txt")


def test_as_source_dispatch(tmp_path):
    assert isinstance(as_source(lambda *args: []), CallableSource)
    assert isinstance(as_source(None), CallableSource)
    with pytest.raises(TypeError, match="cannot use int"):
        as_source(3)


def test_shards_round_trip_ids_without_retokenizing(tmp_path, tokenizer):
    items = TEXTS[:50] + ["", {"text": None}]
    manifest = tokenize_to_shards(items, tmp_path / "shards", tokenizer, documents_per_shard=16, progress=False)
    assert [entry["shard"] for entry in manifest] == ["shard_00000", "shard_00001", "shard_00002", "shard_00003"]
    assert sum(entry["num_sequences"] for entry in manifest) == 50
    assert sum(entry["num_tokens"] for entry in manifest) == sum(len(tokenizer.encode(t)) for t in TEXTS[:50])
    meta = json.loads((tmp_path / "shards" / "meta.json").read_text())
    assert meta["invalid_documents"] == 2 and meta["dtype"] == "uint16"
    source = as_source(str(tmp_path / "shards"))
    assert isinstance(source, ShardSource)
    for i, text in enumerate(TEXTS[:50]):
        assert np.array_equal(source.item(i), tokenizer.encode(text))
    with pytest.raises(FileExistsError):
        tokenize_to_shards(items, tmp_path / "shards", tokenizer, progress=False)
    with pytest.raises(ValueError, match="vocabulary of 402 ids"):
        Pipeline(ByteTokenizer(num_sentinels=100), [NextTokenPrediction()], str(tmp_path / "shards"))


@pytest.mark.multiprocess
def test_tokenize_cli_in_parallel_feeds_the_pipeline(tmp_path, tokenizer, capsys):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS))
    out = tmp_path / "shards"
    assert birdie_main(["data", "tokenize", str(corpus), "--out", str(out), "--workers", "2",
                        "--documents-per-shard", "64"]) == 0
    assert "wrote 5 shards, 300 documents" in capsys.readouterr().out
    lines = (out / MANIFEST).read_text().splitlines()
    assert [json.loads(line)["num_sequences"] for line in lines] == [64, 64, 64, 64, 44]
    mixture = [NextTokenPrediction(paradigm="none")]
    with Pipeline(tokenizer, mixture, str(out), batch_size=2, sequence_length=256, num_streams=2) as pipeline:
        batch = next(pipeline)
    text = tokenizer.decode(batch["label_ids"][0][batch["label_ids"][0] != -100])
    assert text.startswith("document number ")


def test_story_shards_from_the_cli(tmp_path, capsys):
    out = tmp_path / "stories"
    assert birdie_main(["data", "tokenize", "--stories", "30", "--out", str(out)]) == 0
    assert ShardSource(out).num_documents == 30


@pytest.mark.parametrize("fraction", [-0.1, 1.0, 1.5])
def test_sources_reject_a_validation_fraction_outside_0_1(tmp_path, fraction):
    out = tmp_path / "stories"
    assert birdie_main(["data", "tokenize", "--stories", "3", "--out", str(out)]) == 0
    with pytest.raises(ValueError, match=rf"ShardSource.validation_fraction={fraction} must be in \[0, 1\)"):
        ShardSource(out, validation_fraction=fraction)
    with pytest.raises(ValueError, match=rf"DatasetSource.validation_fraction={fraction} must be in \[0, 1\)"):
        DatasetSource(["a", "b"], validation_fraction=fraction)


def test_inspect_cli_reads_a_shard_directory(tmp_path, capsys):
    out = tmp_path / "stories"
    assert birdie_main(["data", "tokenize", "--stories", "20", "--out", str(out)]) == 0
    assert isinstance(as_source([str(out)]), ShardSource)
    assert birdie_main(["data", "inspect", str(out), "--mixture", "ntp", "--sequence-length", "300"]) == 0
    assert "=== batch 0" in capsys.readouterr().out
