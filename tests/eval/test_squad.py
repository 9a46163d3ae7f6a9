"""SQuAD v2: the official normalisation and metrics, answerable-only loading, bucketing and the predictions CLI."""

import json
from pathlib import Path

import pytest

from birdie.cli import main
from birdie.eval.squad import (
    contains_label,
    exact_match,
    f1_score,
    load_squad,
    normalize_answer,
    score_squad,
)

FIXTURE = Path(__file__).parent / "fixtures" / "squad_v2_mini.json"


@pytest.mark.parametrize(
    "text, normalized",
    [
        ("The Cat", "cat"),
        ("  an   apple, a pear!  ", "apple pear"),
        ("Theatre", "theatre"),  # "the" only as a whole word
        ("U.S.A.", "usa"),
        ("the the", ""),
        ("Hello\tworld\n", "hello world"),
        ("anthem: A-Team", "anthem ateam"),
    ],
)
def test_official_normalization(text, normalized):
    assert normalize_answer(text) == normalized


def test_f1_and_exact_match_on_known_cases():
    assert exact_match("The Margaret Hale.", "margaret hale") == 1.0
    assert exact_match("Margaret", "Margaret Hale") == 0.0
    assert f1_score("Margaret", "Margaret Hale") == pytest.approx(2 * 1.0 * 0.5 / 1.5)
    assert f1_score("hale margaret hale", "margaret hale") == pytest.approx(2 * (2 / 3) * 1.0 / (2 / 3 + 1.0))
    assert f1_score("", "margaret") == 0.0
    assert f1_score("the", "a") == 1.0  # both normalise to empty
    assert f1_score("blue sky", "green grass") == 0.0


def test_contains_label_is_token_aligned():
    assert contains_label("It was built in 1874, I think.", "1874") == 1.0
    assert contains_label("In 11874.", "1874") == 0.0
    assert contains_label("by THE ENGINEER margaret hale", "the engineer Margaret Hale") == 1.0
    assert contains_label("", "1874") == 0.0


def test_loading_keeps_answerable_questions_in_the_paper_format():
    examples = load_squad(FIXTURE)
    assert [e["id"] for e in examples] == ["q1", "q2", "q4", "q5", "q6"]
    first = examples[0]
    assert first["prompt"] == f"{first['context']}\n\n{first['question']}"
    assert first["answers"] == ["Margaret Hale", "the engineer Margaret Hale"]


def test_scores_on_hand_made_predictions():
    examples = load_squad(FIXTURE)
    gold = {e["id"]: e["answers"][0] for e in examples}
    perfect = score_squad(examples, gold)
    assert perfect["exact_match"] == perfect["f1"] == perfect["contains_label"] == 100.0
    assert perfect["missing"] == 0 and perfect["num_questions"] == 5

    empty = score_squad(examples, {})
    assert empty["exact_match"] == empty["f1"] == empty["contains_label"] == 0.0
    assert empty["missing"] == 5

    partial = {"q1": "Margaret", "q2": "in 1874", "q4": "harbor bell", "q5": "bread", "q6": "on Saturday"}
    # q1: F1 2/3 vs "Margaret Hale"; q2: F1 2/3, contains; q4: exact via 2nd answer; q5: 0; q6: F1 2*(1/2)(1/3)/(5/6)
    expected_f1 = (2 / 3 + 2 / 3 + 1.0 + 0.0 + 0.4) / 5 * 100
    scored = score_squad(examples, partial)
    assert scored["f1"] == pytest.approx(expected_f1)
    assert scored["exact_match"] == pytest.approx(100 * 1 / 5)
    assert scored["contains_label"] == pytest.approx(100 * 2 / 5)


def test_context_length_buckets_partition_the_questions():
    examples = load_squad(FIXTURE)
    scored = score_squad(examples, {}, length_of=len, bucket_edges=(0, 130, 140))
    buckets = scored["by_context_length"]
    assert sum(b["num_questions"] for b in buckets.values()) == 5
    lengths = [len(e["context"]) for e in examples]
    assert buckets["0-130"]["num_questions"] == sum(n < 130 for n in lengths)
    assert buckets["140+"]["num_questions"] == sum(n >= 140 for n in lengths)


def test_bad_files_fail_clearly(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"version": "v2.0"}))
    with pytest.raises(ValueError, match="'data' list"):
        load_squad(bad)


def test_cli_scores_a_predictions_file(tmp_path, capsys):
    predictions = tmp_path / "pred.json"
    predictions.write_text(json.dumps({"q1": "Margaret Hale", "q2": "1874", "q3": "", "q5": "its honey cake"}))
    out = tmp_path / "result.json"
    assert main(["eval", "squad-v2", "--data", str(FIXTURE), "--predictions", str(predictions), "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["metrics"]["exact_match"] == pytest.approx(60.0)
    assert result["metrics"]["missing"] == 2
    printed = capsys.readouterr().out
    assert "contains_label" in printed and "2 questions had no prediction" in printed
