"""The pipeline with a BPE and deshuffling (the one objective that re-encodes text): batches are well formed, the
same for any worker count, and a resumed run continues exactly; each deshuffling segment's prefix is the BPE's own
encoding of a character shuffle of its target."""

import numpy as np
import pytest
import torch

from birdie.data.pipeline import Pipeline
from birdie.data.stories import generate_story
from birdie.objectives import Deshuffling, NextTokenPrediction

from pipeline_checks import assert_valid_batch

pytestmark = pytest.mark.multiprocess

STORIES = [generate_story(0, i).text for i in range(60)]


@pytest.fixture
def bpe(story_bpe):
    return story_bpe


def stories(split, worker_id, num_workers, rng_seed):
    """50 training and 10 validation stories, dealt to the streams."""
    start, stop = (0, 50) if split == "train" else (50, 60)
    return STORIES[start + worker_id:stop:num_workers]


MIXTURE = [Deshuffling(shuffle_fraction=0.5, prob=0.4), Deshuffling(shuffle_fraction=1.0, length=(512, 1024), prob=0.4),
           NextTokenPrediction(prob=0.2)]


def batches(tokenizer, steps: int, state=None, **options):
    options = {"batch_size": 2, "sequence_length": 512, "num_streams": 4, "prefetch": 3, "num_validation_batches": 0,
               **options}
    with Pipeline(tokenizer, MIXTURE, stories, **options) as pipeline:
        if state is not None:
            pipeline.load_state_dict(state)
        out = [torch.stack([t.clone() for t in next(pipeline).values()]) for _ in range(steps)]
        return torch.stack(out), pipeline.state_dict()


def test_stream_is_the_same_for_any_worker_count_and_after_resume(bpe):
    reference, _ = batches(bpe, 8)
    two_workers, _ = batches(bpe, 8, num_workers=2)
    assert torch.equal(two_workers, reference)
    _, state = batches(bpe, 5, num_workers=2)
    tail, _ = batches(bpe, 3, state=state, num_workers=1)
    assert torch.equal(tail, reference[5:])


def test_deshuffling_segments_are_shuffles_encoded_by_the_bpe(bpe):
    reference, _ = batches(bpe, 4)
    paradigm, checked = bpe.specials.paradigm("deshuffling"), 0
    for batch in reference:
        assert_valid_batch(dict(zip(("input_ids", "label_ids", "attention_mask", "segment_ids", "position_ids"),
                                    batch)), bpe.specials)
        ids, labels, mask, segments = (batch[k].numpy() for k in range(4))
        for row in range(ids.shape[0]):
            for k in range(1, segments[row].max() + 1):
                where = np.flatnonzero(segments[row] == k)
                prefix, target = ids[row, where][mask[row, where] == 1], labels[row, where][mask[row, where] == 0]
                if paradigm not in prefix:
                    continue
                text = prefix[(prefix != paradigm) & ~bpe.specials.is_special(prefix)]
                original = target[~bpe.specials.is_special(target)]
                shuffled = bpe.decode(text)
                assert np.array_equal(text, bpe.encode(shuffled)), "the prefix is the BPE's own encoding"
                assert sorted(shuffled) == sorted(bpe.decode(original)), "of a permutation of the target's characters"
                checked += 1
    assert checked >= 4
