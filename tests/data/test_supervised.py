"""Prompt/completion items in the pipeline: layout, labels, mixing with text, determinism, over-long pairs."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import assume, given, settings, strategies as st

from birdie.data import Pipeline
from birdie.data.streams import PipelineDataError
from birdie.eval.phonebook import phonebook_examples
from birdie.objectives import NextTokenPrediction, Supervised
from birdie.tokenizers import ByteTokenizer

LEAK = "LEAKED TEXT FIELD"


class WideByteTokenizer(ByteTokenizer):
    """The byte tokenizer with a vocabulary wide enough for the marker ids of :func:`id_pairs` (below 2**20): the
    pipeline rejects pre-tokenized ids outside the tokenizer's vocabulary."""

    def __init__(self) -> None:
        super().__init__()
        self.vocab_size = 1 << 20


def id_pairs(split, worker_id, num_workers, rng_seed, lengths=((3, 2), (4, 1), (2, 3)), first_id=10):
    """Unlimited pairs of token-id arrays with the given (prompt, completion) lengths, cycled: pair ``i`` has prompt
    ids from ``first_id + 30 i`` and completion ids from ``first_id + 30 i + 2000`` (all distinct)."""
    next_id = first_id + (0 if split == "train" else 50_000) + 100_000 * worker_id
    for prompt_length, completion_length in itertools.cycle(lengths):
        prompt = np.arange(next_id, next_id + prompt_length, dtype=np.int32)
        completion = np.arange(next_id + 2000, next_id + 2000 + completion_length, dtype=np.int32)
        next_id += 30
        yield {"prefix": prompt, "target": completion, "text": LEAK}


def mixed_items(split, worker_id, num_workers, rng_seed):
    """Phone-book pairs (with a text field that must not be used) alternating with plain text records."""
    books = phonebook_examples(split, worker_id, num_workers, rng_seed, min_entries=2, max_entries=4, max_queries=2,
                               layouts=("context-question",))  # at most ~230 bytes: fits a 256-token row
    for index, book in enumerate(books):
        yield {**book, "text": LEAK}
        yield {"text": f"{split} story {worker_id}.{index}: the owl watched the fox from the old oak tree."}


def segments(batch):
    """``(prefix input ids, label ids)`` of every packed segment of every row, as lists."""
    out = []
    for row in range(batch["input_ids"].shape[0]):
        seg = batch["segment_ids"][row]
        for k in range(1, int(seg.max()) + 1):
            where = seg == k
            mask = batch["attention_mask"][row][where]
            out.append((batch["input_ids"][row][where][mask == 1].tolist(), batch["label_ids"][row][where].tolist(),
                        batch))
    return out


def reference_row(examples, begin, length, pad):
    """The packed row of ``examples`` (prefix, target) laid out one after the other (docs/data.md)."""
    rows = {name: [] for name in ("input_ids", "label_ids", "attention_mask", "segment_ids", "position_ids")}
    for k, (prefix, target) in enumerate(examples, start=1):
        rows["input_ids"] += [*prefix, begin, *target[:-1]]
        rows["label_ids"] += [-100] * len(prefix) + list(target)
        rows["attention_mask"] += [1] * len(prefix) + [0] * len(target)
        rows["segment_ids"] += [k] * (len(prefix) + len(target))
        rows["position_ids"] += list(range(len(prefix) + len(target)))
    fill = length - len(rows["input_ids"])
    for name, value in (("input_ids", pad), ("label_ids", -100)):
        rows[name] += [value] * fill
    for name in ("attention_mask", "segment_ids", "position_ids"):
        rows[name] += [0] * fill
    return rows


def test_a_pair_is_packed_as_prompt_prefix_and_completion_target_with_eos():
    tokenizer = WideByteTokenizer()
    specials = tokenizer.specials
    with Pipeline(tokenizer, [Supervised()], id_pairs, batch_size=1, sequence_length=16, num_streams=1) as pipeline:
        first, second = next(pipeline), next(pipeline)
    eos = specials.eos
    pair = [([10, 11, 12], [2010, 2011, eos]), ([40, 41, 42, 43], [2040, eos])]
    expected = reference_row(pair, specials.begin_generating, 16, specials.pad)
    for name, row in expected.items():
        assert first[name][0].tolist() == row, name
    # the third pair needs 6 positions and 4 are left: it waits whole for the next batch instead of being cut
    assert second["input_ids"][0, :6].tolist() == [70, 71, specials.begin_generating, 2070, 2071, 2072]
    assert second["label_ids"][0, :6].tolist() == [-100, -100, 2070, 2071, 2072, eos]


