"""Reusable checks of the model contract, run for every registered family.

Each ``check_*`` takes a freshly built model and raises ``AssertionError`` with a precise message when the family
breaks the contract: packing without leakage, prefix-LM visibility, parallel form == step-by-step decoding,
cached generation == recomputation, and a tiny preset overfitting a batch. A new family gets all of them by
registering itself and (optionally) adding a ``<family>-tiny`` preset.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor

from birdie.models import LanguageModel, ModelConfig, SequenceInfo, available_families, create, presets

TOLERANCE = 1e-5


def families() -> list[str]:
    """Every family that can be built in this checkout (built-ins whose module exists, plus registered ones)."""
    return available_families()


def tiny_config(family: str, **overrides) -> ModelConfig:
    """The family's ``<family>-tiny`` preset, or a generic small config for families without one."""
    name = f"{family.replace('_', '-')}-tiny"
    config = presets().get(name)
    if config is None:
        config = ModelConfig(family=family, vocab_size=512, d_model=64, n_layers=2, n_heads=4,
                             bidirectional_layers="alternate")
    return config.replace(**overrides) if overrides else config


def tiny_model(family: str, seed: int = 0, **overrides) -> LanguageModel:
    torch.manual_seed(seed)
    return create(tiny_config(family, **overrides))


@dataclasses.dataclass
class Example:
    ids: Tensor  # (L,)
    prefix_len: int


def random_examples(vocab_size: int, lengths: list[int], prefix_lens: list[int], seed: int = 1) -> list[Example]:
    generator = torch.Generator().manual_seed(seed)
    return [Example(torch.randint(0, vocab_size, (length,), generator=generator), prefix)
            for length, prefix in zip(lengths, prefix_lens)]


def pack(examples: list[Example], row_length: int, pad_id: int = 0) -> dict[str, Tensor]:
    """One packed row in the pipeline's batch format (segments 1..k, then padding)."""
    used = sum(len(example.ids) for example in examples)
    assert used <= row_length, "examples do not fit the row"
    ids, mask, segments, positions = [], [], [], []
    for index, example in enumerate(examples, start=1):
        length = len(example.ids)
        ids.append(example.ids)
        mask.append((torch.arange(length) < example.prefix_len).long())
        segments.append(torch.full((length,), index))
        positions.append(torch.arange(length))
    padding = row_length - used
    ids.append(torch.full((padding,), pad_id))
    for part in (mask, segments, positions):
        part.append(torch.zeros(padding, dtype=torch.long))
    row = [torch.cat(part)[None] for part in (ids, mask, segments, positions)]
    return dict(zip(("input_ids", "attention_mask", "segment_ids", "position_ids"), row))


def _alone(example: Example) -> dict[str, Tensor]:
    mask = (torch.arange(len(example.ids)) < example.prefix_len).long()
    return {"input_ids": example.ids[None], "attention_mask": mask[None]}


def _parameter_grads(model: LanguageModel) -> dict[str, Tensor]:
    return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


def check_packed_equals_separate(
    model: LanguageModel, lengths: tuple[int, ...] = (13, 7, 21, 1), prefix_lens: tuple[int, ...] = (5, 0, 9, 1),
    padding: int = 6,
) -> None:
    """A packed row gives each segment the logits and parameter gradients it gets when run alone."""
    vocab = model.config.vocab_size
    examples = random_examples(vocab, list(lengths), list(prefix_lens))
    row_length = sum(lengths) + padding
    batch = pack(examples, row_length=row_length)
    weights = torch.randn(1, row_length, vocab, generator=torch.Generator().manual_seed(2))

    model.zero_grad()
    packed_logits, _ = model(**batch)
    real = (batch["segment_ids"] > 0)[..., None]
    (packed_logits * weights * real).sum().backward()
    packed_grads = _parameter_grads(model)

    model.zero_grad()
    start = 0
    for index, example in enumerate(examples, start=1):
        logits, _ = model(**_alone(example))
        stop = start + len(example.ids)
        difference = (logits - packed_logits[:, start:stop]).abs().max().item()
        assert difference <= TOLERANCE, f"segment {index}: packed logits differ from the segment alone by {difference}"
        (logits * weights[:, start:stop]).sum().backward()
        start = stop
    for name, grad in _parameter_grads(model).items():
        difference = (grad - packed_grads[name]).abs().max().item()
        scale = max(1.0, grad.abs().max().item())
        assert difference <= TOLERANCE * scale, f"gradient of {name}: packed vs separate differ by {difference}"


@torch.no_grad()
def check_segments_isolated(model: LanguageModel) -> None:
    """Changing every token of one segment leaves every other segment's logits bit-for-bit unchanged."""
    vocab = model.config.vocab_size
    examples = random_examples(vocab, [9, 14, 6, 11], [3, 6, 0, 11])
    batch = pack(examples, row_length=44)
    base, _ = model(**batch)
    boundaries = torch.tensor([0] + [len(example.ids) for example in examples]).cumsum(0)
    for changed in range(len(examples)):
        altered = dict(batch)
        ids = batch["input_ids"].clone()
        lo, hi = boundaries[changed].item(), boundaries[changed + 1].item()
        ids[0, lo:hi] = (ids[0, lo:hi] + 1 + torch.arange(hi - lo)) % vocab
        altered["input_ids"] = ids
        logits, _ = model(**altered)
        outside = torch.ones(batch["input_ids"].shape[1], dtype=torch.bool)
        outside[lo:hi] = False
        assert torch.equal(logits[0, outside], base[0, outside]), f"changing segment {changed + 1} leaked elsewhere"
        assert not torch.equal(logits[0, lo:hi], base[0, lo:hi]), "the changed segment's own logits did not change"


