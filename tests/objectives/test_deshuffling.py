"""Deshuffling with a real BPE: the prefix is the tokenizer's own encoding of a character shuffle of the chunk.

The byte tokenizer cannot tell a canonical encoding from any other (every byte string has one), so these tests
use a byte-level BPE trained on the synthetic stories: there, re-using stale ids or tokenizing across a special
token gives ids that decode to the right text but differ from ``tokenizer.encode`` of it.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from birdie.data.stories import generate_story
from birdie.objectives import Deshuffling, Example, Skip
from birdie.objectives.deshuffling import shuffle_characters
from birdie.tokenizers import ByteTokenizer

STORIES = [generate_story(0, i).text for i in range(40)]


@pytest.fixture
def bpe(story_bpe):
    return story_bpe


def document(tokenizer, index: int, eos_every: int = 0) -> np.ndarray:
    """Story ``index`` as ids with an eos at its end (and, with ``eos_every``, after every ``eos_every``-th word)."""
    words = STORIES[index % len(STORIES)].split(" ")
    pieces = [" ".join(words)] if not eos_every else [" ".join(words[i:i + eos_every])
                                                      for i in range(0, len(words), eos_every)]
    eos = np.array([tokenizer.specials.eos], dtype=np.int32)
    return np.concatenate([part for piece in pieces for part in (tokenizer.encode(piece), eos)]).astype(np.int32)


def text_runs(tokenizer, ids: np.ndarray) -> list[np.ndarray]:
    """The runs of ordinary ids between ``ids``' special ids, empty runs included."""
    cuts = np.flatnonzero(tokenizer.specials.is_special(ids))
    return [run[1:] if i else run for i, run in enumerate(np.split(ids, cuts))]


def check_example(tokenizer, config: Deshuffling, ids: np.ndarray, budget: int, example: Example) -> None:
    chunk = ids[:len(example.target)]
    assert np.array_equal(example.target, chunk), "the target is the original ids"
    assert np.array_equal(example.leftover, ids[len(chunk):])
    assert example.length <= budget
    prefix = example.prefix
    if config.paradigm != "none":
        paradigm = tokenizer.specials.paradigm("deshuffling")
        assert paradigm in (prefix[0], prefix[-1])
        prefix = prefix[1:] if prefix[0] == paradigm else prefix[:-1]
    special = tokenizer.specials.is_special
    assert np.array_equal(prefix[special(prefix)], chunk[special(chunk)]), "special ids keep their order"
    for original, shuffled in zip(text_runs(tokenizer, chunk), text_runs(tokenizer, prefix), strict=True):
        assert (len(original) == 0) == (len(shuffled) == 0), "special ids split the text where they did"
        before, after = tokenizer.decode(original), tokenizer.decode(shuffled)
        assert np.array_equal(shuffled, tokenizer.encode(after)), "the prefix is the tokenizer's own encoding"
        assert sorted(before) == sorted(after), "a shuffle permutes the characters"
        assert sum(a != b for a, b in zip(before, after)) <= round(config.shuffle_fraction * len(before))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(index=st.integers(0, 39), eos_every=st.sampled_from([0, 0, 7, 40]), budget=st.integers(8, 1200),
       fraction=st.sampled_from([0.05, 0.5, 1.0]), length=st.sampled_from([None, (128, 256), (512, 1024), (2, 9)]),
       paradigm=st.sampled_from(["random", "none"]), seed=st.integers(0, 2**32 - 1))
def test_bpe_prefix_is_the_canonical_encoding_of_a_shuffle(bpe, index, eos_every, budget, fraction, length,
                                                           paradigm, seed):
    ids = document(bpe, index, eos_every)
    config = Deshuffling(shuffle_fraction=fraction, length=length, paradigm=paradigm)
    result = config(ids, np.random.default_rng(seed), budget, bpe)
    if isinstance(result, Skip):
        assert np.array_equal(result.leftover, ids) and result.reason
        return
    check_example(bpe, config, ids, budget, result)


@pytest.mark.parametrize("fraction", [0.5, 1.0])
def test_shuffled_text_that_encodes_longer_is_refitted_not_dropped(bpe, fraction):
    """Shuffled text takes ~3x the tokens here: small budgets force shrinking the chunk, which must still fit."""
    config = Deshuffling(shuffle_fraction=fraction, length=(512, 1024))
    made = 0
    for seed, budget in enumerate(range(40, 400, 9)):
        ids = document(bpe, seed)
        result = config(ids, np.random.default_rng(seed), budget, bpe)
        if isinstance(result, Example):
            made += 1
            check_example(bpe, config, ids, budget, result)
            shuffled_share = (len(result.prefix) - 1) / budget
            assert shuffled_share > 0.35, "the refitted chunk still fills a fair part of the budget"
    assert made >= 38, "shrinking finds a chunk that fits for all but the tiniest budgets"


