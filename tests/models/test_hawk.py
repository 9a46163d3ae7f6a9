"""Hawk's recurrent block, and the packing/prefix/decoding invariants of both recurrent families.

The invariant tests run on whole tiny models (``hawk-tiny`` and ``gated-ssm-tiny``, bidirectional layers
alternating as in the paper); the Hawk-specific tests check the mixer against a loop written from Griffin's
equations in float64.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from birdie import models
from birdie.models.config import ModelConfig
from birdie.models.hawk import HawkMixer, sqrt_bound_derivative
from birdie.models.mixer import SequenceInfo

RECURRENT_PRESETS = ["hawk-tiny", "gated-ssm-tiny"]
VOCAB = 96
# (length, prefix length) per packed segment: a short prefix-only one (shorter than Hawk's conv), a causal one.
LAYOUT = [(6, 3), (2, 2), (7, 0), (8, 4)]
PADDING = 3


def packed_batch(seed: int, layout=LAYOUT, padding: int = PADDING) -> dict[str, torch.Tensor]:
    """One packed row in the pipeline's batch format (docs/architecture.md)."""
    gen = torch.Generator().manual_seed(seed)
    length = sum(n for n, _ in layout) + padding
    segment_ids, positions, mask = [], [], []
    for index, (n, prefix) in enumerate(layout, start=1):
        segment_ids += [index] * n
        positions += list(range(n))
        mask += [1] * prefix + [0] * (n - prefix)
    segment_ids += [0] * padding
    positions += [0] * padding
    mask += [0] * padding
    as_row = lambda values: torch.tensor([values], dtype=torch.long)  # noqa: E731
    return {
        "input_ids": torch.randint(1, VOCAB, (1, length), generator=gen),
        "attention_mask": as_row(mask),
        "segment_ids": as_row(segment_ids),
        "position_ids": as_row(positions),
    }


def segment_slices(layout=LAYOUT) -> list[slice]:
    bounds, start = [], 0
    for n, _ in layout:
        bounds.append(slice(start, start + n))
        start += n
    return bounds


def tiny_model(preset: str, **overrides) -> models.LanguageModel:
    torch.manual_seed(0)
    return models.create(preset, vocab_size=VOCAB, **overrides)


def embedding_leaf(model: models.LanguageModel) -> list[torch.Tensor]:
    """Make the embedding output a leaf whose .grad shows which positions an output depends on."""
    captured: list[torch.Tensor] = []

    def hook(module, inputs, output):
        leaf = output.detach().requires_grad_(True)
        captured.append(leaf)
        return leaf

    model.tok_embeddings.register_forward_hook(hook)
    return captured


@pytest.mark.parametrize("preset", RECURRENT_PRESETS)
def test_packed_row_equals_segments_run_separately(preset):
    """Logits and parameter gradients of a packed row equal those of its segments as separate rows."""
    model = tiny_model(preset)
    batch = packed_batch(seed=1)
    labels = torch.randint(0, VOCAB, batch["input_ids"].shape, generator=torch.Generator().manual_seed(2))
    labels[batch["attention_mask"] == 1] = -100
    labels[batch["segment_ids"] == 0] = -100
    n_targets = int((labels != -100).sum())
    slices = segment_slices()

    def summed_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="sum") / n_targets

    logits, _ = model(**batch)
    summed_loss(logits, labels).backward()
    packed_grads = {name: p.grad.clone() for name, p in model.named_parameters()}
    model.zero_grad()

    separate_logits = []
    for part, (_, prefix) in zip(slices, LAYOUT):
        ids = batch["input_ids"][:, part]
        out, _ = model(input_ids=ids, attention_mask=(torch.arange(ids.shape[1]) < prefix).long()[None])
        summed_loss(out, labels[:, part]).backward()
        separate_logits.append(out.detach())
    valid = slice(0, slices[-1].stop)
    torch.testing.assert_close(logits[:, valid].detach(), torch.cat(separate_logits, dim=1), rtol=0, atol=1e-5)
    for name, p in model.named_parameters():
        torch.testing.assert_close(packed_grads[name], p.grad, rtol=0, atol=1e-5, msg=f"gradient of {name}")


