"""The synthetic story corpus: determinism, lengths, disjoint splits, worker sharding and variety."""

import itertools
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from birdie.data.stories import (
    MAX_WORDS,
    MIN_WORDS,
    generate_story,
    plots,
    split_of,
    stories,
    story_texts,
    synthetic_stories,
)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**31), index=st.integers(0, 10**9))
def test_story_is_deterministic_and_within_length_bounds(seed, index):
    story = generate_story(seed, index)
    assert story == generate_story(seed, index)
    assert MIN_WORDS <= story.num_words <= MAX_WORDS
    assert story.text == " ".join(story.events)
    assert all(event and event[0] in '"ABCDEFGHIJKLMNOPQRSTUVWXYZ' for event in story.events)
    assert "{" not in story.text and "}" not in story.text


def test_lengths_spread_over_the_range():
    words = [generate_story(7, i).num_words for i in range(400)]
    assert min(words) < 100 and max(words) > 250


def test_seed_changes_the_corpus():
    first = [generate_story(0, i).text for i in range(50)]
    second = [generate_story(1, i).text for i in range(50)]
    assert not set(first) & set(second)


def test_variety_of_plots_names_and_text():
    corpus = [generate_story(3, i) for i in range(600)]
    assert len({story.text for story in corpus}) == len(corpus)
    main_plots = {story.plot.split("+")[0] for story in corpus}
    assert main_plots == set(plots())
    assert any("+" in story.plot for story in corpus)
    vocabulary = {word for story in corpus for word in re.findall(r"[a-z]+", story.text.lower())}
    assert len(vocabulary) > 400
    assert sum('"' in story.text for story in corpus) > len(corpus) // 2  # dialogue is common
    first_events = {story.events[1] for story in corpus}
    assert len(first_events) > 300


def test_splits_are_disjoint_and_assigned_by_text():
    train = list(itertools.islice(story_texts(5, "train"), 600))
    validation = list(itertools.islice(story_texts(5, "validation"), 30))
    assert not set(train) & set(validation)
    assert all(split_of(text) == "train" for text in train)
    assert all(split_of(text) == "validation" for text in validation)
    assert len(set(validation)) == len(validation)


def test_workers_partition_the_stream():
    single = list(itertools.islice(synthetic_stories("train", 0, 1, 11), 60))
    shards = [list(itertools.islice(synthetic_stories("train", w, 3, 11), 30)) for w in range(3)]
    merged = {item["text"] for shard in shards for item in shard}
    assert all(set(item) == {"text"} for shard in shards for item in shard)
    assert not set(item["text"] for item in shards[0]) & set(item["text"] for item in shards[1])
    first_sixty = {item["text"] for item in single}
    by_index = {story.text for story in itertools.islice(stories(11, "train"), 60)}
    assert first_sixty == by_index
    assert first_sixty <= merged  # the three shards jointly cover the same early indices


@pytest.mark.parametrize(
    "call",
    [
        lambda: generate_story(0, -1),
        lambda: next(story_texts(0, "test")),
        lambda: next(iter(synthetic_stories("train", 2, 2, 0))),
        lambda: next(iter(synthetic_stories("train", 0, 0, 0))),
    ],
)
def test_bad_arguments_fail_clearly(call):
    with pytest.raises(ValueError):
        call()
