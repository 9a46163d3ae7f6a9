"""Batched model scoring against plain one-example-at-a-time reference implementations."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from birdie.eval.scoring import PromptFormat, greedy_generate, option_losses, target_losses
from birdie.models import create
from birdie.tokenizers import ByteTokenizer

FAMILIES = ["transformer-tiny", "hawk-tiny"]
MODES = ["prefix", "causal"]


@pytest.fixture(scope="module")
def tokenizer():
    return ByteTokenizer()


def tiny(preset, tokenizer):
    torch.manual_seed(0)
    return create(preset, vocab_size=tokenizer.vocab_size).eval()


def row(prefix, target, begin_generating):
    """One example laid out by hand as docs/architecture.md describes it."""
    ids = list(prefix) + [begin_generating] + list(target[:-1])
    n, m = len(prefix), len(target)
    return dict(
        input_ids=torch.tensor([ids]),
        attention_mask=torch.tensor([[1] * n + [0] * m]),
        segment_ids=torch.ones(1, n + m, dtype=torch.long),
        position_ids=torch.arange(n + m)[None],
    )


def split(tokenizer, prompt, mode):
    """(bidirectional prefix, causal tokens before the answer) written out for both formats."""
    ids = tokenizer.encode(prompt).tolist()
    if mode == "prefix":
        return ids, []
    return [tokenizer.specials.paradigm("next_token_prediction")], ids + tokenizer.encode("\n").tolist()


@torch.no_grad()
def reference_loss(model, tokenizer, prompt, target, mode):
    prefix, lead = split(tokenizer, prompt, mode)
    target_ids = tokenizer.encode(target).tolist()
    logits, _ = model(**row(prefix, lead + target_ids, tokenizer.specials.begin_generating))
    start = len(prefix) + len(lead)
    return float(F.cross_entropy(logits[0, start:].float(), torch.tensor(target_ids)))


@torch.no_grad()
def reference_greedy(model, tokenizer, prompt, max_new_tokens, mode):
    prefix, lead = split(tokenizer, prompt, mode)
    produced = []
    for _ in range(max_new_tokens):
        batch = row(prefix, lead + produced + [0], tokenizer.specials.begin_generating)
        logits, _ = model(**batch)
        token = int(logits[0, -1].argmax())
        if token == tokenizer.specials.eos:
            break
        produced.append(token)
    return tokenizer.decode(np.asarray(produced, dtype=np.int64))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("preset", FAMILIES)
def test_batched_losses_match_one_by_one(preset, mode, tokenizer):
    model = tiny(preset, tokenizer)
    fmt = PromptFormat(mode)
    pairs = [("Once upon a time", " there was a fox."), ("Q?", "A"), ("A longer prompt with more words in it", " ok"),
             ("x", "a much longer target that needs padding elsewhere")]
    batched = target_losses(model, tokenizer, pairs, batch_size=3, prompt_format=fmt)
    expected = [reference_loss(model, tokenizer, p, t, mode) for p, t in pairs]
    assert batched == pytest.approx(expected, rel=1e-4, abs=1e-4)
    grouped = option_losses(model, tokenizer, ["Once upon a time", "Q?"], [[" there was a fox."], ["A", "B"]], 2,
                            prompt_format=fmt)
    assert grouped[0][0] == pytest.approx(expected[0], rel=1e-4)
    assert grouped[1][0] == pytest.approx(expected[1], rel=1e-4)
    assert len(grouped[1]) == 2


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("preset", FAMILIES)
def test_batched_greedy_matches_reference_decoding(preset, mode, tokenizer):
    model = tiny(preset, tokenizer)
    prompts = ["abc", "xyz", "The phone number is", "abd", "Hello"]
    outputs = greedy_generate(model, tokenizer, prompts, [6, 6, 4, 6, 5], batch_size=2,
                              prompt_format=PromptFormat(mode))
    assert outputs == [reference_greedy(model, tokenizer, p, n, mode) for p, n in zip(prompts, [6, 6, 4, 6, 5])]


def test_bad_arguments(tokenizer):
    model = tiny("transformer-tiny", tokenizer)
    with pytest.raises(ValueError, match="empty target"):
        target_losses(model, tokenizer, [("p", "")])
    with pytest.raises(ValueError, match="max_new_tokens"):
        greedy_generate(model, tokenizer, ["a", "b"], [3])
    with pytest.raises(ValueError, match="mode"):
        PromptFormat("bidirectional")
    with pytest.raises(ValueError, match="batch_size"):
        target_losses(model, tokenizer, [("p", "q")], batch_size=0)
