"""The in-process pipeline: determinism, resume, mixture control, long documents, failures."""

import numpy as np
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from birdie.data.pipeline import Pipeline, PipelineConfig
from birdie.data.streams import PipelineDataError
from birdie.objectives import NextTokenPrediction
from birdie.tokenizers import ByteTokenizer

from pipeline_checks import AlwaysSkips, LongPiecesOnly, Oversize, assert_valid_batch, word_docs


def segment_kinds(batch, paradigm_id):
    """1 for every segment that starts with the NTP paradigm token, 0 for every one that does not."""
    seg, ids = batch["segment_ids"], batch["input_ids"]
    starts = (batch["position_ids"] == 0) & (seg > 0)
    return (ids[starts] == paradigm_id).long()


def take(pipeline, n):
    return [next(pipeline) for _ in range(n)]


def assert_same(batches_a, batches_b):
    assert len(batches_a) == len(batches_b)
    for a, b in zip(batches_a, batches_b):
        for key in a:
            assert torch.equal(a[key], b[key]), key


def make(tokenizer, mixture, **options):
    options = {"batch_size": 2, "sequence_length": 128, "num_streams": 4, "prefetch": 3, **options}
    return Pipeline(tokenizer, mixture, word_docs, **options)


def test_batches_have_the_contract_shape_and_dtype(tokenizer, two_ntp):
    with make(tokenizer, two_ntp) as pipeline:
        batch = next(pipeline)
    assert set(batch) == {"input_ids", "label_ids", "attention_mask", "segment_ids", "position_ids"}
    for tensor in batch.values():
        assert tensor.shape == (2, 128) and tensor.dtype == torch.int64
    pad = batch["segment_ids"] == 0
    assert (batch["input_ids"][pad] == tokenizer.specials.pad).all()
    assert (batch["label_ids"][pad] == -100).all()


def test_same_seed_same_stream_other_seed_other_stream(tokenizer, two_ntp):
    with make(tokenizer, two_ntp) as a, make(tokenizer, two_ntp) as b, make(tokenizer, two_ntp, seed=1) as c:
        first, second, third = take(a, 6), take(b, 6), take(c, 6)
    assert_same(first, second)
    assert not torch.equal(first[0]["input_ids"], third[0]["input_ids"])


def test_resume_equals_uninterrupted_across_a_mixture_change(tokenizer, two_ntp, tmp_path):
    with make(tokenizer, two_ntp) as straight:
        reference = take(straight, 4)
        straight.set_mixture([0.1, 0.9])
        reference += take(straight, 8)
    with make(tokenizer, two_ntp) as first:
        head = take(first, 4)
        first.set_mixture([0.1, 0.9])
        head += take(first, 3)
        torch.save(first.state_dict(), tmp_path / "pipeline.pt")
    with make(tokenizer, two_ntp) as resumed:
        resumed.load_state_dict(torch.load(tmp_path / "pipeline.pt"))
        tail = take(resumed, 5)
        assert resumed.stats()["batches"] == 12
    assert_same(head + tail, reference)


def test_observed_mixture_tracks_commanded_and_follows_a_change(tokenizer, two_ntp):
    paradigm = tokenizer.specials.paradigm("next_token_prediction")
    with make(tokenizer, two_ntp, batch_size=4, prefetch=2) as pipeline:
        before = torch.cat([segment_kinds(b, paradigm) for b in take(pipeline, 40)])
        stats = pipeline.stats()["objectives"]
        assert stats[pipeline.keys[0]]["samples"] == int(before.sum())
        assert stats[pipeline.keys[1]]["samples"] == int((1 - before).sum())
        effective = pipeline.set_mixture({pipeline.keys[0]: 0.0, pipeline.keys[1]: 1.0})
        assert effective == 41  # batch 39 was requested last: committed up to 39 + prefetch - 1
        kinds = [segment_kinds(b, paradigm) for b in take(pipeline, 10)]
    n, share = len(before), before.float().mean().item()
    assert abs(share - 0.7) < 4 * np.sqrt(0.7 * 0.3 / n), (share, n)
    assert kinds[0].float().mean() > 0.3 and all(k.sum() == 0 for k in kinds[1:])


