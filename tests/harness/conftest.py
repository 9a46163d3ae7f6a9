"""Tiny models for the harness tests."""

from __future__ import annotations

import pytest
import torch

from birdie.harness.adapters import BirdieScoringModel, load_scoring_model
from birdie.tokenizers import ByteTokenizer

NUMPY_MODULE = "birdie.harness.numpy_example"


@pytest.fixture(scope="session")
def numpy_model():
    return load_scoring_model(module=NUMPY_MODULE, tag="tiny")


@pytest.fixture(scope="session", params=["transformer-tiny", "hawk-tiny", "gated-ssm-tiny"])
def birdie_model(request):
    from birdie.models import create

    torch.manual_seed(0)
    tokenizer = ByteTokenizer()
    return BirdieScoringModel(create(request.param, vocab_size=tokenizer.vocab_size), tokenizer)


@pytest.fixture(scope="session")
def birdie_checkpoint(tmp_path_factory):
    """A freshly initialised transformer-tiny exported the way the trainer exports (config, weights, tokenizer)."""
    from birdie.models import create
    from birdie.train.export import export_model

    torch.manual_seed(1)
    tokenizer = ByteTokenizer()
    model = create("transformer-tiny", vocab_size=tokenizer.vocab_size)
    directory = tmp_path_factory.mktemp("export")
    export_model(directory, model, model.config.to_dict(), tokenizer)
    return str(directory)