def test_without_eos_the_target_is_the_completion_alone():
    with Pipeline(WideByteTokenizer(), [Supervised(append_eos=False)], id_pairs, batch_size=1, sequence_length=16,
                  num_streams=1) as pipeline:
        batch = next(pipeline)
    assert batch["label_ids"][0, :5].tolist() == [-100, -100, -100, 2010, 2011]
    assert batch["segment_ids"][0, :6].tolist() == [1] * 5 + [2]


def test_labels_cover_exactly_the_completion_of_phone_book_pairs():
    tokenizer = WideByteTokenizer()
    answers = {}

    def source(*args):  # records what it yields (the pipeline runs in this process)
        for book in phonebook_examples(*args, min_entries=2, max_entries=6, max_queries=2):
            answers[book["prefix"]] = book["target"]
            yield book

    with Pipeline(tokenizer, [Supervised()], source, batch_size=4, sequence_length=512, num_streams=1) as pipeline:
        batches = [next(pipeline) for _ in range(3)]
    count = 0
    for batch in batches:
        for prefix, labels, _ in segments(batch):
            prompt = tokenizer.decode(prefix)
            scored = [t for t in labels if t != -100]
            assert labels[:len(prefix)] == [-100] * len(prefix)  # no loss on the prompt
            assert len(scored) == len(labels) - len(prefix)  # loss on every completion position
            assert scored[-1] == tokenizer.specials.eos
            assert tokenizer.decode(scored[:-1]) == answers[prompt]
            count += 1
    assert count >= 8


def test_pairs_and_text_items_mix_each_served_by_its_own_objectives():
    tokenizer = WideByteTokenizer()
    mixture = [Supervised(prob=0.5), NextTokenPrediction(prob=0.5, paradigm="prepend")]
    with Pipeline(tokenizer, mixture, mixed_items, batch_size=4, sequence_length=256, num_streams=2) as pipeline:
        batches = [next(pipeline) for _ in range(4)]
        stats = pipeline.stats()
    ntp_token = tokenizer.specials.paradigm("next_token_prediction")
    kinds = {"pair": 0, "text": 0}
    for batch in batches:
        assert LEAK not in tokenizer.decode([t for t in batch["input_ids"].flatten().tolist() if t < 256])
        for prefix, labels, _ in segments(batch):
            if prefix == [ntp_token]:
                kinds["text"] += 1
                assert "Phonebook" not in tokenizer.decode([t for t in labels if 0 <= t < 256])
            else:
                kinds["pair"] += 1
                assert tokenizer.decode(prefix).startswith("Phonebook:")
    assert kinds["pair"] > 3 and kinds["text"] > 3
    samples = {key: entry["samples"] for key, entry in stats["objectives"].items()}
    assert samples["supervised"] == kinds["pair"] and sum(samples.values()) == kinds["pair"] + kinds["text"]
    assert stats["objectives"]["supervised"]["skips"] == 0


def test_without_a_supervised_objective_pair_records_are_read_as_text():
    tokenizer = WideByteTokenizer()
    with Pipeline(tokenizer, "ntp", id_pairs, batch_size=1, sequence_length=64, num_streams=1) as pipeline:
        batch = next(pipeline)
    assert LEAK in tokenizer.decode([t for t in batch["label_ids"][0].tolist() if 0 <= t < 256])


def _stream(num_workers, resume_after=None, batches=8):
    mixture = [Supervised(prob=0.6), NextTokenPrediction(prob=0.4)]
    options = dict(batch_size=2, sequence_length=256, num_streams=3, prefetch=3, seed=5)
    with Pipeline(WideByteTokenizer(), mixture, mixed_items, num_workers=num_workers, **options) as pipeline:
        out = [next(pipeline) for _ in range(resume_after or batches)]
        state = pipeline.state_dict()
    if resume_after is not None:
        with Pipeline(WideByteTokenizer(), mixture, mixed_items, num_workers=0, **options) as pipeline:
            pipeline.load_state_dict(state)
            out += [next(pipeline) for _ in range(batches - resume_after)]
    return out, state


def _equal(a, b):
    return len(a) == len(b) and all(all((x[k] == y[k]).all() for k in x) for x, y in zip(a, b))


def test_mixed_streams_resume_exactly_even_with_a_pair_waiting():
    straight, _ = _stream(0)
    resumed, state = _stream(0, resume_after=4)
    assert any(stream["prompt"] is not None for stream in state["streams"])  # a pair waited across the cut
    assert _equal(straight, resumed)


@pytest.mark.multiprocess
def test_mixed_streams_do_not_depend_on_the_number_of_workers():
    assert _equal(_stream(0)[0], _stream(2)[0])