def test_set_mixture_before_the_first_batch_applies_from_batch_zero(tokenizer, two_ntp):
    paradigm = tokenizer.specials.paradigm("next_token_prediction")
    with make(tokenizer, two_ntp) as pipeline:
        assert pipeline.set_mixture([1, 0]) == 0
        assert all(segment_kinds(b, paradigm).all() for b in take(pipeline, 3))
        with pytest.raises(ValueError, match="2 configurations"):
            pipeline.set_mixture([1, 0, 0])
        with pytest.raises(ValueError, match="not all 0"):
            pipeline.set_mixture([0, 0])


def test_long_documents_continue_from_their_leftover_ids(tokenizer):
    text = " ".join(f"token{i}" for i in range(100))  # 790 bytes: six-plus rows of 128

    def one_long_doc(split, worker_id, num_workers, rng_seed):
        return [text] if split == "train" else []

    mixture = [NextTokenPrediction(paradigm="none")]
    with Pipeline(tokenizer, mixture, one_long_doc, batch_size=1, sequence_length=128, num_streams=1) as pipeline:
        labels = torch.cat([b["label_ids"][0] for b in take(pipeline, 14)])
    expected = np.concatenate([tokenizer.encode(text), [tokenizer.specials.eos]])
    stream = labels[labels != -100].numpy()
    assert (stream[:len(expected)] == expected).all()
    assert (stream[len(expected):2 * len(expected)] == expected).all()  # next epoch: the same document again


@pytest.mark.parametrize("mixture", ["ntp", "birdie"])
def test_fill_rate_on_the_default_story_corpus(tokenizer, mixture):
    with Pipeline(tokenizer, mixture, batch_size=8, sequence_length=1024) as pipeline:
        for batch in take(pipeline, 6):
            assert_valid_batch(batch, tokenizer.specials)
        stats = pipeline.stats()
    assert stats["fill_rate"] >= 0.98
    assert sum(entry["samples"] for entry in stats["objectives"].values()) > 6 * 8


def test_inspect_prints_every_segment(capsys):
    from birdie.cli import main as birdie_main

    assert birdie_main(["data", "inspect", "--mixture", "ntp", "--sequence-length", "300"]) == 0
    out = capsys.readouterr().out
    assert "=== batch 0" in out and "row 1:" in out and "[1] positions 0.." in out and "fill rate" in out


@pytest.mark.parametrize("sequence_length", [256, 700])
def test_every_birdie_segment_is_well_formed(tokenizer, sequence_length):
    with Pipeline(tokenizer, "birdie", batch_size=3, sequence_length=sequence_length, seed=3) as pipeline:
        for batch in take(pipeline, 8):
            assert_valid_batch(batch, tokenizer.specials)
        validation = pipeline.validation_batches()
        assert validation, "the birdie mixture must have validation batches for this test to bite"
        for batches in validation.values():
            assert_valid_batch(batches[0], tokenizer.specials)


def test_ranks_read_disjoint_documents(tokenizer):
    mixture = [NextTokenPrediction(paradigm="none")]

    def doc_numbers(rank):
        with make(tokenizer, mixture, rank=rank, world_size=2, sequence_length=512) as pipeline:
            text = "".join(tokenizer.decode(b["input_ids"][b["segment_ids"] > 0]) for b in take(pipeline, 4))
        return {int(part.split(":")[0]) for part in text.split("train doc ")[1:]}

    assert doc_numbers(0).isdisjoint(doc_numbers(1))


def test_validation_batches_are_fixed_per_configuration_held_out_and_equal_on_every_rank(tokenizer, two_ntp):
    with make(tokenizer, two_ntp, num_validation_batches=3, validation_batch_size=1) as pipeline:
        validation = pipeline.validation_batches()
        assert list(validation) == pipeline.keys
        assert all(len(batches) == 3 and batches[0]["input_ids"].shape == (1, 128) for batches in validation.values())
        texts = tokenizer.decode(validation[pipeline.keys[1]][0]["input_ids"][0])
        assert "validation doc" in texts and "train doc" not in texts
    with make(tokenizer, two_ntp, num_validation_batches=3, validation_batch_size=1, rank=1, world_size=2) as other:
        assert_same(other.validation_batches()[other.keys[0]], validation[pipeline.keys[0]])


def test_an_objective_that_always_skips_raises_a_clear_error(tokenizer):
    mixture = [NextTokenPrediction(prob=0.5), AlwaysSkips(prob=0.5)]
    with make(tokenizer, mixture, max_consecutive_skips=20) as pipeline:
        with pytest.raises(PipelineDataError, match="skipped 20 samples in a row"):
            take(pipeline, 50)
        with pytest.raises(RuntimeError, match="closed"):
            next(pipeline)


