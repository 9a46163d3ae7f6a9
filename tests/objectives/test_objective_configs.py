"""Config validation, the registry, named mixtures and user mixtures."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from birdie.objectives import (
    MIXTURES,
    OBJECTIVE_CONFIG_BY_NAME,
    AutoencodingWithDeshuffling,
    Copying,
    Infilling,
    PrefixLanguageModeling,
    SelectiveCopying,
    class_probabilities,
    make_objective,
    mixture_probabilities,
    resolve_mixture,
)
from birdie.tokenizers import OBJECTIVE_NAMES


@pytest.mark.parametrize("entry,message", [
    ({"name": "infilling", "corruption_rate": 1.5}, "Infilling.corruption_rate=1.5 must be in (0, 1)"),
    ({"name": "infilling", "mean_span_length": 0.5}, "Infilling.mean_span_length=0.5 must be >= 1"),
    ({"name": "autoencoding", "corruption_rate": 0.0}, "Autoencoding.corruption_rate=0.0 must be in (0, 1)"),
    ({"name": "copying", "length": (256, 128)}, "Copying.length=(256, 128) must be a pair of integers"),
    ({"name": "copying", "length": (0, 10)}, "with 1 <= lo <= hi"),
    ({"name": "copying", "length": "long"}, "Copying.length='long'"),
    ({"name": "deshuffling", "shuffle_fraction": 0}, "Deshuffling.shuffle_fraction=0 must be in (0, 1]"),
    ({"name": "prefix_language_modeling", "prefix_fraction": 1.0}, "prefix_fraction=1.0 must be in (0, 1)"),
    ({"name": "prefix_language_modeling", "min_suffix_length": 0}, "min_suffix_length=0 must be >= 1"),
    ({"name": "selective_copying", "num_spans": (0, 4)}, "SelectiveCopying.num_spans=(0, 4)"),
    ({"name": "selective_copying", "format": "sideways"}, "must be one of 'query_context', 'context_query'"),
    ({"name": "selective_copying", "delimiter_length": (3, 1)}, "delimiter_length=(3, 1)"),
    ({"name": "next_token_prediction", "prob": -1}, "NextTokenPrediction.prob=-1 must be a finite number > 0"),
    ({"name": "next_token_prediction", "paradigm": "front"}, "must be one of 'prepend', 'append', 'random'"),
    ({"name": "next_token_prediction", "paradigm_append_prob": 2}, "paradigm_append_prob=2 must be in [0, 1]"),
])
def test_bad_fields_raise_clear_errors(entry, message):
    with pytest.raises(ValueError) as error:
        make_objective(entry)
    assert message in str(error.value)


def test_unknown_names_and_parameters_list_the_valid_ones():
    with pytest.raises(ValueError, match="unknown objective 'infill'; valid names: next_token_prediction"):
        make_objective({"name": "infill"})
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) rate for objective 'infilling'; valid: .*corruption_rate"):
        make_objective({"name": "infilling", "rate": 0.1})
    with pytest.raises(ValueError, match="upstream birdie names: use mean_tokens_per_span -> mean_span_length"):
        make_objective({"name": "infilling", "mean_tokens_per_span": 3})
    with pytest.raises(ValueError, match="has no 'name'"):
        make_objective({"prob": 1.0})
    with pytest.raises(ValueError, match="unknown mixture 'birdy'; valid names: birdie, ul2, ul2_decoder, ntp"):
        resolve_mixture("birdy")
    with pytest.raises(ValueError, match="at least one objective"):
        resolve_mixture([])


def test_registry_uses_the_seed_names_and_lists_from_yaml_become_tuples():
    assert list(OBJECTIVE_CONFIG_BY_NAME) == list(OBJECTIVE_NAMES)
    config = make_objective({"name": "selective_copying", "num_spans": 2, "length": [384, 768]})
    assert config.num_spans == (2, 2) and config.length == (384, 768)
    assert config.key == "selective_copying_n2_random_l384-768"


def test_birdie_mixture_is_the_papers_action_space():
    configs = resolve_mixture("birdie")
    per_class = Counter(c.objective_class for c in configs)
    assert per_class == {"autoencoding": 54, "infilling": 26, "selective_copying": 16, "deshuffling": 4,
                         "copying": 2, "next_token_prediction": 1, "prefix_language_modeling": 1}
    assert sum(isinstance(c, AutoencodingWithDeshuffling) for c in configs) == 27
    assert np.isclose(sum(c.prob for c in configs), 1.0)
    assert np.allclose(list(class_probabilities(configs).values()), 1 / 7)
    for cls, count in per_class.items():
        assert np.allclose([c.prob for c in configs if c.objective_class == cls], 1 / 7 / count)
    keys = [c.key for c in configs]
    assert len(set(keys)) == 104
    assert "infilling_r0.15_s3_l128-256" in keys and "infilling_r0.05_s32_l128-256" not in keys
    assert not any(k.startswith("infilling_r") and "_s3_" in k and "l128-256" not in k for k in keys)


def test_ul2_mixtures_weights():
    ul2 = resolve_mixture("ul2")
    assert [round(c.prob, 6) for c in ul2] == [0.2, 0.2, 0.1, 0.1, 0.1, 0.1, 0.2]
    assert isinstance(ul2[-1], PrefixLanguageModeling) and ul2[-1].prefix_fraction == 0.75
    assert [(c.corruption_rate, c.mean_span_length) for c in ul2[:6]] == [
        (0.15, 3.0), (0.15, 8.0), (0.5, 3.0), (0.5, 8.0), (0.15, 64.0), (0.5, 64.0)]
    decoder = resolve_mixture("ul2_decoder")
    assert class_probabilities(decoder) == pytest.approx(
        {"next_token_prediction": 0.6, "prefix_language_modeling": 0.2, "infilling": 0.2})
    assert [c.name for c in resolve_mixture("ntp")] == ["next_token_prediction"]
    assert set(MIXTURES) == {"birdie", "ul2", "ul2_decoder", "ntp"}


def test_user_mixture_entries_and_configs_are_normalised():
    configs = resolve_mixture([
        {"name": "infilling", "prob": 3, "corruption_rate": 0.5, "mean_span_length": 8},
        {"name": "copying"},
        PrefixLanguageModeling(prob=1.0),
    ])
    assert isinstance(configs[0], Infilling) and isinstance(configs[1], Copying)
    assert [c.prob for c in configs] == pytest.approx([0.6, 0.2, 0.2])
    assert mixture_probabilities(configs) == pytest.approx([0.6, 0.2, 0.2])
    assert configs[0].key == "infilling_r0.5_s8_l128-256"
    with pytest.raises(ValueError, match="more than once: copying_l128-256"):
        resolve_mixture([{"name": "copying"}, {"name": "copying", "prob": 2}])


def test_keys_name_non_default_fields():
    assert SelectiveCopying(span_length=(8, 16)).key == "selective_copying_n1-4_random_l384-768_span_length=8-16"
    assert Copying(length=None, paradigm="none").key == "copying_lauto_paradigm=none"
