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


class IdentityPreTokenizer:
    """A custom (Python) pre-tokenizer, which HF cannot serialize; it leaves the text whole."""

    def pre_tokenize(self, pretokenized) -> None:
        pretokenized.split(lambda index, normalized: [normalized])


def test_a_tokenizer_that_cannot_be_copied_encodes_once_with_itself(bpe):
    from tokenizers import Tokenizer as RawTokenizer
    from tokenizers import pre_tokenizers

    from birdie.tokenizers import HFTokenizer

    raw = RawTokenizer.from_str(bpe.spec()["json"])
    raw.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.PreTokenizer.custom(IdentityPreTokenizer()),
                                                 pre_tokenizers.ByteLevel(add_prefix_space=False)])
    tokenizer = HFTokenizer(raw)
    for text in SAMPLES:
        assert np.array_equal(tokenizer.encode_once(text), bpe.encode(text))
    assert tokenizer._one_off is tokenizer._tok
