"""Tokenizers: Unicode round trips, specials that text can never produce, loading, and ``birdie tokenizer train``."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from birdie.cli import main
from birdie.tokenizers import (
    NUM_SENTINELS,
    OBJECTIVE_NAMES,
    SELECTIVE_COPYING_MARKERS,
    ByteTokenizer,
    ExtendedTokenizer,
    HFTokenizer,
    as_tokenizer,
    load_tokenizer,
    train_bpe,
)

UNICODE_SAMPLES = [
    "plain ascii, with punctuation!",
    "日本語のテキストと中文字符",
    "emoji 🐦🎶 with ZWJ 👩‍👩‍👧 and flags 🇩🇪",
    "combining marks: e\u0301 a\u0308 \u0915\u094d\u0937 Z\u0351\u0336",
    "mixed\ttabs\nnewlines \u200b zero-width",
    "<|eos|> <|mask_0|> <|pad|> spelled out",
]
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


@pytest.fixture(scope="module")
def bpe(tmp_path_factory):
    corpus = tmp_path_factory.mktemp("corpus") / "corpus.txt"
    corpus.write_text("\n".join(UNICODE_SAMPLES * 20 + ["the bird sings in the early morning air"] * 50))
    return train_bpe([corpus], vocab_size=600)


def byte_level_tiktoken() -> ExtendedTokenizer:
    """A tiktoken encoding built locally (no download): the 256 bytes, no merges, GPT-2's split pattern."""
    import tiktoken

    encoding = tiktoken.Encoding(name="birdie_test_bytes", pat_str=GPT2_PATTERN,
                                 mergeable_ranks={bytes([i]): i for i in range(256)}, special_tokens={})
    return ExtendedTokenizer(encoding)


TIKTOKEN = byte_level_tiktoken()


@pytest.fixture(scope="module")
def tiktoken_bytes():
    return TIKTOKEN


@pytest.fixture(params=["bytes", "hf", "tiktoken"])
def tokenizer(request, bpe, tiktoken_bytes):
    return {"bytes": ByteTokenizer(), "hf": bpe, "tiktoken": tiktoken_bytes}[request.param]


@pytest.mark.parametrize("text", UNICODE_SAMPLES)
def test_unicode_round_trips(tokenizer, text):
    ids = tokenizer.encode(text)
    assert ids.dtype == np.int32 and ids.ndim == 1
    assert tokenizer.decode(ids) == text


@settings(max_examples=40, deadline=None)
@given(text=st.text(max_size=80))
def test_random_text_round_trips_and_never_yields_specials(text):
    for tok in (ByteTokenizer(), TIKTOKEN):
        ids = tok.encode(text)
        assert tok.decode(ids) == text
        assert not tok.specials.is_special(ids).any()


def test_specials_are_single_distinct_ids_that_text_cannot_produce(tokenizer):
    specials = tokenizer.specials
    assert len(set(specials.ids)) == len(specials.ids) and max(specials.ids) < tokenizer.vocab_size
    assert len(specials.sentinels) == NUM_SENTINELS >= 100
    assert len({specials.paradigm(c) for c in OBJECTIVE_NAMES}) == len(OBJECTIVE_NAMES)
    assert len({specials.marker(m) for m in SELECTIVE_COPYING_MARKERS}) == len(SELECTIVE_COPYING_MARKERS)
    spelled = "".join(specials.names) + " <|eos|>"
    ids = tokenizer.encode(spelled)
    assert not specials.is_special(ids).any(), "text spelling a special token encodes as text"
    assert tokenizer.decode(ids) == spelled
    mixed = np.concatenate([[specials.eos], tokenizer.encode("hi"), specials.sentinels[:1]])
    assert tokenizer.decode(mixed) == "<|eos|>hi<|mask_0|>"
    with pytest.raises(KeyError, match="unknown objective class"):
        specials.paradigm("denoising")


def test_specials_of_wrapped_tokenizers_sit_above_the_base_vocabulary(tiktoken_bytes):
    assert ByteTokenizer().specials.min_id == 256
    assert tiktoken_bytes.specials.min_id == tiktoken_bytes.base_vocab_size == 256


