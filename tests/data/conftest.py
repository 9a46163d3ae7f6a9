"""Fixtures shared by the data tests (helpers they import live in ``pipeline_checks``)."""

from __future__ import annotations

import pytest

from birdie.objectives import NextTokenPrediction
from birdie.tokenizers import ByteTokenizer


@pytest.fixture
def tokenizer():
    return ByteTokenizer()


@pytest.fixture
def two_ntp():
    """Two NTP configurations told apart by the first input of their segments (paradigm token or not)."""
    return [NextTokenPrediction(prob=0.7), NextTokenPrediction(prob=0.3, paradigm="none")]
