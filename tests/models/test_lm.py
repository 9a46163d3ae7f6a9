"""The shell's contract: packing without leakage for every family, the loss, batch defaults and validation."""

from __future__ import annotations

import functools

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import family_checks as checks
from birdie.models import LanguageModel, ModelConfig, SequenceInfo, create, language_model_loss, register_family
from birdie.models.transformer import Attention

FAMILIES = checks.families()


@pytest.mark.parametrize("family", FAMILIES)
def test_packed_row_equals_segments_run_separately(family):
    checks.check_packed_equals_separate(checks.tiny_model(family))


@functools.lru_cache(maxsize=None)
def _shared_model(family: str) -> LanguageModel:
    """One model per family for the property test (hypothesis calls the test many times)."""
    return checks.tiny_model(family)


@st.composite
def layouts(draw):
    lengths = draw(st.lists(st.integers(1, 20), min_size=1, max_size=4))
    prefix_lens = [draw(st.integers(0, length)) for length in lengths]
    return tuple(lengths), tuple(prefix_lens), draw(st.integers(0, 5))


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
@settings(max_examples=8, deadline=None)
@given(layout=layouts())
def test_packing_is_exact_for_random_layouts(family, layout):
    lengths, prefix_lens, padding = layout
    checks.check_packed_equals_separate(_shared_model(family), lengths, prefix_lens, padding)


@pytest.mark.parametrize("family", FAMILIES)
def test_changing_one_segment_changes_no_other(family):
    checks.check_segments_isolated(checks.tiny_model(family))


@pytest.mark.parametrize("family", FAMILIES)
def test_prefix_visibility(family):
    checks.check_prefix_visibility(checks.tiny_model(family))


@pytest.mark.parametrize("family", [f for f in FAMILIES if f != "supra"])
def test_causal_variant_keeps_prefix_causal(family):
    checks.check_prefix_visibility(checks.tiny_model(family, bidirectional_layers="none"))


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_tiny_preset_overfits_a_batch(family):
    first, last = checks.check_overfits(checks.tiny_model(family), steps=40)
    assert last < first


class _LeakyAttention(Attention):
    """Attention that ignores segments and the prefix: the checks must catch it."""

    def forward(self, x, info):
        q, k, v = self._project(x, info.position_ids)
        return self.out_proj(self._attend(q, k, v, None, is_causal=True)), (k, v)


class _PeekingAttention(Attention):
    """Attention that lets every position see one token ahead: a target-leak the checks must catch."""

    def forward(self, x, info):
        q, k, v = self._project(x, info.position_ids)
        length = x.shape[1]
        index = torch.arange(length)
        mask = (index[None, :] <= index[:, None] + 1)[None, None]
        return self.out_proj(self._attend(q, k, v, mask, is_causal=False)), (k, v)


def test_checks_catch_leaky_families():
    register_family("test-leaky", _LeakyAttention, has_mlp=True)
    register_family("test-peeking", _PeekingAttention, has_mlp=True)
    leaky = checks.tiny_config("transformer").replace(family="test-leaky")
    peeking = checks.tiny_config("transformer").replace(family="test-peeking")
    for check in (checks.check_packed_equals_separate, checks.check_segments_isolated):
        with pytest.raises(AssertionError):
            check(LanguageModel(leaky))
    for config in (leaky, peeking):
        with pytest.raises(AssertionError):
            checks.check_prefix_visibility(LanguageModel(config))


def test_loss_is_mean_cross_entropy_over_labelled_positions():
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 11)
    labels = torch.tensor([[1, -100, 3, 4, -100], [-100, -100, 7, 0, 10]])
    keep = labels != -100
    expected = F.cross_entropy(logits[keep], labels[keep])
    assert torch.allclose(language_model_loss(logits, labels), expected)
    lse = torch.logsumexp(logits[keep], dim=-1)
    with_z = language_model_loss(logits, labels, z_loss=1e-2)
    assert torch.allclose(with_z, expected + 1e-2 * (lse**2).mean())


def test_batch_without_targets_gives_zero_loss_with_a_graph():
    logits = torch.randn(1, 4, 7, requires_grad=True)
    loss = language_model_loss(logits, torch.full((1, 4), -100))
    loss.backward()
    assert loss.item() == 0.0 and torch.equal(logits.grad, torch.zeros_like(logits))


def test_forward_loss_uses_aligned_labels_without_shift():
    model = create("transformer-tiny")
    ids = torch.randint(0, 512, (2, 9))
    labels = torch.randint(0, 512, (2, 9))
    labels[:, :3] = -100
    logits, loss = model(input_ids=ids, label_ids=labels)
    assert torch.allclose(loss, F.cross_entropy(logits[:, 3:].reshape(-1, 512), labels[:, 3:].reshape(-1)))
    assert model(ids)[1] is None