@pytest.mark.parametrize("fraction", [0.5, 1.0])
def test_long_chunks_are_sized_to_fill_the_budget(bpe, fraction, monkeypatch):
    """512-1024-token chunks of long documents at budget 2048: their shuffled text needs 2-3x the tokens, so the
    chunk is sized from a probe of the ratio; it is the drawn length (>= 512) or close to the longest that fits."""
    config = Deshuffling(shuffle_fraction=fraction, length=(512, 1024))
    encoded, used = [], 0
    monkeypatch.setattr(bpe, "encode_once", lambda text: encoded.append(text) or bpe.encode(text), raising=False)
    for seed in range(6):
        ids = np.concatenate([document(bpe, seed * 5 + k) for k in range(5)])
        result = config(ids, np.random.default_rng(seed), 2048, bpe)
        check_example(bpe, config, ids, 2048, result)
        ratio = (len(result.prefix) - 1) / len(result.target)
        assert len(result.target) >= min(512, 0.75 * 2047 / (1 + ratio))
        used += len(bpe.decode(result.target))
    assert sum(map(len, encoded)) < 1.3 * used, "no full-size attempt is wasted on a chunk that cannot fit"


@pytest.mark.parametrize("tokenizer_name", ["bytes", "bpe"])
def test_same_seed_same_example_other_seed_other_shuffle(bpe, tokenizer_name):
    tokenizer = bpe if tokenizer_name == "bpe" else ByteTokenizer()
    ids = document(tokenizer, 3)
    config = Deshuffling(shuffle_fraction=0.5, length=(128, 256))
    first, again = (config(ids, np.random.default_rng(7), 2048, tokenizer) for _ in range(2))
    assert np.array_equal(first.prefix, again.prefix) and np.array_equal(first.target, again.target)
    other = config(ids, np.random.default_rng(8), 2048, tokenizer)
    assert not np.array_equal(first.prefix, other.prefix)


@settings(max_examples=100, deadline=None)
@given(text=st.text(max_size=200), fraction=st.floats(0.01, 1.0), seed=st.integers(0, 2**32 - 1))
def test_shuffle_characters_moves_the_configured_share(text, fraction, seed):
    shuffled = shuffle_characters(text, fraction, np.random.default_rng(seed))
    assert sorted(shuffled) == sorted(text)
    chosen = int(round(fraction * len(text)))
    assert sum(a != b for a, b in zip(text, shuffled)) <= (chosen if chosen >= 2 else 0)


def test_whole_sequence_shuffle_moves_almost_everything():
    text = "".join(chr(0x4E00 + i) for i in range(500))  # distinct characters: every move is visible
    shuffled = shuffle_characters(text, 1.0, np.random.default_rng(0))
    assert sum(a != b for a, b in zip(text, shuffled)) >= 490


class RecordingTokenizer(ByteTokenizer):
    """The byte tokenizer with an ``encode_once`` that records what it encodes."""

    def __init__(self) -> None:
        super().__init__()
        self.once: list[str] = []

    def encode_once(self, text: str) -> np.ndarray:
        self.once.append(text)
        return self.encode(text)


def test_shuffled_text_goes_through_encode_once_when_the_tokenizer_has_it():
    tokenizer = RecordingTokenizer()
    ids = document(tokenizer, 5, eos_every=10)
    example = Deshuffling(shuffle_fraction=1.0, length=None, paradigm="none")(ids, np.random.default_rng(0), 4096,
                                                                                tokenizer)
    assert "".join(tokenizer.once) == "".join(tokenizer.decode(run) for run in text_runs(tokenizer, example.prefix))


def test_byte_tokenizer_chunks_are_not_shrunk_when_they_fit():
    """Shuffled bytes take exactly as many ids as the original: the longest drawn chunk, budget // 2, is kept."""
    tokenizer = ByteTokenizer()
    ids = np.frombuffer(" ".join(STORIES).encode("ascii", errors="ignore"), dtype=np.uint8).astype(np.int32)
    config = Deshuffling(shuffle_fraction=1.0, length=(1023, 1023), paradigm="none")
    result = config(ids, np.random.default_rng(0), 2046, tokenizer)
    assert len(result.target) == 1023 and len(result.prefix) == 1023
