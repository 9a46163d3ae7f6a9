"""Golden examples on a tiny vocabulary, skips for too-short input, and the ``birdie objectives show`` command."""

from __future__ import annotations

import numpy as np
import pytest
from objective_checks import tiny_tokenizer

from birdie.cli import main
from birdie.objectives import (
    OBJECTIVE_CONFIG_BY_NAME,
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
    make_objective,
)
from birdie.objectives.autoencoding import shuffle_pieces
from birdie.objectives.spans import SpanLayout, gather_segments, gather_shifted, random_layout, segments

TOK = tiny_tokenizer()


def show(ids) -> str:
    return TOK.decode(ids)


def test_golden_causal_prefix_and_copy():
    ids = TOK.encode("bird songs")
    rng = np.random.default_rng(0)
    ntp = NextTokenPrediction(paradigm="prepend")(ids, rng, 64, TOK)
    assert (show(ntp.prefix), show(ntp.target)) == ("<|next_token_prediction|>", "bird songs")
    copy = Copying(paradigm="append")(ids, rng, 64, TOK)
    assert (show(copy.prefix), show(copy.target)) == ("bird songs<|copying|>", "bird songs")
    # budget 9 leaves room for a 4-token copy (4 + paradigm + 4); the rest is left over as ids
    short = Copying(paradigm="prepend")(ids, rng, 9, TOK)
    assert (show(short.prefix), show(short.target), show(short.leftover)) == ("<|copying|>bird", "bird", " songs")
    plm = PrefixLanguageModeling(paradigm="none", min_prefix_length=9, min_suffix_length=1)(ids, rng, 64, TOK)
    assert (show(plm.prefix), show(plm.target)) == ("bird song", "s")


def test_golden_span_layout():
    """'abcdefghij' with kept runs 1, 2, 3 around spans of 2 and 2 (the T5 layout), from hand-picked uniforms."""
    chunk = np.asarray(TOK.encode("abcdefghij"), dtype=np.int32)
    source = np.concatenate([chunk, [TOK.specials.paradigm("infilling")], TOK.specials.sentinels[:2]]).astype(np.int32)
    # span cut 0.5 * 3 -> 1 (lengths 2, 2), an unused slot, kept cuts 0.25 * 6 -> 1, 0.4 * 6 -> 2 (runs 1, 2, 3 after
    # the end fix)
    layout = SpanLayout(10, 4, 2, random_layout(10, 4, 2, np.array([0.5, 0.9, 0.25, 0.4]), (0, 1)), source,
                        np.zeros(0))
    both = gather_shifted(source, *segments(layout, "infilling"), 15)
    assert show(both[:9]) == "a<|mask_0|>de<|mask_1|>hij<|infilling|>"
    assert show(both[9:]) == "<|mask_0|>bc<|mask_1|>fg"
    shifts, sizes = segments(layout, "masked")
    starts = shifts + sizes.cumsum() - sizes
    for uniforms, expected in [([0.5, 0.3, 0.2, 0.1, 0.5], "<|mask_1|>hij<|mask_0|>dea"),
                               ([0.5, 0.1, 0.2, 0.3, 0.5], "<|mask_1|>hija<|mask_0|>de")]:  # the identity is rotated
        shuffled = gather_segments(source, *shuffle_pieces(starts, sizes, True, np.array(uniforms)), 9)
        assert show(shuffled) == expected + "<|infilling|>"


def test_golden_selective_copying_on_distinct_letters():
    ids = TOK.encode("abcdefghijklmnopqrstuvwxyz")  # every delimiter is unique
    config = SelectiveCopying(num_spans=1, span_length=(4, 4), delimiter_length=(2, 2), format="context_query",
                              paradigm="none", length=None)
    example = config(ids, np.random.default_rng(0), 128, TOK)
    text = show(example.prefix)
    context, query = text.split("<|copy|>")
    assert context == "<|context|>abcdefghijklmnopqrstuvwxyz"
    start, end = query.removeprefix("<|start|>").split("<|end|>")
    span = show(example.target).removesuffix("<|done|>")
    assert len(start) == len(end) == 2 and len(span) == 4
    assert start + span + end in "abcdefghijklmnopqrstuvwxyz"