def test_any_object_with_encode_decode_works():
    class Words:
        words = ["<unk>", "bird", "song", "morning"]

        def encode(self, text):
            return [self.words.index(w) if w in self.words else 0 for w in text.split()]

        def decode(self, ids):
            return " ".join(self.words[i] for i in ids)

    tok = ExtendedTokenizer(Words(), base_vocab_size=4)
    assert tok.decode(tok.encode("bird song")) == "bird song"
    assert tok.specials.min_id == 4
    with pytest.raises(TypeError, match="pass base_vocab_size"):
        as_tokenizer(Words())
    with pytest.raises(ValueError, match="outside"):
        ExtendedTokenizer(Words(), base_vocab_size=2).encode("morning")
    with pytest.raises(TypeError, match="encode\\(\\) and decode\\(\\)"):
        as_tokenizer(object())


def test_batch_encoding_checks_ids_against_the_base_vocabulary_like_encode(tiktoken_bytes):
    texts = ["bird song", "", "鳥"]
    assert [ids.tolist() for ids in tiktoken_bytes.encode_batch(texts)] == [
        tiktoken_bytes.encode(t).tolist() for t in texts]
    too_small = ExtendedTokenizer(tiktoken_bytes.base, base_vocab_size=100)
    with pytest.raises(ValueError, match=r"outside \[0, 100\); pass the right base_vocab_size"):
        too_small.encode_batch(["bird song"])


def test_spec_round_trip(bpe, tiktoken_bytes):
    for tok in (ByteTokenizer(), bpe):
        again = load_tokenizer(tok.spec())
        assert again.specials == tok.specials
        assert np.array_equal(again.encode(UNICODE_SAMPLES[2]), tok.encode(UNICODE_SAMPLES[2]))
    assert tiktoken_bytes.spec() == {"kind": "tiktoken", "name": "birdie_test_bytes", "num_sentinels": NUM_SENTINELS,
                                     "special_tokens": list(tiktoken_bytes.specials.names)}
    with pytest.raises(ValueError, match="cannot load tokenizer 'nope'"):
        load_tokenizer("nope")


def test_spec_round_trip_keeps_a_non_default_sentinel_count(bpe):
    from tokenizers import Tokenizer as RawTokenizer

    few = HFTokenizer(RawTokenizer.from_str(bpe.spec()["json"]), num_sentinels=4)
    for tok in (ByteTokenizer(num_sentinels=4), few):
        again = load_tokenizer(tok.spec())
        assert len(tok.specials.sentinels) == 4
        assert again.specials == tok.specials and again.vocab_size == tok.vocab_size


def test_train_rejects_bad_input(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        train_bpe([tmp_path / "missing.txt"], vocab_size=1000)
    (tmp_path / "a.txt").write_text("text")
    with pytest.raises(ValueError, match="vocab_size=300 is too small"):
        train_bpe([tmp_path / "a.txt"], vocab_size=300)


def test_tokenizer_train_cli_writes_a_loadable_tokenizer(tmp_path, capsys):
    corpus = tmp_path / "stories.txt"
    corpus.write_text("Mira found an old brass key under the bakery stairs. 鳥が歌う 🐦\n" * 200)
    out = tmp_path / "tok" / "tokenizer.json"
    assert main(["tokenizer", "train", str(corpus), "--vocab-size", "700", "--out", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    tok = load_tokenizer(out)
    assert isinstance(tok, HFTokenizer) and tok.vocab_size <= 700
    assert len(tok.encode("Mira found an old brass key")) < len("Mira found an old brass key"), "merges learned"
    assert tok.decode(tok.encode("鳥が歌う 🐦 <|eos|>")) == "鳥が歌う 🐦 <|eos|>"
    assert load_tokenizer(out.parent).specials == tok.specials


def test_byte_decode_marks_ids_outside_the_vocabulary():
    tok = ByteTokenizer()
    assert tok.decode([65, tok.vocab_size, 66, -1, 300 + 256]) == "A\ufffdB\ufffd\ufffd"