@torch.no_grad()
def check_prefix_visibility(model: LanguageModel) -> None:
    """Targets never see later tokens; prefix positions see later prefix tokens iff some layer is bidirectional."""
    vocab, prefix_len, length = model.config.vocab_size, 8, 20
    ids = torch.randint(0, vocab, (2, length), generator=torch.Generator().manual_seed(3))
    mask = (torch.arange(length) < prefix_len).long().expand(2, length)
    base, _ = model(ids, attention_mask=mask)
    for position in (prefix_len, prefix_len + 5, length - 1):
        altered = ids.clone()
        altered[:, position] = (altered[:, position] + 1) % vocab
        logits, _ = model(altered, attention_mask=mask)
        assert torch.equal(logits[:, :position], base[:, :position]), (
            f"changing target position {position} changed earlier positions"
        )
    altered = ids.clone()
    altered[:, prefix_len - 1] = (altered[:, prefix_len - 1] + 1) % vocab
    logits, _ = model(altered, attention_mask=mask)
    sees_later_prefix = not torch.equal(logits[:, : prefix_len - 1], base[:, : prefix_len - 1])
    bidirectional = any(model.config.is_bidirectional(layer) for layer in range(model.config.n_layers))
    assert sees_later_prefix == bidirectional, (
        f"prefix positions {'see' if sees_later_prefix else 'do not see'} the last prefix token, but the model "
        f"{'has' if bidirectional else 'has no'} bidirectional layers"
    )


@torch.no_grad()
def check_step_equals_forward(model: LanguageModel, prefix_len: int = 6, prefill: int = 9, length: int = 24) -> None:
    """Prefill in the parallel form, then one ``step`` per token, equals one forward over the whole sequence."""
    ids = torch.randint(0, model.config.vocab_size, (2, length), generator=torch.Generator().manual_seed(4))
    mask = (torch.arange(length) < prefix_len).long().expand(2, length)
    full, _ = model(ids, attention_mask=mask)
    info = SequenceInfo.single(2, prefill, ids.device, prefix_len=prefix_len)
    _, states = model.hidden_states(ids[:, :prefill], info)
    for position in range(prefill, length):
        logits, states = model.step(ids[:, position], torch.full((2,), position), states)
        difference = (logits - full[:, position]).abs().max().item()
        assert difference <= TOLERANCE, f"step at position {position} differs from the parallel form by {difference}"


@torch.no_grad()
def check_step_leaves_state_unchanged(model: LanguageModel, length: int = 10) -> None:
    """``step`` returns a new state and never modifies the one it was given, so a prefilled context can be reused
    for several continuations (the harness relies on it)."""
    ids = torch.randint(0, model.config.vocab_size, (2, length), generator=torch.Generator().manual_seed(6))
    _, states = model.hidden_states(ids, SequenceInfo.single(2, length, ids.device, prefix_len=3))
    position = torch.full((2,), length)
    first, _ = model.step(ids[:, 0], position, states)
    model.step(ids[:, 1], position, states)
    again, _ = model.step(ids[:, 0], position, states)
    assert torch.equal(first, again), "step modified the state it was given"


@torch.no_grad()
def check_generation_matches_recompute(model: LanguageModel, prefix_len: int = 5, new_tokens: int = 12) -> None:
    """Greedy generation with the cache produces what re-running the full model for every token produces."""
    prompt = torch.randint(0, model.config.vocab_size, (2, 8), generator=torch.Generator().manual_seed(5))
    cached = model.generate(prompt, new_tokens, temperature=0.0, prefix_len=prefix_len)
    sequence = prompt
    for _ in range(new_tokens):
        mask = (torch.arange(sequence.shape[1]) < prefix_len).long().expand_as(sequence)
        logits, _ = model(sequence, attention_mask=mask)
        sequence = torch.cat((sequence, logits[:, -1].argmax(-1, keepdim=True)), dim=1)
    assert torch.equal(cached, sequence[:, prompt.shape[1]:]), f"cached {cached.tolist()} != recomputed"


def check_overfits(model: LanguageModel, steps: int = 60) -> tuple[float, float]:
    """A few Adam steps on one small batch drive the loss well below its start; returns (first, last) loss."""
    torch.manual_seed(0)
    ids = torch.randint(0, model.config.vocab_size, (4, 33))
    batch = {"input_ids": ids[:, :-1], "label_ids": ids[:, 1:]}
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(steps):
        _, loss = model(**batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.25 * losses[0], f"loss only went from {losses[0]:.3f} to {losses[-1]:.3f}"
    return losses[0], losses[-1]
