"""The optimizer step: gradient accumulation with global token normalisation, and its loss."""

import copy

import pytest
import torch

from birdie.models import create
from birdie.models.lm import token_loss_sum
from birdie.train.step import train_step

from tests.train.helpers import SINGLE, VOCAB, random_batch, rows


def _trained(model, micro_batches, steps=2, **kwargs):
    # SGD: parameter differences are gradient differences (Adam would amplify rounding in near-zero gradients)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    results = [train_step(model, optimizer, mb, SINGLE, **kwargs) for mb in micro_batches for _ in range(steps)]
    return results


@pytest.mark.parametrize("k", [2, 4])
def test_accumulating_k_micro_batches_equals_one_big_batch(k):
    torch.manual_seed(0)
    reference = create("transformer-tiny", vocab_size=VOCAB)
    accumulated = copy.deepcopy(reference)
    batch = random_batch(8, seed=1)
    counts = [(rows(batch, i, i + 8 // k)["label_ids"] != -100).sum().item() for i in range(0, 8, 8 // k)]
    assert len(set(counts)) > 1, "the micro-batches must hold different target counts for the test to bite"
    big = _trained(reference, [[batch]], z_loss=1e-3, grad_clip=0.5)
    small = _trained(accumulated, [[rows(batch, i, i + 8 // k) for i in range(0, 8, 8 // k)]], z_loss=1e-3,
                     grad_clip=0.5)
    for a, b in zip(big, small):
        assert a.loss == pytest.approx(b.loss, rel=1e-6)
        assert a.grad_norm == pytest.approx(b.grad_norm, rel=1e-5)
        assert a.target_tokens == b.target_tokens
    for p, q in zip(reference.parameters(), accumulated.parameters()):
        torch.testing.assert_close(p, q, atol=1e-6, rtol=1e-5)


def test_token_loss_sum_matches_mean_cross_entropy_and_adds_z_loss():
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 7)
    labels = torch.tensor([[1, -100, 3, 4, -100], [-100, -100, 0, 6, 2]])
    keep = labels != -100
    expected = torch.nn.functional.cross_entropy(logits[keep], labels[keep], reduction="sum")
    torch.testing.assert_close(token_loss_sum(logits, labels, 0.0), expected)
    z = torch.logsumexp(logits[keep], -1).pow(2).sum()
    torch.testing.assert_close(token_loss_sum(logits, labels, 0.1), expected + 0.1 * z)
    empty = token_loss_sum(logits.requires_grad_(), torch.full_like(labels, -100), 0.1)
    assert empty.item() == 0.0 and empty.requires_grad
