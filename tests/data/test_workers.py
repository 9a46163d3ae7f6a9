"""Worker processes: the stream does not depend on the worker count; faults end in clear errors, never hangs."""

import gc
import multiprocessing as mp
import os
import signal
import time

import pytest
import torch

from birdie.data.pipeline import Pipeline
from birdie.data.workers import PipelineWorkerError
from birdie.objectives import NextTokenPrediction

from pipeline_checks import Oversize, word_docs

pytestmark = pytest.mark.multiprocess


def make(tokenizer, mixture, source=word_docs, **options):
    options = {"batch_size": 2, "sequence_length": 128, "num_streams": 4, "prefetch": 3, **options}
    return Pipeline(tokenizer, mixture, source, **options)


def run(tokenizer, mixture, num_workers, steps=10, change_at=4):
    with make(tokenizer, mixture, num_workers=num_workers) as pipeline:
        batches = []
        for step in range(steps):
            if step == change_at:
                pipeline.set_mixture([0.2, 0.8])
            batches.append(torch.stack([t.clone() for t in next(pipeline).values()]))
        return torch.stack(batches), pipeline.stats()


def no_children_left():
    return mp.active_children() == []


def test_worker_count_does_not_change_the_stream_or_the_stats(tokenizer, two_ntp):
    reference, reference_stats = run(tokenizer, two_ntp, 0)
    for workers in (1, 3):
        batches, stats = run(tokenizer, two_ntp, workers)
        assert torch.equal(batches, reference), workers
        assert stats == reference_stats
    assert no_children_left()


def test_resume_with_workers_equals_uninterrupted(tokenizer, two_ntp):
    reference, _ = run(tokenizer, two_ntp, 0, steps=9)
    with make(tokenizer, two_ntp, num_workers=2) as first:
        head = [torch.stack(list(next(first).values())) for _ in range(4)]
        first.set_mixture([0.2, 0.8])
        head += [torch.stack(list(next(first).values())) for _ in range(2)]
        state = first.state_dict()
    with make(tokenizer, two_ntp, num_workers=2) as resumed:
        resumed.load_state_dict(state)
        tail = [torch.stack(list(next(resumed).values())) for _ in range(3)]
    assert torch.equal(torch.stack(head + tail), reference)
    assert no_children_left()


@pytest.mark.timeout(10)
def test_a_worker_killed_with_sigkill_raises_promptly(tokenizer, two_ntp):
    pipeline = make(tokenizer, two_ntp, num_workers=2)
    next(pipeline)
    os.kill(pipeline._pool.processes[1].pid, signal.SIGKILL)
    with pytest.raises(PipelineWorkerError, match="killed by signal SIGKILL"):
        for _ in range(20):
            next(pipeline)
    assert no_children_left()


def raising_source(split, worker_id, num_workers, rng_seed):
    for i, item in enumerate(word_docs(split, worker_id, num_workers, rng_seed)):
        if i == 3 and worker_id == 1:
            raise ConnectionError("storage went away")
        yield item


@pytest.mark.timeout(10)
def test_a_source_that_raises_surfaces_with_the_worker_traceback(tokenizer, two_ntp):
    with make(tokenizer, two_ntp, raising_source, num_workers=2) as pipeline:
        with pytest.raises(PipelineWorkerError) as error:
            for _ in range(40):
                next(pipeline)
    message = str(error.value)
    assert "ConnectionError: storage went away" in message and "raising_source" in message
    assert no_children_left()


@pytest.mark.timeout(10)
def test_an_oversize_sample_and_an_empty_source_raise_from_workers(tokenizer, two_ntp):
    with make(tokenizer, [Oversize()], num_workers=2) as pipeline:
        with pytest.raises(PipelineWorkerError, match="budget"):
            next(pipeline)
    with make(tokenizer, two_ntp, lambda *args: iter(()), num_workers=2) as pipeline:
        with pytest.raises(PipelineWorkerError, match="is empty"):
            next(pipeline)
    assert no_children_left()


@pytest.mark.timeout(10)
def test_a_stuck_source_times_out(tokenizer, two_ntp):
    def stuck(split, worker_id, num_workers, rng_seed):
        time.sleep(60)
        yield {"text": "never"}

    with make(tokenizer, two_ntp, stuck, num_workers=1, batch_timeout_s=1.0) as pipeline:
        with pytest.raises(PipelineWorkerError, match="delivered nothing for 1.0 s"):
            next(pipeline)
    assert no_children_left()


@pytest.mark.timeout(10)
def test_poisoned_documents_are_counted_by_workers_too(tokenizer, two_ntp):
    def poisoned(split, worker_id, num_workers, rng_seed):
        for item in word_docs(split, worker_id, num_workers, rng_seed):
            yield None
            yield item

    with make(tokenizer, two_ntp, poisoned, num_workers=2) as pipeline:
        for _ in range(4):
            next(pipeline)
        stats = pipeline.stats()
    assert stats["invalid_documents"] in (stats["documents"], stats["documents"] + 1, stats["documents"] - 1)
    assert no_children_left()


@pytest.mark.timeout(10)
def test_keyboard_interrupt_and_garbage_collection_leave_no_process(tokenizer, two_ntp):
    with pytest.raises(KeyboardInterrupt):
        with make(tokenizer, two_ntp, num_workers=2) as pipeline:
            next(pipeline)
            raise KeyboardInterrupt
    assert no_children_left()
    pipeline = make(tokenizer, two_ntp, num_workers=2)
    next(pipeline)
    del pipeline
    gc.collect()
    assert no_children_left()


@pytest.mark.timeout(10)
def test_workers_ignore_sigint(tokenizer):
    with make(tokenizer, [NextTokenPrediction()], num_workers=1) as pipeline:
        next(pipeline)
        os.kill(pipeline._pool.processes[0].pid, signal.SIGINT)
        for _ in range(5):
            next(pipeline)
        assert pipeline._pool.processes[0].is_alive()
    assert no_children_left()


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_a_spawned_worker_gives_the_same_stream(tokenizer):
    from birdie.data.stories import synthetic_stories

    mixture = [NextTokenPrediction(prob=0.5), NextTokenPrediction(prob=0.5, paradigm="none")]
    streams = []
    for options in ({"num_workers": 0}, {"num_workers": 1, "start_method": "spawn"}):
        with make(tokenizer, mixture, synthetic_stories, **options) as pipeline:
            streams.append(torch.stack([next(pipeline)["input_ids"] for _ in range(6)]))
    assert torch.equal(streams[0], streams[1])
    assert no_children_left()
