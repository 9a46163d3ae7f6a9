"""Presets, ``create``, the family registry and ``birdie models list``."""

from __future__ import annotations

import pytest
import torch

from birdie.cli import main
from birdie.models import count_parameters, create, preset_config, presets, registry
from birdie.models.cli import format_count

REQUIRED = ["transformer-1.4b", "hawk-1.4b", "gated-ssm-1.4b", "open_lm_11m", "open_lm_1b", "open_lm_7b",
            "linear_tiny", "linear_1b", "linear_7b", "transformer-tiny", "hawk-tiny", "gated-ssm-tiny", "supra-tiny"]


def test_required_presets_exist():
    assert set(REQUIRED) <= set(presets())


@pytest.mark.parametrize("name", ["transformer-tiny", "hawk-tiny", "gated-ssm-tiny", "supra-tiny"])
def test_tiny_presets_build_and_run(name):
    model = create(name)
    logits, loss = model(torch.randint(0, 512, (2, 16)), label_ids=torch.randint(0, 512, (2, 16)))
    assert logits.shape == (2, 16, 512) and torch.isfinite(loss)
    assert count_parameters(model.config) == model.num_parameters()


def test_overrides_apply_and_are_validated():
    model = create("transformer-tiny", vocab_size=1000, n_layers=3)
    assert model.config.vocab_size == 1000 and len(model.layers) == 3
    assert model.output.out_features == 1000
    with pytest.raises(TypeError, match="no field"):
        create("transformer-tiny", layers=3)
    with pytest.raises(ValueError, match="n_layers=0"):
        create("transformer-tiny", n_layers=0)


def test_unknown_preset_and_family_fail_clearly(monkeypatch):
    with pytest.raises(ValueError, match="unknown model preset 'gpt-5'.*transformer-tiny"):
        create("gpt-5")
    with pytest.raises(ValueError, match="unknown model family 'mamba'"):
        create("transformer-tiny", family="mamba")
    monkeypatch.setitem(registry.BUILTIN_FAMILIES, "rwkv", "birdie.models.rwkv_not_written")
    with pytest.raises(ValueError, match="'rwkv' is not available"):
        registry.get_family("rwkv")


def test_parameter_counts_match_upstream_configs():
    # open_lm's table (models.md §2.1) and SUPRA's Mistral count: 7,241,732,096 + 32 * (4096^2 + 4096 + 1024^2 + 1024).
    assert round(count_parameters(preset_config("open_lm_1b")) / 1e9, 2) == 1.44
    assert round(count_parameters(preset_config("open_lm_160m")) / 1e6) == 162
    assert round(count_parameters(preset_config("linear_tiny")) / 1e6, 1) == 31.3
    new_supra_weights = 32 * (4096**2 + 4096 + 1024**2 + 1024)
    assert count_parameters(preset_config("mistral_7b_linear")) == 7_241_732_096 + new_supra_weights


def test_register_family_refuses_a_second_mixer_under_a_taken_name():
    family = registry.get_family("transformer")
    assert registry.register_family("transformer", family.mixer, has_mlp=True) == family
    with pytest.raises(ValueError, match="already registered"):
        registry.register_family("transformer", object, has_mlp=True)


def test_models_list_prints_every_preset_with_its_count(capsys):
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert set(lines) == set(presets())
    assert lines["open_lm_1b"].endswith("1.44B")
    assert lines["mistral_7b_linear"].endswith("7.81B")


@pytest.mark.parametrize("count, text", [(1_439_795_200, "1.44B"), (11_010_000, "11M"), (172_352, "172K"),
                                         (123_456_789_000, "123B"), (999, "999")])
def test_parameter_counts_print_with_three_significant_digits(count, text):
    assert format_count(count) == text