def test_skips_are_counted_and_the_mixture_goes_on(tokenizer):
    mixture = [NextTokenPrediction(prob=0.9), AlwaysSkips(prob=0.1)]
    with make(tokenizer, mixture) as pipeline:
        take(pipeline, 10)
        stats = pipeline.stats()["objectives"][pipeline.keys[1]]
    assert stats["skips"] == stats["draws"] > 0 and stats["samples"] == 0


def test_unusable_pieces_are_dropped_and_every_document_token_is_accounted_for(tokenizer):
    with make(tokenizer, [LongPiecesOnly()], num_streams=1, max_draws_per_piece=2) as pipeline:
        batches = take(pipeline, 8)
        stats, carry = pipeline.stats(), pipeline.state_dict()["streams"][0]["carry"]
    placed = sum(int((b["label_ids"] != -100).sum()) for b in batches)
    assert stats["dropped_tokens"] > 0
    assert placed + stats["dropped_tokens"] + len(carry) == stats["document_tokens"]
    lengths = torch.cat([torch.bincount(row)[1:] for b in batches for row in b["segment_ids"]])
    assert (lengths[lengths > 0] >= 40).all()


def test_an_oversize_example_raises(tokenizer):
    with make(tokenizer, [Oversize()]) as pipeline:
        with pytest.raises(PipelineDataError, match="budget"):
            next(pipeline)


def test_empty_and_non_text_documents_are_counted_and_skipped(tokenizer, two_ntp):
    def poisoned(split, worker_id, num_workers, rng_seed):
        for i, item in enumerate(word_docs(split, worker_id, num_workers, rng_seed)):
            yield [{"text": ""}, {"text": "   "}, {"title": "no text"}, None, 42, item][i % 6]

    with Pipeline(tokenizer, two_ntp, poisoned, batch_size=2, sequence_length=128, num_streams=2) as pipeline:
        take(pipeline, 5)
        stats = pipeline.stats()
    assert stats["invalid_documents"] >= 5 * stats["documents"] - 5 > 0


def test_an_empty_source_raises(tokenizer, two_ntp):
    with Pipeline(tokenizer, two_ntp, lambda *args: [], sequence_length=64) as pipeline:
        with pytest.raises(PipelineDataError, match="is empty"):
            next(pipeline)


def test_bad_configuration_is_rejected_with_the_field_name(tokenizer, two_ntp):
    with pytest.raises(ValueError, match="num_workers"):
        PipelineConfig(num_workers=9, num_streams=8)
    with pytest.raises(ValueError, match="rank"):
        PipelineConfig(rank=2, world_size=2)
    with pytest.raises(TypeError, match="unknown Pipeline option"):
        Pipeline(tokenizer, two_ntp, word_docs, batchsize=3)
    with make(tokenizer, two_ntp) as pipeline:
        state = pipeline.state_dict()
    with make(tokenizer, two_ntp, seed=5) as other:
        with pytest.raises(ValueError, match="seed"):
            other.load_state_dict(state)


operations = st.lists(
    st.one_of(st.tuples(st.just("next"), st.integers(1, 3)),
              st.tuples(st.just("mix"), st.lists(st.integers(0, 3), min_size=2, max_size=2).filter(any)),
              st.tuples(st.just("resume"), st.none())),
    min_size=1, max_size=8,
)


@settings(max_examples=15, deadline=None)
@given(operations)
@example([("next", 2), ("resume", None), ("mix", [1, 0]), ("next", 3)])
@example([("mix", [0, 1]), ("next", 1), ("resume", None), ("next", 3), ("mix", [1, 1]), ("next", 3)])
def test_any_interleaving_of_batches_mixture_changes_and_resumes_matches_a_straight_run(ops):
    tokenizer = ByteTokenizer()
    mixture = [NextTokenPrediction(prob=0.7), NextTokenPrediction(prob=0.3, paradigm="none")]
    straight, resumed = make(tokenizer, mixture), make(tokenizer, mixture)
    got, expected = [], []
    for op, arg in ops:
        if op == "next":
            expected += take(straight, arg)
            got += take(resumed, arg)
        elif op == "mix":
            assert straight.set_mixture(arg) == resumed.set_mixture(arg)
        else:
            state = resumed.state_dict()
            resumed.close()
            resumed = make(tokenizer, mixture)
            resumed.load_state_dict(state)
    straight.close()
    resumed.close()
    assert_same(got, expected)
