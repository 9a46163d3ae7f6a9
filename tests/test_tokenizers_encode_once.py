"""``HFTokenizer.encode_once``: the encoding of one-off text (deshuffling's) equals ``encode``'s, from a copy."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from birdie.objectives.deshuffling import shuffle_characters
from birdie.tokenizers import train_bpe

SAMPLES = ["the bird sings in the early morning air", "<|eos|> <|mask_0|> spelled out", "日本語 🐦 e\u0301 \t\n x"]


@pytest.fixture(scope="module")
def bpe(tmp_path_factory):
    corpus = tmp_path_factory.mktemp("corpus") / "corpus.txt"
    corpus.write_text("\n".join(SAMPLES * 30))
    return train_bpe([corpus], vocab_size=600)


def test_encode_once_equals_encode_through_a_second_copy(bpe):
    rng = np.random.default_rng(0)
    for text in SAMPLES + [shuffle_characters(" ".join(SAMPLES), 1.0, rng) for _ in range(20)]:
        once = bpe.encode_once(text)
        assert once.dtype == np.int32 and np.array_equal(once, bpe.encode(text))
    assert bpe._one_off is not bpe._tok, "one-off words go through a second copy"
    assert not bpe.specials.is_special(bpe.encode_once("<|eos|><|pad|>")).any(), "spelled-out specials stay text"


@settings(max_examples=60, deadline=None)
@given(text=st.text(max_size=80))
def test_encode_once_equals_encode_on_any_text(bpe, text):
    assert np.array_equal(bpe.encode_once(text), bpe.encode(text))