def test_golden_infilling_and_autoencoding_reconstruct():
    ids = TOK.encode("bird songs fill the early morning air")
    rng = np.random.default_rng(3)
    infill = Infilling(corruption_rate=0.3, mean_span_length=3.0, paradigm="none", length=None)(ids, rng, 128, TOK)
    prefix, target = show(infill.prefix), show(infill.target)
    for i in range(prefix.count("<|mask_")):
        span = target.split(f"<|mask_{i}|>")[1].split("<|mask_")[0]
        prefix = prefix.replace(f"<|mask_{i}|>", span)
    assert prefix == "bird songs fill the early morning air"
    auto = Autoencoding(corruption_rate=0.3, paradigm="none", length=None)(ids, rng, 128, TOK)
    assert show(auto.target) == "bird songs fill the early morning air"
    shuffled = AutoencodingWithDeshuffling(corruption_rate=0.3, paradigm="none", length=None)(ids, rng, 128, TOK)
    assert show(shuffled.target) == "bird songs fill the early morning air"


def test_deshuffling_golden_whole_sequence():
    ids = TOK.encode("abcdefghij")
    example = Deshuffling(shuffle_fraction=1.0, paradigm="none", length=None)(ids, np.random.default_rng(0), 64, TOK)
    assert sorted(show(example.prefix)) == list("abcdefghij") and show(example.prefix) != "abcdefghij"
    assert show(example.target) == "abcdefghij"


@pytest.mark.parametrize("name", list(OBJECTIVE_CONFIG_BY_NAME))
@pytest.mark.parametrize("text,budget,servable_by", [
    ("", 512, set()),
    ("a", 512, {"next_token_prediction", "copying"}),
    ("ab", 3, {"next_token_prediction", "copying"}),  # one paradigm token + 2 positions
    ("abcdefghijklmnopqrstuvwxyz", 2, {"next_token_prediction"}),
])
def test_too_short_input_is_a_skip(name, text, budget, servable_by):
    ids = np.asarray(TOK.encode(text), dtype=np.int32)
    result = make_objective({"name": name})(ids, np.random.default_rng(0), budget, TOK)
    if name in servable_by:
        assert isinstance(result, Example) and result.length <= budget
    else:
        assert isinstance(result, Skip) and result.reason
        assert np.array_equal(result.leftover, ids)


def test_repetitive_text_is_a_skip_for_selective_copying():
    ids = np.zeros(500, dtype=np.int32)
    result = SelectiveCopying()(ids, np.random.default_rng(0), 2048, TOK)
    assert isinstance(result, Skip) and "unique" in result.reason


def test_long_document_is_consumed_in_chunks_without_re_tokenizing():
    ids = np.random.default_rng(0).integers(0, 27, size=5000).astype(np.int32)
    rng, rest, pieces = np.random.default_rng(1), ids, []
    while len(rest):
        example = Infilling(length=(128, 256))(rest, rng, 1024, TOK)
        assert 128 <= len(rest) - len(example.leftover) <= 256 or len(example.leftover) == 0
        pieces.append(rest[:len(rest) - len(example.leftover)])
        rest = example.leftover
    assert np.array_equal(np.concatenate(pieces), ids)


def test_show_command_prints_every_objective(capsys):
    assert main(["objectives", "show", "--seed", "3", "--budget", "600"]) == 0
    out = capsys.readouterr().out
    for name in OBJECTIVE_CONFIG_BY_NAME:
        assert f"== {name}" in out
    assert "<|mask_0|>" in out and "<|done|>" in out and "skipped" not in out


def test_show_command_with_a_named_mixture(capsys):
    assert main(["objectives", "show", "--mixture", "ul2_decoder"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n== ") == 4 and "p=0.6000" in out


def test_deshuffling_keeps_special_ids_in_place():
    eos = TOK.specials.eos
    ids = np.concatenate([TOK.encode("abcdefgh"), [eos], TOK.encode("ijklmnop"), [eos]]).astype(np.int32)
    example = Deshuffling(shuffle_fraction=1.0, paradigm="none", length=None)(ids, np.random.default_rng(0), 64, TOK)
    assert np.array_equal(example.target, ids)
    assert np.flatnonzero(example.prefix == eos).tolist() == [8, 17]
    assert sorted(show(example.prefix[:8])) == list("abcdefgh") and sorted(show(example.prefix[9:17])) == list("ijklmnop")
