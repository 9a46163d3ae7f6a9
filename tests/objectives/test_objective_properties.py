"""Property-based invariants that every objective keeps for random documents, budgets, seeds and configs."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from objective_checks import consumed, fits_with_masked_spans, occurrences, split_at_sentinels, strip_paradigm

from birdie.objectives import (
    Autoencoding,
    AutoencodingWithDeshuffling,
    Copying,
    Deshuffling,
    Example,
    Infilling,
    NextTokenPrediction,
    PrefixLanguageModeling,
    SelectiveCopying,
    Skip,
)
from birdie.tokenizers import ByteTokenizer

TOKENIZER = ByteTokenizer()
SPECIALS = TOKENIZER.specials
SENTINEL_INDEX = {int(s): i for i, s in enumerate(SPECIALS.sentinels)}

paradigms = st.sampled_from(["prepend", "append", "random", "none"])
lengths = st.one_of(st.none(), st.tuples(st.integers(1, 600), st.integers(0, 600)).map(lambda t: (t[0], t[0] + t[1])))
rates = st.floats(0.01, 0.95)
spans = st.floats(1.0, 40.0)
span_configs = dict(corruption_rate=rates, mean_span_length=spans, paradigm=paradigms, length=lengths)

CONFIGS = {
    NextTokenPrediction: st.builds(NextTokenPrediction, paradigm=paradigms, length=lengths),
    PrefixLanguageModeling: st.builds(
        PrefixLanguageModeling, paradigm=paradigms, length=lengths, prefix_fraction=st.floats(0.05, 0.95),
        min_prefix_length=st.integers(1, 8), min_suffix_length=st.integers(1, 8)),
    Copying: st.builds(Copying, paradigm=paradigms, length=lengths),
    Deshuffling: st.builds(Deshuffling, paradigm=paradigms, length=lengths, shuffle_fraction=st.floats(0.05, 1.0)),
    Infilling: st.builds(Infilling, **span_configs),
    Autoencoding: st.builds(Autoencoding, **span_configs),
    AutoencodingWithDeshuffling: st.builds(AutoencodingWithDeshuffling, **span_configs),
    SelectiveCopying: st.builds(
        SelectiveCopying, paradigm=paradigms, length=lengths, num_spans=st.integers(1, 4).map(lambda k: (1, k)),
        format=st.sampled_from(["query_context", "context_query", "random"])),
}
documents = st.builds(
    lambda size, alphabet, seed: np.random.default_rng(seed).integers(0, alphabet, size=size).astype(np.int32),
    size=st.one_of(st.integers(0, 12), st.integers(0, 1200)),
    alphabet=st.sampled_from([2, 30, 256]),  # 2: repetitive text that selective copying must skip, not choke on
    seed=st.integers(0, 2**32 - 1),
)
budgets = st.one_of(st.integers(1, 64), st.integers(64, 1500))
SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("objective", list(CONFIGS), ids=lambda cls: cls.name)
@SETTINGS
@given(data=st.data(), ids=documents, budget=budgets, seed=st.integers(0, 2**32 - 1))
def test_contract_and_objective_semantics(objective, data, ids, budget, seed):
    config = data.draw(CONFIGS[objective])
    result = config(ids, np.random.default_rng(seed), budget, TOKENIZER)
    again = config(ids, np.random.default_rng(seed), budget, TOKENIZER)
    assert type(result) is type(again)
    event(f"{config.name}: {type(result).__name__}")
    if isinstance(result, Skip):
        assert result.reason and np.array_equal(result.leftover, ids)
        return
    assert isinstance(result, Example)
    for a, b in ((result.prefix, again.prefix), (result.target, again.target), (result.leftover, again.leftover)):
        assert np.array_equal(a, b), "same seed, same example"
    assert result.prefix.dtype == np.int32 and result.target.dtype == np.int32
    assert 0 < len(result.target) and result.length <= budget
    n = consumed(ids, result)
    assert n >= 1
    if config.length is not None:
        assert n <= config.length[1]
    prefix = strip_paradigm(config, result, TOKENIZER)
    if isinstance(config, AutoencodingWithDeshuffling):
        assert np.array_equal(result.target, ids[:n])
        check_autoencoding_with_deshuffling(config, ids, budget, seed, prefix)
    else:
        CHECKS[type(config)](config, ids[:n], prefix, result.target)


def check_ntp(config, chunk, prefix, target):
    assert len(prefix) == 0 and np.array_equal(target, chunk)


def check_plm(config, chunk, prefix, target):
    assert np.array_equal(np.concatenate([prefix, target]), chunk)
    assert len(prefix) >= config.min_prefix_length and len(target) >= config.min_suffix_length


def check_copying(config, chunk, prefix, target):
    assert np.array_equal(prefix, chunk) and np.array_equal(target, chunk)


def check_deshuffling(config, chunk, prefix, target):
    assert np.array_equal(target, chunk)
    original, shuffled = TOKENIZER.decode(chunk), TOKENIZER.decode(prefix)
    assert sorted(original) == sorted(shuffled), "a shuffle is a permutation of the characters"
    moved = sum(a != b for a, b in zip(original, shuffled))
    assert moved <= round(config.shuffle_fraction * len(original))


def check_span_counts(config, n, noise, spans):
    assert noise == min(max(round(n * config.corruption_rate), 1), n - 1)
    assert 1 <= spans <= min(noise, len(SPECIALS.sentinels))


def check_infilling(config, chunk, prefix, target):
    sentinels = SPECIALS.sentinels
    head, masked_pieces = split_at_sentinels(prefix, sentinels)
    empty, target_pieces = split_at_sentinels(target, sentinels)
    assert len(empty) == 0, "the target starts with a sentinel"
    assert sorted(masked_pieces) == list(range(len(masked_pieces))) == sorted(target_pieces), "sentinels pair up"
    assert [int(t) for t in prefix if SPECIALS.is_special([t])[0]] == list(sentinels[:len(masked_pieces)])
    rebuilt = [head]
    for i in range(len(masked_pieces)):
        assert len(target_pieces[i]) >= 1
        rebuilt += [target_pieces[i], masked_pieces[i]]
    assert np.array_equal(np.concatenate(rebuilt), chunk), "prefix + target merged by sentinels = chunk"
    check_span_counts(config, len(chunk), len(target) - len(target_pieces), len(target_pieces))


def check_autoencoding(config, chunk, prefix, target):
    assert np.array_equal(target, chunk), "the target is the whole original"
    head, pieces = split_at_sentinels(prefix, SPECIALS.sentinels)
    assert sorted(pieces) == list(range(len(pieces)))
    runs = [head] + [pieces[i] for i in range(len(pieces))]
    assert fits_with_masked_spans(chunk, runs), "kept runs appear in order with masked spans between them"
    check_span_counts(config, len(chunk), len(chunk) - sum(map(len, runs)), len(pieces))


def check_autoencoding_with_deshuffling(config, ids, budget, seed, shuffled):
    """The shuffled prefix is a non-identity permutation of the pieces of the unshuffled one (same layout)."""
    # Same fields and paradigm size, so the same rng draws give the same chunk and span layout.
    plain_config = Autoencoding(**{f: getattr(config, f) for f in ("corruption_rate", "mean_span_length", "length")},
                                paradigm="none" if config.paradigm == "none" else "append")
    plain = plain_config(ids, np.random.default_rng(seed), budget, TOKENIZER)
    plain = Example(strip_paradigm(plain_config, plain, TOKENIZER), plain.target, plain.leftover)
    check_autoencoding(plain_config, plain.target, plain.prefix, plain.target)
    cuts = [0] + [p for p, t in enumerate(plain.prefix.tolist()) if t in SENTINEL_INDEX] + [len(plain.prefix)]
    pieces = [plain.prefix[a:b] for a, b in zip(cuts[:-1], cuts[1:]) if b > a]
    order, position = [], 0
    while position < len(shuffled):
        token = int(shuffled[position])
        # a piece led by a sentinel is found by that sentinel; the one piece that is not, by not having one
        i = next(j for j, p in enumerate(pieces)
                 if (int(p[0]) == token if token in SENTINEL_INDEX else int(p[0]) not in SENTINEL_INDEX))
        assert np.array_equal(shuffled[position:position + len(pieces[i])], pieces[i])
        order.append(i)
        position += len(pieces[i])
    assert sorted(order) == list(range(len(pieces))), "every piece exactly once"
    assert len(pieces) < 2 or order != sorted(order), "pieces really are shuffled"


def check_selective_copying(config, chunk, prefix, target):
    context_id, copy_id = SPECIALS.marker("context"), SPECIALS.marker("copy")
    start_id, end_id = SPECIALS.marker("start"), SPECIALS.marker("end")
    c, q = int(np.flatnonzero(prefix == context_id)[0]), int(np.flatnonzero(prefix == copy_id)[0])
    context = prefix[c + 1:q] if c < q else prefix[c + 1:]
    query = prefix[q + 1:] if c < q else prefix[q + 1:c]
    assert np.array_equal(context, chunk), "the whole context is present"
    assert target[-1] == SPECIALS.marker("done")
    spans = np.split(target[:-1], np.flatnonzero(target[:-1] == SPECIALS.marker("sep")))
    spans = [s[1:] if i else s for i, s in enumerate(spans)]
    starts = np.flatnonzero(query == start_id)
    assert len(starts) == len(spans) and config.num_spans[0] <= len(spans) <= config.num_spans[1]
    located = []
    for i, s in enumerate(starts):
        stop = starts[i + 1] if i + 1 < len(starts) else len(query)
        e = s + 1 + int(np.flatnonzero(query[s + 1:stop] == end_id)[0])
        start_delim, end_delim = query[s + 1:e], query[e + 1:stop]
        for delim in (start_delim, end_delim):
            assert config.delimiter_length[0] <= len(delim) <= config.delimiter_length[1]
        (begin,) = occurrences(context, start_delim)  # unique, so the query is unambiguous
        (finish,) = occurrences(context, end_delim)
        span = context[begin + len(start_delim):finish]
        assert np.array_equal(span, spans[i]), "the delimiters locate the target span"
        assert config.span_length[0] <= len(span) <= config.span_length[1]
        located.append((begin + len(start_delim), finish))
    located.sort()
    assert all(a[1] <= b[0] for a, b in zip(located, located[1:])), "spans do not overlap"


CHECKS = {
    NextTokenPrediction: check_ntp,
    PrefixLanguageModeling: check_plm,
    Copying: check_copying,
    Deshuffling: check_deshuffling,
    Infilling: check_infilling,
    Autoencoding: check_autoencoding,
    SelectiveCopying: check_selective_copying,
}


@settings(max_examples=40, deadline=None)
@given(config=st.one_of(*CONFIGS.values()), text=st.text(max_size=300), budget=st.integers(64, 1024),
       seed=st.integers(0, 2**32 - 1))
def test_targets_never_hold_unintended_specials(config, text, budget, seed):
    ids = TOKENIZER.encode(text)
    result = config(ids, np.random.default_rng(seed), budget, TOKENIZER)
    if isinstance(result, Skip):
        return
    allowed = set(SPECIALS.sentinels.tolist()) | {SPECIALS.marker("sep"), SPECIALS.marker("done")}
    target_specials = set(result.target[SPECIALS.is_special(result.target)].tolist())
    assert target_specials <= allowed
    assert not SPECIALS.is_special(ids).any(), "text never encodes to a special id"
