"""Fine-tuning data from HF ``datasets`` (saved directories, local dataset directories, parquet/JSON files, hub
names) with column mapping, and non-UTF-8 files named with their line."""

import json

import pytest

from birdie.finetune.config import build_finetune_config
from birdie.finetune.datasets import DataError, load_preferences, load_sft, read_jsonl
from birdie.finetune.rows import read_rows
from birdie.tokenizers import ByteTokenizer
from birdie.train.config import ConfigError

from tests.finetune.helpers import make_base, run

datasets = pytest.importorskip("datasets")


def chat(question, answer):
    return [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]


CONVERSATIONS = [chat(f"question {i}?", f"answer {i}") for i in range(6)]


def test_a_saved_dataset_with_renamed_columns(tmp_path):
    datasets.Dataset.from_dict({"conversations": CONVERSATIONS, "id": list(range(6))}).save_to_disk(tmp_path / "d")
    rows = list(read_rows(str(tmp_path / "d"), {"messages": "conversations"}))
    assert [where for where, _ in rows] == [f"{tmp_path / 'd'} row {i}" for i in range(6)]
    assert [row["messages"] for _, row in rows] == CONVERSATIONS and rows[0][1]["id"] == 0
    examples, report = load_sft(rows, ByteTokenizer(), 64)
    assert report.kept == 6 and len(examples) == 6
    with pytest.raises(DataError, match=r"d row 0: no column 'dialogue' \(data.columns maps it\); the row's columns "
                                        r"are \['conversations', 'id'\]"):
        list(read_rows(str(tmp_path / "d"), {"messages": "dialogue"}))


def test_a_saved_dataset_dict_picks_the_split(tmp_path):
    parts = {"train": datasets.Dataset.from_dict({"messages": CONVERSATIONS[:4]}),
             "test": datasets.Dataset.from_dict({"messages": CONVERSATIONS[4:]})}
    datasets.DatasetDict(parts).save_to_disk(tmp_path / "dd")
    assert [row["messages"] for _, row in read_rows(str(tmp_path / "dd"), split="test")] == CONVERSATIONS[4:]
    with pytest.raises(DataError, match=r"no split 'validation'; it has train, test \(set data.split\)"):
        read_rows(str(tmp_path / "dd"), split="validation")
    (tmp_path / "repo").mkdir()  # a local dataset directory: its splits come from the data file names
    for name, rows in (("train", CONVERSATIONS[:4]), ("test", CONVERSATIONS[4:])):
        (tmp_path / "repo" / f"{name}.jsonl").write_text("".join(json.dumps({"messages": r}) + "\n" for r in rows))
    assert [row["messages"] for _, row in read_rows(str(tmp_path / "repo"), split="test")] == CONVERSATIONS[4:]
    with pytest.raises(DataError, match=r"repo: no split 'validation'; it has train, test"):
        read_rows(str(tmp_path / "repo"), split="validation")


def test_local_dataset_directory_parquet_and_json_files(tmp_path):
    pairs = [{"question": f"q{i}", "pos": f"right {i}", "neg": f"wrong {i}"} for i in range(5)]
    (tmp_path / "repo").mkdir()
    (tmp_path / "repo" / "train.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pairs))
    datasets.Dataset.from_list(pairs).to_parquet(tmp_path / "pairs.parquet")
    (tmp_path / "pairs.json").write_text(json.dumps(pairs))
    columns = {"prompt": "question", "chosen": "pos", "rejected": "neg"}
    for spec in (tmp_path / "repo", tmp_path / "pairs.parquet", tmp_path / "pairs.json"):
        rows = list(read_rows(str(spec), columns))
        assert [row for _, row in rows] == [{"prompt": p["question"], "chosen": p["pos"], "rejected": p["neg"]}
                                            for p in pairs], spec
        loaded, report = load_preferences(rows, ByteTokenizer(), 64)
        assert report.kept == 5
    # string sides are assistant turns answering the string prompt (TRL's standard preference format)
    tokenizer, chosen = ByteTokenizer(), loaded[0].chosen
    assert tokenizer.decode([int(i) for i in chosen.ids[1:]]).startswith("<|user|>\nq0\n<|assistant|>\nright 0")
    assert tokenizer.decode([int(i) for i in chosen.ids[chosen.mask]]).startswith("right 0")


def test_an_unavailable_hub_dataset_is_a_clear_error_not_a_wait(tmp_path):
    with pytest.raises(DataError, match=r"nobody/no-such-dataset: no such file or directory, nor a loadable hub "
                                        r"dataset .*not in the local HF datasets cache .*--data.allow_download true"):
        read_rows("nobody/no-such-dataset")
    with pytest.raises(DataError, match=r"missing.jsonl: no such file or directory"):
        read_rows(str(tmp_path / "missing.jsonl"))
    (tmp_path / "rows.csv").write_text("a,b\n")
    with pytest.raises(DataError, match=r"unsupported file type '.csv'"):
        read_rows(str(tmp_path / "rows.csv"))


def test_column_mapping_is_validated(tmp_path):
    with pytest.raises(DataError, match=r"data.columns: unknown field\(s\) answer"):
        read_rows(str(tmp_path), {"answer": "output"})
    with pytest.raises(ConfigError, match=r"columns=\{'answer': 'output'\} maps unknown field"):
        build_finetune_config("sft", {"data": {"columns": {"answer": "output"}}})


def test_non_utf8_files_are_named(tmp_path):
    latin = '{"messages": [{"role": "user", "content": "caf\u00e9"}]}\n'.encode("latin-1")
    (tmp_path / "chat.jsonl").write_bytes(json.dumps({"messages": CONVERSATIONS[0]}).encode() + b"\n" + latin)
    at = latin.index(b"\xe9")
    with pytest.raises(DataError, match=rf"chat.jsonl line 2: not UTF-8 text \(byte {at} of the line: invalid "
                                        r"continuation byte\); convert"):
        list(read_jsonl(tmp_path / "chat.jsonl"))
    (tmp_path / "chat.json").write_bytes(b"[" + latin.strip() + b"]")
    with pytest.raises(DataError, match=rf"chat.json is not UTF-8 text \(byte {at + 1}:"):
        read_rows(str(tmp_path / "chat.json"))


def test_sft_trains_on_a_saved_dataset_from_the_command_line(tmp_path):
    datasets.Dataset.from_dict({"conversations": CONVERSATIONS * 2}).save_to_disk(tmp_path / "d")
    run("sft", make_base(tmp_path / "base"), tmp_path / "sft", "--data", str(tmp_path / "d"), "--steps", "2",
        "--data.columns", "{messages: conversations}", "--train.sequence_length", "64")
    assert (tmp_path / "sft" / "export" / "model.safetensors").is_file()


def test_unavailable_data_fails_before_a_quick_base_is_trained(tmp_path, monkeypatch, capsys):
    from birdie.cli import main

    monkeypatch.chdir(tmp_path)  # no runs/demo/export: a base would be trained first
    assert main(["sft", "--data", "nobody/no-such-dataset", "--out", str(tmp_path / "sft")]) == 2
    assert "no-such-dataset: no such file or directory" in capsys.readouterr().err
    assert not (tmp_path / "sft" / "base").exists()
