"""Reading a local Hugging Face model directory: its ``config.json`` as a birdie ``ModelConfig``, its weight
files, and its tokenizer.

Supported architectures are those birdie's Transformer computes exactly: Llama and Mistral (GQA, RoPE with
``linear``/``llama3`` scaling, tied or untied embeddings, Mistral's sliding window). Anything else is refused with
the field that differs, never converted approximately.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from birdie.models.config import ROPE_SCALINGS, ModelConfig
from birdie.tokenizers import HFTokenizer, Tokenizer

#: HF ``model_type`` -> its causal-LM class; the architectures ``convert from-hf`` accepts.
SUPPORTED = {"llama": "LlamaForCausalLM", "mistral": "MistralForCausalLM"}


def read_hf_config(source: Path) -> dict[str, Any]:
    """``source/config.json`` as a dict; raises when it is missing or names an unsupported architecture."""
    path = source / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: a Hugging Face model directory holds config.json")
    config = json.loads(path.read_text())
    kind = config.get("model_type")
    if kind not in SUPPORTED:
        supported = ", ".join(f"{k} ({v})" for k, v in SUPPORTED.items())
        raise ValueError(f"{path}: model_type {kind!r} (architectures {config.get('architectures')}) is not "
                         f"supported; convert from-hf supports {supported}")
    return config


def _rope(config: dict[str, Any], path: Path) -> tuple[float, dict[str, Any] | None]:
    """(rope theta, birdie ``rope_scaling``) from transformers 4's ``rope_theta``/``rope_scaling`` or 5's
    ``rope_parameters``."""
    params = dict(config.get("rope_parameters") or config.get("rope_scaling") or {})
    theta = float(params.get("rope_theta", config.get("rope_theta", 10_000.0)))
    kind = params.get("rope_type", params.get("type", "default"))
    if kind == "default":
        return theta, None
    if kind not in ROPE_SCALINGS:
        raise ValueError(f"{path}: RoPE scaling {kind!r} is not supported; supported: default, "
                         f"{', '.join(ROPE_SCALINGS)}")
    return theta, {"rope_type": kind, **{key: params.get(key) for key in ROPE_SCALINGS[kind]}}


def model_config_from_hf(config: dict[str, Any], vocab_size: int, path: Path) -> ModelConfig:
    """The birdie Transformer config equal to HF ``config`` (a Llama or Mistral ``config.json``), with
    ``vocab_size`` rows (the HF vocabulary plus birdie's special tokens)."""
    for flag in ("attention_bias", "mlp_bias"):
        if config.get(flag):
            raise ValueError(f"{path}: {flag}=true is not supported (birdie's Transformer has no biases)")
    if config.get("hidden_act", "silu") != "silu":
        raise ValueError(f"{path}: hidden_act={config['hidden_act']!r} is not supported; Llama/Mistral use 'silu'")
    theta, scaling = _rope(config, path)
    heads = config["num_attention_heads"]
    window = config.get("sliding_window") if config["model_type"] == "mistral" else None
    return ModelConfig(
        family="transformer",
        vocab_size=vocab_size,
        d_model=config["hidden_size"],
        n_layers=config["num_hidden_layers"],
        n_heads=heads,
        n_kv_heads=config.get("num_key_value_heads") or heads,
        head_dim=config.get("head_dim") or config["hidden_size"] // heads,
        mlp_hidden=config["intermediate_size"],
        norm="rmsnorm",
        norm_eps=float(config.get("rms_norm_eps", 1e-6)),
        rope_base=theta,
        rope_scaling=scaling,
        sliding_window=window,
        tie_embeddings=bool(config.get("tie_word_embeddings", False)),
        init_std=float(config.get("initializer_range", 0.02)),
        max_seq_len=int(config.get("max_position_embeddings", 2048)),
    )


def weight_files(source: Path) -> dict[str, Path]:
    """Tensor name -> the ``.safetensors`` file holding it (one file, or the shards of an index)."""
    index = source / "model.safetensors.index.json"
    if index.is_file():
        weight_map = json.loads(index.read_text()).get("weight_map")
        if not isinstance(weight_map, dict) or not weight_map:
            raise ValueError(f"{index}: no 'weight_map' of tensor names to shard files")
        missing = sorted({name for name in weight_map.values() if not (source / name).is_file()})
        if missing:
            raise FileNotFoundError(f"{index} lists shard(s) {missing} that are not in {source}; download them too")
        return {tensor: source / name for tensor, name in weight_map.items()}
    files = sorted(source.glob("*.safetensors"))
    if not files:
        pickled = sorted(p.name for p in source.glob("*.bin")) + sorted(p.name for p in source.glob("*.pt"))
        hint = (f" (it has {pickled}: birdie does not unpickle them; re-save the model with "
                "save_pretrained(..., safe_serialization=True))") if pickled else ""
        raise FileNotFoundError(f"{source} has no *.safetensors weight files{hint}")
    from safetensors import safe_open

    where: dict[str, Path] = {}
    for file in files:
        with safe_open(str(file), framework="pt") as handle:
            where.update({name: file for name in handle.keys()})
    return where


def load_source_tokenizer(source: Path) -> tuple[Tokenizer, int]:
    """The directory's tokenizer with birdie's specials added, and its own vocabulary size before them.

    ``tokenizer.json`` (HF ``tokenizers``) is preferred; otherwise ``tokenizer.model`` through ``sentencepiece``.
    Either way the model's own token ids are unchanged and the specials get new ids after them.
    """
    if (source / "tokenizer.json").is_file():
        from tokenizers import Tokenizer as RawTokenizer

        raw = RawTokenizer.from_file(str(source / "tokenizer.json"))
        own = raw.get_vocab_size(with_added_tokens=True)
        return HFTokenizer(raw), own
    if (source / "tokenizer.model").is_file():
        try:
            from birdie.tokenizers import SentencePieceTokenizer
            tokenizer = SentencePieceTokenizer.from_file(source / "tokenizer.model")
        except ImportError:
            raise ImportError(f"{source / 'tokenizer.model'} needs the sentencepiece package: "
                              "pip install 'birdie-lm[hf]'") from None
        return tokenizer, tokenizer.piece_count
    raise FileNotFoundError(f"{source} has no tokenizer.json or tokenizer.model; birdie needs the model's tokenizer")
