"""Every linear (SUPRA) preset matches linear_open_lm's ``open_lm/model_configs/*.json`` (models.md §1.10)."""

from __future__ import annotations

import pytest

from birdie.models import count_parameters, preset_config

# name: (dim, n_layers, n_heads, n_heads_kv, intermediate_dim_ffn, vocab_size, seq_len, norm_type, qk_norm)
UPSTREAM = {
    "linear_tiny": (256, 6, 8, 8, 768, 50432, 2048, "gain_only_lp_layer_norm", True),
    "linear_1b": (2048, 24, 16, 16, 5632, 50432, 2048, "gain_only_lp_layer_norm", True),
    "linear_7b": (4096, 32, 32, 32, 11008, 50432, 2048, "gain_only_lp_layer_norm", False),
    "mistral_7b_linear": (4096, 32, 32, 8, 14336, 32000, 2048, "rms_norm", False),
    "llama2_7b_linear": (4096, 32, 32, 32, 11008, 32000, 2048, "rms_norm", False),
}
NORMS = {"gain_only_lp_layer_norm": "layernorm", "rms_norm": "rmsnorm"}


@pytest.mark.parametrize("name", sorted(UPSTREAM))
def test_linear_preset_matches_upstream_config(name):
    dim, layers, heads, kv_heads, ffn, vocab, seq, norm, qk_norm = UPSTREAM[name]
    config = preset_config(name)
    assert (config.family, config.d_model, config.n_layers, config.n_heads, config.kv_heads) == \
        ("supra", dim, layers, heads, kv_heads)
    assert (config.mlp_width, config.vocab_size, config.max_seq_len) == (ffn, vocab, seq)
    assert (config.norm, config.norm_eps, config.qk_norm) == (NORMS[norm], 1e-5, qk_norm)
    # use_decay true, use_retnet_slopes false, decay_start null; rotary base 10k, qk/v head dim = dim / heads;
    # weight_tying false.
    assert (config.decay, config.rope_base, config.head_size, config.tie_embeddings) == \
        ("alibi", 10_000.0, dim // heads, False)


def test_llama2_7b_linear_is_llama2_7b_plus_the_supra_feature_maps():
    llama2_7b = 6_738_415_616  # Meta's Llama-2-7B parameter count
    assert count_parameters(preset_config("llama2_7b_linear")) == llama2_7b + 32 * (4096**2 + 4096)