def test_absent_masks_mean_one_causal_segment():
    model = create("transformer-tiny")
    ids = torch.randint(0, 512, (2, 10))
    explicit = dict(attention_mask=torch.zeros_like(ids), segment_ids=torch.ones_like(ids),
                    position_ids=torch.arange(10).expand(2, 10))
    assert torch.equal(model(ids)[0], model(ids, **explicit)[0])


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(1, 6), min_size=1, max_size=5))
def test_positions_restart_at_every_segment(lengths):
    segments = torch.cat([torch.full((n,), i + 1) for i, n in enumerate(lengths)])[None]
    positions = torch.cat([torch.arange(n) for n in lengths])[None]
    info = SequenceInfo.from_batch(torch.zeros_like(segments), segment_ids=segments)
    assert torch.equal(info.position_ids, positions)
    starts = torch.zeros_like(segments, dtype=torch.bool)
    starts[0, positions[0] == 0] = True
    assert torch.equal(info.segment_start, starts)
    assert torch.equal(info.segment_end[0], torch.roll(starts[0], -1))


def test_repeated_segment_id_later_in_a_row_is_a_separate_run():
    info = SequenceInfo.from_batch(torch.zeros(1, 6, dtype=torch.long),
                                   segment_ids=torch.tensor([[1, 1, 2, 2, 1, 1]]))
    assert info.segment_runs.tolist() == [[1, 1, 2, 2, 3, 3]]


def test_bad_batches_fail_with_clear_errors():
    model = create("transformer-tiny")
    ids = torch.randint(0, 512, (2, 6))
    with pytest.raises(ValueError, match="segment_ids has shape"):
        model(ids, segment_ids=torch.ones(2, 5, dtype=torch.long))
    with pytest.raises(ValueError, match="label_ids has shape"):
        model(ids, label_ids=torch.ones(2, 5, dtype=torch.long))
    with pytest.raises(ValueError, match=r"outside the model's vocabulary \[0, 512\)"):
        model(ids, label_ids=torch.full((2, 6), -1))
    with pytest.raises(ValueError, match="vocab_size is 512"):
        model(torch.full((1, 3), 600))
    with pytest.raises(TypeError, match="int64 or int32"):
        model(ids.float())
    with pytest.raises(ValueError, match=r"\(batch, length\)"):
        model(ids[0])


def test_tied_embeddings_share_one_tensor():
    model = create("transformer-tiny", tie_embeddings=True)
    assert model.output.weight is model.tok_embeddings.weight
    untied = create("transformer-tiny")
    assert untied.num_parameters() - model.num_parameters() == 512 * 64


def test_open_lm_module_names():
    keys = set(create("transformer-tiny").state_dict())
    for key in ("tok_embeddings.weight", "layers.0.attention.in_proj.weight", "layers.0.attention.out_proj.weight",
                "layers.0.attention_norm.weight", "layers.0.ffn_norm.weight", "layers.1.feed_forward.w12.weight",
                "layers.1.feed_forward.w3.weight", "norm.weight", "output.weight"):
        assert key in keys


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("d_model", 0, "d_model=0 must be a positive integer"),
        ("n_kv_heads", 3, "n_kv_heads=3 must divide n_heads=4"),
        ("norm", "batchnorm", "norm='batchnorm' must be one of"),
        ("bidirectional_layers", "sometimes", "bidirectional_layers='sometimes'"),
        ("bidirectional_layers", (0, 7), r"has \[7\], not layer indices in \[0, 2\)"),
        ("z_loss", -1.0, "z_loss=-1.0 must be >= 0"),
        ("d_model", 66, "d_model=66 is not divisible by n_heads=4"),
    ],
)
def test_config_rejects_bad_values(field, value, message):
    with pytest.raises(ValueError, match=message):
        checks.tiny_config("transformer", **{field: value})


def test_config_round_trips_and_rejects_unknown_keys():
    config = checks.tiny_config("hawk", bidirectional_layers=(1, 0))
    assert config.bidirectional_layers == (0, 1)
    assert ModelConfig.from_dict(config.to_dict()) == config
    with pytest.raises(TypeError, match="unknown key"):
        ModelConfig.from_dict({**config.to_dict(), "n_layer": 3})
    with pytest.raises(TypeError, match="no field"):
        config.replace(layers=3)


@pytest.mark.parametrize("pattern, expected", [("none", [False] * 4), ("all", [True] * 4),
                                               ("alternate", [True, False, True, False]),
                                               ((1, 2), [False, True, True, False])])
def test_bidirectional_layer_patterns(pattern, expected):
    config = checks.tiny_config("transformer", n_layers=4, bidirectional_layers=pattern)
    assert [config.is_bidirectional(i) for i in range(4)] == expected