@pytest.mark.parametrize("preset", RECURRENT_PRESETS)
@pytest.mark.parametrize("changed", range(len(LAYOUT)))
def test_changing_one_segment_changes_no_other_segment(preset, changed):
    """Other segments' logits stay bit-identical, and their outputs have exactly zero gradient into it."""
    model = tiny_model(preset)
    batch = packed_batch(seed=3)
    part = segment_slices()[changed]
    altered = dict(batch, input_ids=batch["input_ids"].clone())
    altered["input_ids"][:, part] = (altered["input_ids"][:, part] + 1) % VOCAB
    others = torch.ones(batch["input_ids"].shape[1], dtype=torch.bool)
    others[part] = False

    leaves = embedding_leaf(model)
    logits, _ = model(**batch)
    with torch.no_grad():
        altered_logits, _ = model(**altered)
    assert torch.equal(logits[:, others], altered_logits[:, others])
    assert not torch.equal(logits[:, part], altered_logits[:, part])
    logits[:, others].sum().backward()
    assert torch.count_nonzero(leaves[0].grad[:, part]) == 0


def _logits(model, batch, ids):
    with torch.no_grad():
        return model(**dict(batch, input_ids=ids))[0][0]


@pytest.mark.parametrize("preset", RECURRENT_PRESETS)
def test_prefix_sees_later_prefix_and_targets_never_see_later_positions(preset):
    model = tiny_model(preset)
    layout = [(12, 6)]
    batch = packed_batch(seed=4, layout=layout, padding=0)
    ids = batch["input_ids"]
    base = _logits(model, batch, ids)

    later_prefix = ids.clone()
    later_prefix[0, 4] = (later_prefix[0, 4] + 1) % VOCAB
    moved = _logits(model, batch, later_prefix)
    # Bidirectional layers: earlier prefix positions read the later prefix token ...
    assert (moved[:4] - base[:4]).abs().amax() > 1e-4
    later_target = ids.clone()
    later_target[0, 9] = (later_target[0, 9] + 1) % VOCAB
    moved = _logits(model, batch, later_target)
    # ... but no position reads a later target-region token, the prefix included.
    assert torch.equal(moved[:9], base[:9])

    causal = tiny_model(preset, bidirectional_layers="none")
    assert torch.equal(_logits(causal, batch, later_prefix)[:4], _logits(causal, batch, ids)[:4])


@pytest.mark.parametrize("preset", RECURRENT_PRESETS)
@pytest.mark.parametrize("layout", [LAYOUT, [(6, 3), (7, 0), (2, 1)]], ids=["long-last", "last-shorter-than-conv"])
def test_prefill_then_step_equals_parallel_forward(preset, layout):
    """Prefill a packed row, then decode its last segment: equals one pass over that segment, extended."""
    model = tiny_model(preset).double()
    batch = packed_batch(seed=5, layout=layout, padding=0)
    last = segment_slices(layout)[-1]
    continuation = torch.randint(1, VOCAB, (1, 5), generator=torch.Generator().manual_seed(6))
    full_ids = torch.cat((batch["input_ids"][:, last], continuation), dim=1)
    prefix = layout[-1][1]
    with torch.no_grad():
        want, _ = model(input_ids=full_ids, attention_mask=(torch.arange(full_ids.shape[1]) < prefix).long()[None])
        # The packed row's final state is the last segment's: earlier segments must not leak into the cache.
        _, states = model.hidden_states(batch["input_ids"], SequenceInfo.from_batch(**batch))
        got = []
        for offset in range(continuation.shape[1]):
            position = torch.tensor([last.stop - last.start + offset])
            step_logits, states = model.step(continuation[:, offset], position, states)
            got.append(step_logits)
    torch.testing.assert_close(torch.stack(got, dim=1), want[:, last.stop - last.start :], rtol=0, atol=1e-10)


@pytest.mark.parametrize("preset", RECURRENT_PRESETS)
def test_cached_greedy_generation_equals_recomputation(preset):
    model = tiny_model(preset)
    prompt = torch.randint(1, VOCAB, (2, 7), generator=torch.Generator().manual_seed(7))
    prefix_len = 4
    generated = model.generate(prompt, max_new_tokens=6, temperature=0.0, prefix_len=prefix_len)
    ids = prompt
    with torch.no_grad():
        for _ in range(6):
            mask = (torch.arange(ids.shape[1]) < prefix_len).long().expand(ids.shape[0], -1)
            next_token = model(input_ids=ids, attention_mask=mask)[0][:, -1].argmax(-1)
            ids = torch.cat((ids, next_token[:, None]), dim=1)
    assert torch.equal(generated, ids[:, prompt.shape[1] :])


