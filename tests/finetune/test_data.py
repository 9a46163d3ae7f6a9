"""Fine-tuning data: row formats, counted skips, clear errors, batches (packing = padding), story questions."""


import numpy as np
import pytest
import torch

from birdie.finetune.batches import global_batch, pack, pad, rank_micro_batches
from birdie.finetune.datasets import DataError, load_preferences, load_sft, read_jsonl
from birdie.finetune.losses import sequence_logps
from birdie.finetune.story_qa import questions_for_story, story_questions
from birdie.models import create
from birdie.tokenizers import ByteTokenizer

TOK = ByteTokenizer()


def rows(*items):
    return [(f"test row {i}", row) for i, row in enumerate(items)]


def chat(*turns):
    return [{"role": role, "content": text} for role, text in zip(("user", "assistant") * 3, turns)]


def test_sft_rows_messages_and_prompt_completion_render_alike():
    examples, report = load_sft(rows({"messages": chat("q", "a")}, {"prompt": "q", "completion": "a"}), TOK, 64)
    assert report.kept == 2
    np.testing.assert_array_equal(examples[0].ids, examples[1].ids)


def test_sft_skips_are_counted_never_silent():
    items = rows({"messages": chat("q", "a")}, {"messages": chat("q", "a", "dangling")},
                 {"messages": chat("x" * 80, "a")})
    examples, report = load_sft(items, TOK, 40)
    assert report.rows == 3 and report.kept == 1
    assert report.skipped == {"conversation ends on a user or system turn": 1,
                              "no assistant token left after truncation": 1}
    assert report.truncated == 1
    assert "1 skipped: conversation ends" in report.summary()


def test_sft_truncated_rows_kept_or_dropped():
    items = rows({"messages": chat("q", "a long answer that will be cut")})
    examples, report = load_sft(items, TOK, 30)
    assert report.kept == 1 and report.truncated == 1 and len(examples[0].ids) == 30
    _, report = load_sft(items, TOK, 30, drop_truncated=True)
    assert report.kept == 0 and report.skipped == {"truncated (drop_truncated)": 1}


@pytest.mark.parametrize("row, message", [
    ({"text": "x"}, "needs 'messages'"),
    ({"messages": []}, "empty"),
    ({"messages": [{"role": "bot", "content": "x"}]}, "unknown role 'bot'"),
    ({"prompt": 1, "completion": "x"}, "must be strings"),
])
def test_malformed_sft_rows_are_errors_naming_the_row(row, message):
    with pytest.raises(DataError, match=message) as info:
        load_sft(rows(row), TOK, 64)
    assert "test row 0" in str(info.value)


def test_read_jsonl_errors_name_file_and_line(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"messages": []}\n\n[1, 2]\n')
    with pytest.raises(DataError, match=r"d.jsonl line 3: expected a JSON object"):
        list(read_jsonl(path))
    path.write_text("{not json\n")
    with pytest.raises(DataError, match=r"d.jsonl line 1: not valid JSON"):
        list(read_jsonl(path))
    with pytest.raises(DataError, match="no such file"):
        list(read_jsonl(tmp_path / "missing.jsonl"))


def test_preferences_prompt_identical_pairs_and_last_turn_mask():
    good = {"prompt": "q", "chosen": [{"role": "assistant", "content": "yes"}],
            "rejected": [{"role": "assistant", "content": "no"}], "margin": 2}
    same = {"chosen": chat("q", "a"), "rejected": chat("q", "a")}
    multi = {"chosen": chat("q1", "a1", "q2", "good"), "rejected": chat("q1", "a1", "q2", "bad")}
    pairs, report = load_preferences(rows(good, same, multi), TOK, 128)
    assert report.kept == 2 and report.skipped == {"chosen and rejected are identical": 1}
    assert pairs[0].margin == 2.0
    assert TOK.decode(pairs[0].chosen.ids[pairs[0].chosen.mask]) == "yes<|eos|>"
    assert TOK.decode(pairs[1].rejected.ids[pairs[1].rejected.mask]) == "bad<|eos|>"  # earlier turns are context
    with pytest.raises(DataError, match="missing 'rejected'"):
        load_preferences(rows({"chosen": chat("q", "a")}), TOK, 64)
    with pytest.raises(DataError, match="'margin' must be a number"):
        load_preferences(rows({**good, "margin": "big"}), TOK, 64)


def test_packed_rows_give_the_same_log_probs_as_padded_rows():
    torch.manual_seed(0)
    model = create("transformer-tiny", vocab_size=TOK.vocab_size).eval()
    examples, _ = load_sft(rows(*({"messages": chat(f"question {i}" * (i + 1), f"answer {i}")} for i in range(5))),
                           TOK, 128)
    packed, padded = pack(examples, 128, 0), pad(examples, None, 0)
    assert packed["input_ids"].shape[0] < len(examples)
    keys = ("input_ids", "segment_ids", "position_ids")
    with torch.no_grad():
        per_segment = sequence_logps(model(**{k: packed[k] for k in keys})[0], packed["label_ids"],
                                     packed["segment_ids"])
        per_row = sequence_logps(model(**{k: padded[k] for k in keys})[0], padded["label_ids"])
    flat = torch.cat([row[:int(s.max())] for row, s in zip(per_segment, packed["segment_ids"])])
    torch.testing.assert_close(flat, per_row, atol=1e-4, rtol=1e-5)
    assert (packed["label_ids"] != -100).sum() == sum(int(e.mask[1:].sum()) for e in examples)


def test_global_batch_is_a_function_of_seed_and_step_and_ranks_split_it():
    first = global_batch(10, 4, 0, seed=3)
    assert first == global_batch(10, 4, 0, seed=3) and len(set(first)) == 4
    epoch = global_batch(10, 4, 0, 3) + global_batch(10, 4, 1, 3)
    assert len(set(epoch)) == 8  # drop-last epoch without repeats
    assert global_batch(10, 4, 2, 3) != first or global_batch(10, 4, 3, 3) != global_batch(10, 4, 1, 3)
    shares = [rank_micro_batches(first, 2, r, 2) for r in range(2)]
    assert [i for share in shares for mb in share for i in mb] == first
    with pytest.raises(ValueError, match="fewer than one batch"):
        global_batch(3, 4, 0, 0)


def test_story_questions_have_checkable_answers_and_disjoint_splits():
    train, heldout = story_questions("train", 60), story_questions("validation", 30)
    assert {q.kind for q in train} == {"who", "where", "colour"}
    for q in train + heldout:
        assert q.answer in q.passage and q.wrong not in q.passage and q.answer != q.wrong
    assert not {q.passage for q in train} & {q.passage for q in heldout}
    assert story_questions("train", 60) == train


def test_questions_for_a_hand_written_story():
    import random

    events = ("Once upon a time, in a busy town in the hills, there lived a brave fox named Mia.",
              "She had a red kite that she carried everywhere.")
    found = {q.kind: q for q in questions_for_story(events, random.Random(0))}
    assert found["who"].answer == "Mia" and found["who"].question == "Who is the fox?"
    assert found["where"].answer == "a busy town in the hills"
    assert found["colour"].answer == "red" and found["colour"].question == "What colour is the kite?"
