"""ShareGPT ``{from, value}`` messages in fine-tuning data: rendered exactly as the same ``{role, content}`` rows."""

import numpy as np
import pytest

from birdie.finetune.datasets import DataError, load_preferences, load_sft
from birdie.tokenizers import ByteTokenizer

TOK = ByteTokenizer()
TURNS = [("system", "system", "Be brief."), ("human", "user", "Who ran?"), ("gpt", "assistant", "The fox."),
         ("human", "user", "Where?"), ("gpt", "assistant", "Home.")]
SHAREGPT = [{"from": speaker, "value": text} for speaker, _, text in TURNS]
CHAT = [{"role": role, "content": text} for _, role, text in TURNS]


def rows(*items):
    return [(f"data.jsonl line {i + 1}", row) for i, row in enumerate(items)]


def assert_same(a, b):
    np.testing.assert_array_equal(a.ids, b.ids)
    np.testing.assert_array_equal(a.mask, b.mask)


@pytest.mark.parametrize("key", ["messages", "conversations"])
def test_sharegpt_sft_rows_render_as_role_content(key):
    examples, report = load_sft(rows({key: SHAREGPT}, {"messages": CHAT}), TOK, 256)
    assert report.kept == 2
    assert_same(examples[0], examples[1])
    assert examples[0].mask.any()  # the assistant turns carry the loss


def test_sharegpt_preference_rows_render_as_role_content():
    prompt, chosen, rejected = SHAREGPT[:4], [{"from": "gpt", "value": "Home."}], [{"from": "gpt", "value": "Mars."}]
    pairs, report = load_preferences(rows({"prompt": prompt, "chosen": chosen, "rejected": rejected},
                                          {"prompt": CHAT[:4], "chosen": CHAT[4:],
                                           "rejected": [{"role": "assistant", "content": "Mars."}]}), TOK, 256)
    assert report.kept == 2
    assert_same(pairs[0].chosen, pairs[1].chosen)
    assert_same(pairs[0].rejected, pairs[1].rejected)


def test_unknown_speaker_and_missing_value_are_errors_naming_the_row():
    with pytest.raises(DataError, match=r"line 1: message 1 has unknown ShareGPT speaker 'from': 'bing'; valid: human"):
        load_sft(rows({"conversations": [SHAREGPT[0], {"from": "bing", "value": "hi"}]}), TOK, 256)
    with pytest.raises(DataError, match=r"line 1 \(chosen\): message 0 \(from 'gpt'\) has no 'value'"):
        load_preferences(rows({"prompt": "q", "chosen": [{"from": "gpt"}], "rejected": "no"}), TOK, 256)
