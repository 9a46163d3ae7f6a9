"""``birdie eval`` end to end on a tiny exported model: sets, caching, tables and result files."""

import json
import re
from pathlib import Path

import pytest
import torch

from birdie.cli import main
from birdie.models import create
from birdie.tokenizers import ByteTokenizer
from birdie.train.export import export_model

FIXTURE = Path(__file__).parent / "fixtures" / "squad_v2_mini.json"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    tokenizer = ByteTokenizer()
    torch.manual_seed(0)
    model = create("hawk-tiny", vocab_size=tokenizer.vocab_size)
    return str(export_model(tmp_path_factory.mktemp("run") / "export", model, model.config.to_dict(), tokenizer))


def test_phonebook_generate_then_reuse_then_score(checkpoint, tmp_path, capsys):
    options = ["--num-books", "4", "--min-entries", "5", "--max-entries", "8", "--num-queries", "1-2"]
    data = tmp_path / "books.jsonl"
    assert main(["eval", "phonebook", "--generate", str(data), *options]) == 0
    assert f"wrote 4 items: {data}" in capsys.readouterr().out
    lines = data.read_text().splitlines()
    assert len(lines) == 4 and {"prompt", "answer"} <= set(json.loads(lines[0]))
    assert main(["eval", "phonebook", "--generate", str(data), *options]) == 0
    assert "reused 4 items" in capsys.readouterr().out
    assert main(["eval", "phonebook", "--generate", str(data), *options, "--seed", "1"]) == 0
    assert "wrote 4 items" in capsys.readouterr().out  # other options: the stale file is rebuilt

    out = tmp_path / "pb.json"
    assert main(["eval", "phonebook", "--data", str(data), "--checkpoint", checkpoint, "--out", str(out),
                 "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "digit_acc" in printed and "random baseline" in printed
    result = json.loads(out.read_text())
    assert len(result["predictions"]) == 4
    assert set(result["metrics"]["by_num_queries"]) == {"1", "2"}
    assert 0.0 <= result["metrics"]["digit_accuracy"] <= 1.0
    assert result["prompt_mode"] == "prefix"
    assert main(["eval", "phonebook", "--data", str(data), "--checkpoint", checkpoint, "--out", str(out),
                 "--no-progress", "--prompt-mode", "causal"]) == 0
    assert json.loads(out.read_text())["prompt_mode"] == "causal"


def test_phonebook_number_digits_sets_the_numbers_length(tmp_path, capsys):
    data = tmp_path / "short.jsonl"
    assert main(["eval", "phonebook", "--generate", str(data), "--num-books", "6", "--min-entries", "1",
                 "--max-entries", "3", "--num-queries", "1", "--number-digits", "4"]) == 0
    answers = [json.loads(line)["answer"] for line in data.read_text().splitlines()]
    assert len(answers) == 6 and all(re.fullmatch(r"[1-9]\d{3}", answer) for answer in answers)


def test_story_infilling_from_a_user_corpus(checkpoint, tmp_path, capsys):
    corpus = tmp_path / "stories.txt"
    corpus.write_text("\n\n".join(" ".join(f"Story {s} step {e}." for e in range(5)) for s in range(6)))
    out = tmp_path / "si.json"
    args = ["eval", "story-infilling", "--corpus", str(corpus), "--num-items", "6", "--cache-dir", str(tmp_path),
            "--checkpoint", checkpoint, "--out", str(out), "--no-progress"]
    assert main(args) == 0
    result = json.loads(out.read_text())
    assert result["metrics"]["num_items"] == 6 and len(result["predictions"]) == 6
    assert all(choice in range(4) for choice in result["predictions"])
    assert "accuracy" in capsys.readouterr().out
    corpus.write_text(corpus.read_text() + "\n\nA new story. It has events. Three of them.")
    assert main(args) == 0
    assert "wrote 6 items" in capsys.readouterr().out  # a changed corpus is not served from the cache


def test_squad_checkpoint_predictions_round_trip(checkpoint, tmp_path, capsys):
    predictions, out = tmp_path / "pred.json", tmp_path / "squad.json"
    assert main(["eval", "squad-v2", "--data", str(FIXTURE), "--checkpoint", checkpoint, "--max-new-tokens", "8",
                 "--write-predictions", str(predictions), "--out", str(out), "--no-progress"]) == 0
    from_model = json.loads(out.read_text())["metrics"]
    assert set(json.loads(predictions.read_text())) == {"q1", "q2", "q4", "q5", "q6"}
    rescored = tmp_path / "rescored.json"
    assert main(["eval", "squad-v2", "--data", str(FIXTURE), "--predictions", str(predictions),
                 "--out", str(rescored)]) == 0
    again = json.loads(rescored.read_text())["metrics"]
    for metric in ("exact_match", "f1", "contains_label", "num_questions"):
        assert again[metric] == from_model[metric]
    assert "tokens" in capsys.readouterr().out


def test_missing_inputs_fail_clearly(tmp_path):
    with pytest.raises(SystemExit, match="--checkpoint"):
        main(["eval", "squad-v2", "--data", str(FIXTURE)])
    with pytest.raises(SystemExit, match="--generate"):
        main(["eval", "phonebook", "--cache-dir", str(tmp_path)])


@pytest.mark.parametrize("argv, message", [
    (["phonebook", "--generate", "{tmp}/b.jsonl", "--min-entries", "5", "--max-entries", "8", "--num-queries", "1-32"],
     r"^birdie eval phonebook: PhonebookConfig.num_queries=.*min_entries=5"),
    (["phonebook", "--generate", "{tmp}/b.jsonl", "--number-digits", "2"],
     r"^birdie eval phonebook: PhonebookConfig.number_digits=2 must be in \[3, 10\]"),
    (["phonebook", "--data", "{tmp}/nope.jsonl", "--checkpoint", "{tmp}"],
     r"^birdie eval phonebook: .*No such file.*nope\.jsonl"),
    (["story-infilling", "--generate", "{tmp}/s.jsonl", "--num-items", "0"],
     r"^birdie eval story-infilling: InfillingConfig.num_items=0"),
    (["squad-v2", "--data", str(FIXTURE), "--predictions", "{tmp}/missing.json"],
     r"^birdie eval squad-v2: .*No such file.*missing\.json"),
])
def test_bad_options_and_missing_files_exit_2_with_one_line(argv, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["eval", *(arg.replace("{tmp}", str(tmp_path)) for arg in argv)])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert re.match(message, error) and error.count("\n") == 1, error
