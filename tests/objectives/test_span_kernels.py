"""The compiled span-corruption kernels give exactly the numpy path's examples, for every configuration.

Both paths read the same uniforms from the same generator, so for a seed the examples must be identical (values,
int32 dtype, leftover), including the generator's state afterwards. ``spans.use_kernels`` switches the kernels off.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import birdie.objectives
from birdie.objectives import Example, Skip, make_objective, spans
from birdie.tokenizers import ByteTokenizer, ExtendedTokenizer, Tokenizer
from objective_checks import Letters

pytest.importorskip("numba")

SPAN_OBJECTIVES = ["infilling", "autoencoding", "autoencoding_with_deshuffling"]
TOKENIZERS = {
    "bytes": ByteTokenizer(),
    "letters_3_sentinels": ExtendedTokenizer(Letters(), num_sentinels=3),  # sentinels cap the span count
}


def run(objective, ids: np.ndarray, seed: int, budget: int, tokenizer: Tokenizer,
        kernels: bool) -> tuple[Example | Skip, float]:
    """The objective's result and the generator's next uniform, with the kernels on or off."""
    saved, spans.use_kernels = spans.use_kernels, kernels
    try:
        rng = np.random.default_rng(seed)
        return objective(ids, rng, budget, tokenizer), rng.random()
    finally:
        spans.use_kernels = saved


def assert_same_example(compiled: Example | Skip, plain: Example | Skip) -> None:
    assert type(compiled) is type(plain)
    if isinstance(plain, Skip):
        assert compiled.reason == plain.reason and np.array_equal(compiled.leftover, plain.leftover)
        return
    for part in ("prefix", "target", "leftover"):
        got, want = getattr(compiled, part), getattr(plain, part)
        assert got.dtype == want.dtype == np.int32, part
        np.testing.assert_array_equal(got, want, err_msg=part)


def test_kernels_are_used_when_numba_is_installed(monkeypatch):
    assert spans.compiled_kernels() is not None
    monkeypatch.setattr(spans, "use_kernels", False)
    assert spans.compiled_kernels() is None


def test_without_numba_the_numpy_path_serves(monkeypatch):
    monkeypatch.setitem(sys.modules, "numba", None)  # makes `import numba` raise ImportError
    monkeypatch.delitem(sys.modules, "birdie.objectives.span_kernels", raising=False)
    monkeypatch.delattr(birdie.objectives, "span_kernels", raising=False)
    monkeypatch.setattr(spans, "_kernels", None)
    assert spans.compiled_kernels() is None
    example = make_objective({"name": "infilling"})(np.arange(300, dtype=np.int32) % 256, np.random.default_rng(0),
                                                     2048, TOKENIZERS["bytes"])
    assert isinstance(example, Example) and example.prefix.dtype == np.int32


def test_environment_switch_turns_the_kernels_off():
    code = "import birdie.objectives.spans as s, sys; print(s.compiled_kernels() is None, 'numba' in sys.modules)"
    shown = subprocess.run([sys.executable, "-c", code], env={**os.environ, "BIRDIE_NO_NUMBA": "1"},
                           capture_output=True, text=True, check=True).stdout.split()
    assert shown == ["True", "False"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(SPAN_OBJECTIVES),
    tokenizer_name=st.sampled_from(sorted(TOKENIZERS)),
    document=st.integers(0, 700),
    rate=st.sampled_from([0.05, 0.15, 0.5, 0.85]) | st.floats(0.01, 0.99),
    mean_span_length=st.sampled_from([1.0, 3.0, 8.0, 32.0]) | st.floats(1.0, 40.0),
    length=st.none() | st.tuples(st.integers(1, 400), st.integers(0, 400)).map(lambda t: (t[0], t[0] + t[1])),
    paradigm=st.sampled_from(["random", "prepend", "append", "none"]),
    append_prob=st.sampled_from([0.0, 0.5, 1.0]),
    budget=st.integers(1, 2048),
    seed=st.integers(0, 2**32 - 1),
)
def test_compiled_and_numpy_paths_give_identical_examples(name, tokenizer_name, document, rate, mean_span_length,
                                                          length, paradigm, append_prob, budget, seed):
    tokenizer = TOKENIZERS[tokenizer_name]
    objective = make_objective({"name": name, "corruption_rate": rate, "mean_span_length": mean_span_length,
                                "length": length, "paradigm": paradigm, "paradigm_append_prob": append_prob})
    ids = np.random.default_rng(seed).integers(0, 27, size=document).astype(np.int32)
    compiled, after_compiled = run(objective, ids, seed, budget, tokenizer, kernels=True)
    plain, after_plain = run(objective, ids, seed, budget, tokenizer, kernels=False)
    assert_same_example(compiled, plain)
    assert after_compiled == after_plain  # the same draws, so the generator is left in the same state


@pytest.mark.parametrize("name", SPAN_OBJECTIVES)
def test_identical_on_a_trained_bpe_consuming_whole_documents(name, story_bpe):
    """Documents consumed chunk by chunk through ``leftover`` with one generator, as the pipeline does, on a
    memory-map-like read-only array: the same examples in the same order."""
    from birdie.data.stories import generate_story

    objective = make_objective({"name": name, "length": None if name == "infilling" else (8, 80)})
    for story in range(4):
        text = " ".join(generate_story(1, 3 * story + i).text for i in range(3))
        ids = np.asarray(story_bpe.encode(text), dtype=np.int32)
        ids.flags.writeable = False
        results = []
        for kernels in (True, False):
            saved, spans.use_kernels = spans.use_kernels, kernels
            try:
                rng, rest, made = np.random.default_rng(story), ids, []
                while len(rest):
                    made.append(objective(rest, rng, 128, story_bpe))
                    if len(made[-1].leftover) == len(rest):
                        break
                    rest = made[-1].leftover
            finally:
                spans.use_kernels = saved
            results.append(made)
        assert len(results[0]) == len(results[1]) > 2
        for compiled, plain in zip(*results):
            assert_same_example(compiled, plain)


@pytest.mark.parametrize("layout", ["strided", "writable", "read-only"])
def test_any_int32_array_layout_is_accepted(layout):
    ids = np.arange(600, dtype=np.int32) % 251
    ids = {"strided": ids[::2], "writable": ids, "read-only": np.frombuffer(ids.tobytes(), dtype=np.int32)}[layout]
    objective = make_objective({"name": "autoencoding_with_deshuffling"})
    compiled, _ = run(objective, ids, 7, 2048, TOKENIZERS["bytes"], kernels=True)
    plain, _ = run(objective, ids, 7, 2048, TOKENIZERS["bytes"], kernels=False)
    assert_same_example(compiled, plain)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    document=st.integers(0, 1600),
    # small vocabularies repeat windows (the kernel hands over to the numpy path's exact filter); a large one needs
    # 4-byte ids in the numpy path's byte search
    vocabulary=st.sampled_from([2, 3, 8, 27, 256, 70_000]),
    num_spans=st.tuples(st.integers(1, 4), st.integers(0, 3)).map(lambda t: (t[0], t[0] + t[1])),
    span_length=st.tuples(st.integers(1, 32), st.integers(0, 32)).map(lambda t: (t[0], t[0] + t[1])),
    delimiter_length=st.tuples(st.integers(1, 8), st.integers(0, 4)).map(lambda t: (t[0], t[0] + t[1])),
    text_format=st.sampled_from(["random", "query_context", "context_query"]),
    length=st.none() | st.tuples(st.integers(1, 800), st.integers(0, 800)).map(lambda t: (t[0], t[0] + t[1])),
    paradigm=st.sampled_from(["random", "prepend", "append", "none"]),
    budget=st.integers(1, 2048),
    seed=st.integers(0, 2**32 - 1),
)
def test_selective_copying_compiled_and_numpy_paths_give_identical_examples(
        document, vocabulary, num_spans, span_length, delimiter_length, text_format, length, paradigm, budget, seed):
    objective = make_objective({"name": "selective_copying", "num_spans": num_spans, "span_length": span_length,
                                "delimiter_length": delimiter_length, "format": text_format, "length": length,
                                "paradigm": paradigm})
    ids = np.random.default_rng(seed).integers(0, vocabulary, size=document).astype(np.int32)
    tokenizer = ExtendedTokenizer(Letters(), base_vocab_size=max(vocabulary, 27))  # specials above the ids
    compiled, after_compiled = run(objective, ids, seed, budget, tokenizer, kernels=True)
    plain, after_plain = run(objective, ids, seed, budget, tokenizer, kernels=False)
    assert_same_example(compiled, plain)
    assert after_compiled == after_plain
