"""Statistics over many examples match the configs: corruption rates, span lengths, split points, paradigm placement."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from objective_checks import split_at_sentinels, strip_paradigm

from birdie.objectives import (
    Autoencoding,
    Deshuffling,
    Example,
    Infilling,
    NextTokenPrediction,
    PrefixLanguageModeling,
    SelectiveCopying,
)
from birdie.objectives.selective_copying import _Windows
from birdie.objectives.spans import SpanLayout, gather_shifted, random_layout, segments
from birdie.tokenizers import ByteTokenizer

TOKENIZER = ByteTokenizer()
SENTINELS = TOKENIZER.specials.sentinels
DOCUMENT = np.random.default_rng(123).integers(0, 256, size=4096).astype(np.int32)


def examples(config, count, budget=4096, seed=0):
    rng = np.random.default_rng(seed)
    out = [config(DOCUMENT, rng, budget, TOKENIZER) for _ in range(count)]
    assert all(isinstance(e, Example) for e in out)
    return out


@pytest.mark.parametrize("rate,span", [(0.05, 3.0), (0.15, 3.0), (0.15, 8.0), (0.5, 3.0), (0.5, 32.0)])
def test_infilling_corruption_rate_and_span_length(rate, span):
    config = Infilling(corruption_rate=rate, mean_span_length=span, length=(512, 1024))
    noise, spans, span_lengths = 0, 0, []
    total = 0
    for example in examples(config, 200):
        _, pieces = split_at_sentinels(example.target, SENTINELS)
        span_lengths += [len(p) for p in pieces.values()]
        total += len(example.target) - len(pieces) + len(example.prefix) - 1 - len(pieces)
    noise, spans = sum(span_lengths), len(span_lengths)
    assert abs(noise / total - rate) < 0.01
    assert abs(noise / spans - span) < 0.1 * span
    assert len(set(span_lengths)) > 1 or span == 1.0, "span lengths vary"


def test_autoencoding_corruption_rate_and_span_length():
    config = Autoencoding(corruption_rate=0.15, mean_span_length=8.0, length=(768, 1536))
    masked, spans, total = 0, 0, 0
    for example in examples(config, 200):
        kept = int((~TOKENIZER.specials.is_special(example.prefix)).sum())
        masked += len(example.target) - kept
        spans += int(np.isin(example.prefix, SENTINELS).sum())
        total += len(example.target)
    assert abs(masked / total - 0.15) < 0.01
    assert abs(masked / spans - 8.0) < 0.8


def naive_random_spans(n: int, noise: int, spans: int, uniforms: list[float]) -> tuple[list[int], list[int]]:
    """Reference layout in plain Python: span lengths and kept runs are the gaps between sorted uniform cuts."""
    def composition(total: int, parts: int, draws: list[float]) -> list[int]:
        spare = total - parts
        cuts = sorted(int(u * (spare + 1)) for u in draws)
        return [b - a + 1 for a, b in zip([0, *cuts], [*cuts, spare])]

    lengths = composition(noise, spans, uniforms[:spans - 1])
    kept = composition(n - noise + 2, spans + 1, uniforms[spans - 1:])
    return [kept[0] - 1, *kept[1:-1], kept[-1] - 1], lengths


def test_span_layout_matches_naive_reference():
    """The vectorized layout and segment gathers equal plain loops over the same uniforms, for every paradigm slot."""
    rng = np.random.default_rng(7)
    paradigm = TOKENIZER.specials.paradigm("infilling")
    for _ in range(300):
        n = int(rng.integers(2, 300))
        noise = int(rng.integers(1, n))
        spans = int(rng.integers(1, min(noise, n - noise + 1, len(SENTINELS)) + 1))
        before, after = [(0, 0), (1, 0), (0, 1)][int(rng.integers(3))]
        uniforms = rng.random(2 * spans)  # the span cuts, an unused slot, the kept cuts
        draws = uniforms.tolist()
        kept, lengths = naive_random_spans(n, noise, spans, draws[:spans - 1] + draws[spans:])
        assert sum(kept) + sum(lengths) == n and min(lengths) >= 1 and min(kept) >= 0 and min(kept[1:-1] or [1]) >= 1
        chunk = rng.integers(0, 256, size=n).astype(np.int32)
        source = np.concatenate([chunk, [paradigm], SENTINELS[:spans]]).astype(np.int32)
        layout = SpanLayout(n, noise, spans, random_layout(n, noise, spans, uniforms, (before, after)), source,
                            np.zeros(0))
        prefix, target, position = [paradigm] * before, [], 0
        for i in range(spans + 1):
            prefix += chunk[position:position + kept[i]].tolist()
            position += kept[i]
            if i < spans:
                prefix.append(int(SENTINELS[i]))
                target += [int(SENTINELS[i])] + chunk[position:position + lengths[i]].tolist()
                position += lengths[i]
        prefix += [paradigm] * after
        both = gather_shifted(source, *segments(layout, "infilling"), n + 2 * spans + before + after)
        masked = gather_shifted(source, *segments(layout, "masked"), len(prefix))
        assert both.tolist() == prefix + target and masked.tolist() == prefix


def test_prefix_lm_split_is_random_around_fraction():
    splits = [len(e.prefix) - 1 for e in examples(PrefixLanguageModeling(length=(1000, 1000)), 400)]
    fractions = np.array(splits) / 1000
    assert abs(fractions.mean() - 0.75) < 0.02
    assert fractions.min() >= 0.5 - 1e-9 and fractions.std() > 0.1, "uniform in [0.5, 1], not a fixed split"


def test_deshuffling_fraction_of_moved_characters():
    text = "".join(chr(0x4E00 + i) for i in np.random.default_rng(0).permutation(2000)[:300])  # distinct CJK chars
    ids = TOKENIZER.encode(text)
    for fraction in (0.5, 1.0):
        config = Deshuffling(shuffle_fraction=fraction, length=None, paradigm="none")
        moved = []
        for seed in range(30):
            example = config(ids, np.random.default_rng(seed), 4096, TOKENIZER)
            shuffled = TOKENIZER.decode(example.prefix)
            moved.append(sum(a != b for a, b in zip(shuffled, text)) / len(text))
        # k chosen characters permuted among themselves: about k - 1 of them move
        assert abs(np.mean(moved) - fraction) < 0.03


@pytest.mark.parametrize("mode,expected", [("prepend", 0.0), ("append", 1.0), ("random", 0.5)])
def test_paradigm_placement(mode, expected):
    config = NextTokenPrediction(paradigm=mode, length=(4, 4))
    token = TOKENIZER.specials.paradigm("next_token_prediction")
    rng = np.random.default_rng(0)
    appended = []
    for _ in range(400):
        example = PrefixLanguageModeling(paradigm=mode, min_prefix_length=2, min_suffix_length=2)(
            DOCUMENT[:8], rng, 64, TOKENIZER)
        appended.append(example.prefix[-1] == TOKENIZER.specials.paradigm("prefix_language_modeling"))
    assert abs(np.mean(appended) - expected) < 0.08
    assert np.array_equal(config(DOCUMENT, rng, 64, TOKENIZER).prefix, [token])


def test_selective_copying_span_statistics():
    config = SelectiveCopying(num_spans=(1, 4), length=(768, 1536), paradigm="none", format="context_query")
    counts, lengths = [], []
    for example in examples(config, 100):
        target = example.target[:-1]
        pieces = np.split(target, np.flatnonzero(target == TOKENIZER.specials.marker("sep")))
        counts.append(len(pieces))
        lengths += [len(p) for p in pieces[:1]] + [len(p) - 1 for p in pieces[1:]]
    assert set(counts) == {1, 2, 3, 4}
    assert min(lengths) >= 4 and max(lengths) <= 32 and abs(np.mean(lengths) - 18) < 2.5
    example = config(DOCUMENT, np.random.default_rng(1), 4096, TOKENIZER)
    assert strip_paradigm(config, example, TOKENIZER)[0] == TOKENIZER.specials.marker("context")


class MaskedWindows(_Windows):
    """Windows whose uniqueness is a given flag per ``width``-token window (instead of a context's byte search)."""

    def __init__(self, unique: np.ndarray, width: int) -> None:
        self.flags, self.width, self.windows = unique, width, len(unique)

    def occurs_once(self, start: int, stop: int) -> bool:
        assert stop - start == self.width, "only whole windows are tested when placing a span"
        return bool(self.flags[start])

    def unique_all(self) -> np.ndarray:
        return self.flags


@pytest.mark.parametrize("density", [0.9, 0.2])  # 0.9: rejection draws succeed; 0.2: mostly the exact filter
def test_selective_copying_start_is_uniform_over_the_naive_valid_set(density):
    rng = np.random.default_rng(7)
    width, length, n = 3, 5, 200
    unique = rng.random(n - width + 1) < density
    placed = [(40, 20, 1, 1), (120, 10, 1, 1)]
    valid = [s for s in range(width, n - width - length + 1)
             if unique[s - width] and unique[s + length]
             and all(s + length <= other or s >= other + size for other, size, _, _ in placed)]
    assert len(valid) >= 2
    draws = 400 * len(valid)
    windows = MaskedWindows(unique, width)
    picks = Counter(windows.random_start(length, placed, rng.random(8).tolist(), rng) for _ in range(draws))
    assert set(picks) == set(valid)
    expected = draws / len(valid)
    chi_square = sum((picks[s] - expected) ** 2 / expected for s in valid)
    dof = len(valid) - 1
    assert chi_square < dof + 5 * np.sqrt(2 * dof) + 10, (chi_square, dof)