@pytest.mark.slow
@pytest.mark.parametrize("preset", RECURRENT_PRESETS)
def test_tiny_preset_overfits_a_small_batch(preset):
    model = tiny_model(preset)
    gen = torch.Generator().manual_seed(8)
    ids = torch.randint(1, VOCAB, (4, 32), generator=gen)
    batch = {"input_ids": ids, "label_ids": ids.roll(-1, dims=1), "segment_ids": torch.ones_like(ids)}
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        _, loss = model(**batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.3 * losses[0]


def naive_hawk(mixer: HawkMixer, x: torch.Tensor, info: SequenceInfo) -> torch.Tensor:
    """Griffin's recurrent block for one row x (T, D), written from the equations with explicit loops."""
    seg, prefix = info.segment_ids[0].tolist(), info.prefix[0].tolist()
    length, width, n_forward = x.shape[0], mixer.width, mixer.n_forward
    u, gate = (x @ mixer.in_proj.weight.T + mixer.in_proj.bias).split(width, dim=-1)
    conv = torch.zeros(length, width, dtype=x.dtype)
    for t in range(length):
        conv[t] = mixer.conv_bias
        for lag in range(mixer.conv_width):
            if t - lag >= 0 and len(set(seg[t - lag : t + 1])) == 1:
                conv[t] += mixer.conv_weight[lag] * u[t - lag]
    recurrence_gate = torch.sigmoid(conv @ torch.block_diag(*mixer.gate_weight[0]) + mixer.gate_bias[:width])
    input_gate = torch.sigmoid(conv @ torch.block_diag(*mixer.gate_weight[1]) + mixer.gate_bias[width:])
    a = torch.sigmoid(-mixer.decay_param) ** (8 * recurrence_gate)  # the paper's a = sigma(Lambda)^(c r)
    scaled = torch.sqrt(1 - a**2) * input_gate * conv
    h = torch.zeros(length, width, dtype=x.dtype)
    forward = slice(0, n_forward)
    for t in range(length):
        starts = t == 0 or seg[t] != seg[t - 1]
        h[t, forward] = (input_gate * conv)[t, forward] if starts else a[t, forward] * h[t - 1, forward] + scaled[t, forward]
    backward = slice(n_forward, width)
    for t in reversed(range(length)):
        flows = t + 1 < length and prefix[t] and prefix[t + 1] and seg[t] == seg[t + 1]
        h[t, backward] = a[t, backward] * h[t + 1, backward] + scaled[t, backward] if flows else (input_gate * conv)[t, backward]
    return (F.gelu(gate, approximate="tanh") * h) @ mixer.out_proj.weight.T + mixer.out_proj.bias


@pytest.mark.parametrize("layer", [0, 1])
def test_hawk_mixer_matches_the_equations_on_packed_rows(layer):
    config = ModelConfig(family="hawk", vocab_size=VOCAB, d_model=12, n_layers=2, n_heads=2, state_dim=10,
                         bidirectional_layers="alternate")
    torch.manual_seed(9)
    mixer = HawkMixer(config, layer).double()
    assert mixer.n_reverse == (5 if layer == 0 else 0)
    with torch.no_grad():
        # Random biases (they start at zero) and a conv large enough that a cross-segment tap would show.
        for parameter in (mixer.conv_weight, mixer.conv_bias, mixer.gate_bias, mixer.in_proj.bias, mixer.out_proj.bias):
            parameter.normal_()
    batch = packed_batch(seed=10)
    info = SequenceInfo.from_batch(**batch)
    x = torch.randn(1, batch["input_ids"].shape[1], 12, dtype=torch.float64)
    with torch.no_grad():
        y, _ = mixer(x, info)
        torch.testing.assert_close(y[0], naive_hawk(mixer, x[0], info), rtol=0, atol=1e-12)


def test_sqrt_gradient_is_bounded_at_1000():
    x = torch.tensor([0.0, 1e-12, 0.25, 1.0], dtype=torch.float64, requires_grad=True)
    y = sqrt_bound_derivative(x)
    y.sum().backward()
    torch.testing.assert_close(y.detach(), x.detach().sqrt())
    torch.testing.assert_close(x.grad, torch.tensor([1000.0, 1000.0, 1.0, 0.5], dtype=torch.float64))


def test_base_decay_starts_in_griffin_range():
    config = ModelConfig(family="hawk", vocab_size=VOCAB, d_model=128, n_layers=2, n_heads=64, state_dim=4096)
    base = torch.exp(-F.softplus(HawkMixer(config, 0).decay_param.detach()))
    assert 0.9 - 1e-6 <= base.min() and base.max() <= 0.999 + 1e-6
    # The square of the base decay is uniform on [0.81, 0.998]: its mean sits in the middle.
    assert abs((base**2).mean().item() - (0.81 + 0.998) / 2) < 0.01


def test_gate_blocks_must_divide_the_width():
    config = ModelConfig(family="hawk", vocab_size=VOCAB, d_model=16, n_layers=2, n_heads=4, state_dim=10)
    with pytest.raises(ValueError, match="n_heads=4 to divide the recurrent width"):
        HawkMixer(config, 0)
