"""Shared test setup: offline HF libraries, small thread counts, deterministic torch, a small story BPE."""

import os

import pytest

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope="session")
def story_bpe(tmp_path_factory):
    """A byte-level BPE (vocabulary 700) trained on 60 synthetic stories, shared by the BPE tests."""
    from birdie.data.stories import generate_story
    from birdie.tokenizers import train_bpe

    corpus = tmp_path_factory.mktemp("stories") / "stories.txt"
    corpus.write_text("\n".join(generate_story(0, i).text for i in range(60)))
    return train_bpe([corpus], vocab_size=700)