def test_a_pair_longer_than_a_row_is_a_counted_skip_never_truncated():
    long_first = lambda *a: id_pairs(*a, lengths=((20, 5), (3, 2), (2, 2)))  # noqa: E731
    with Pipeline(WideByteTokenizer(), [Supervised()], long_first, batch_size=1, sequence_length=16,
                  num_streams=1) as pipeline:
        batch = next(pipeline)
        stats = pipeline.stats()
    assert stats["objectives"]["supervised"]["skips"] == 1
    assert stats["dropped_tokens"] == 25
    assert batch["input_ids"][0, :3].tolist() == [40, 41, 42]  # the first pair left no trace
    assert not set(range(2010, 2015)) & set(batch["label_ids"].flatten().tolist())


def test_only_over_long_pairs_raise_a_clear_error():
    too_long = lambda *a: id_pairs(*a, lengths=((20, 5),))  # noqa: E731
    with Pipeline(WideByteTokenizer(), [Supervised()], too_long, batch_size=1, sequence_length=16, num_streams=1,
                  max_consecutive_skips=5) as pipeline:
        with pytest.raises(PipelineDataError, match="supervised skipped 5 samples in a row .*needs 26 positions"):
            next(pipeline)


def test_text_without_a_text_objective_raises_a_clear_error():
    text = lambda *a: iter([{"text": "plain text only"}] * 50)  # noqa: E731
    with Pipeline(WideByteTokenizer(), [Supervised()], text, batch_size=1, sequence_length=16, num_streams=1,
                  max_consecutive_skips=5) as pipeline:
        with pytest.raises(PipelineDataError, match="5 text documents in a row had no objective.*'supervised'"):
            next(pipeline)


def test_validation_batches_hold_only_the_documents_each_configuration_serves():
    tokenizer = WideByteTokenizer()
    mixture = [Supervised(prob=0.5), NextTokenPrediction(prob=0.5, paradigm="prepend")]
    with Pipeline(tokenizer, mixture, mixed_items, batch_size=2, sequence_length=256, num_streams=1) as pipeline:
        validation = pipeline.validation_batches()
    ntp_token = tokenizer.specials.paradigm("next_token_prediction")
    pair_segments = [s for b in validation["supervised"] for s in segments(b)]
    text_segments = [s for b in validation[mixture[1].key] for s in segments(b)]
    assert pair_segments and all(prefix != [ntp_token] and prefix for prefix, _, _ in pair_segments)
    assert text_segments and all(prefix == [ntp_token] for prefix, _, _ in text_segments)


def test_pair_keys_are_configurable_and_validated():
    renamed = lambda *a: ({"question": item["prefix"], "answer": item["target"]} for item in id_pairs(*a))  # noqa
    with Pipeline(WideByteTokenizer(), [Supervised()], renamed, batch_size=1, sequence_length=16, num_streams=1,
                  prompt_key="question", completion_key="answer") as pipeline:
        assert next(pipeline)["input_ids"][0, :3].tolist() == [10, 11, 12]
    with pytest.raises(ValueError, match="PipelineConfig.completion_key='q' must differ from prompt_key"):
        Pipeline(WideByteTokenizer(), [Supervised()], renamed, prompt_key="q", completion_key="q")


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 14), st.integers(1, 14)), min_size=1, max_size=6),
       st.integers(1, 3), st.integers(2, 8))
def test_every_pair_is_packed_whole_once_in_order_or_skipped_when_longer_than_a_row(lengths, batch_size, min_segment):
    tokenizer = WideByteTokenizer()
    eos, length = tokenizer.specials.eos, 16
    assume(any(p + c + 1 <= length for p, c in lengths))  # only over-long pairs raise (tested above)
    source = lambda *a: id_pairs(*a, lengths=lengths)  # noqa: E731
    with Pipeline(tokenizer, [Supervised()], source, batch_size=batch_size, sequence_length=length, num_streams=1,
                  min_segment_tokens=min_segment) as pipeline:
        batches = [next(pipeline) for _ in range(3)]
        stats = pipeline.stats()
    seen = []
    for batch in batches:
        for prefix, labels, _ in segments(batch):
            index = (labels[len(prefix)] - 10 - 2000) // 30  # pair i's completion starts at 2010 + 30 i
            prompt_length, completion_length = lengths[index % len(lengths)]
            start = 10 + 30 * index
            assert prefix == list(range(start, start + prompt_length))
            assert labels == [-100] * prompt_length + list(range(start + 2000, start + 2000 + completion_length)) + [eos]
            seen.append(index)
    read = stats["documents"]
    too_long = [i for i in range(read) if sum(lengths[i % len(lengths)]) + 1 > length]
    fitting = [i for i in range(read) if i not in too_long]
    assert stats["objectives"]["supervised"]["skips"] == len(too_long)
    assert stats["dropped_tokens"] == sum(sum(lengths[i % len(lengths)]) for i in too_long)
    assert sorted(seen) in (fitting, fitting[:-1])  # each exactly once, none lost; the last read may wait
