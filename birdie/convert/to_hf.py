"""``birdie convert to-hf SRC OUT``: a birdie export as a Hugging Face directory.

A causal RMSNorm/SwiGLU Transformer is written natively as ``LlamaForCausalLM`` (``MistralForCausalLM`` with a
sliding window): weights are streamed and renamed (``in_proj`` split into q/k/v, ``w12`` into gate/up). Every
other model -- Hawk, Gated SSM, SUPRA, a prefix-LM Transformer -- keeps birdie's weight file unchanged and gets
``modeling_birdie.py`` (torch + transformers only), loaded with ``trust_remote_code=True``.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch

from birdie.convert.hf_tokenizer_files import hf_tokenizer_json, write_hf_tokenizer
from birdie.convert.safetensors_stream import ShardedReader, StreamingWriter
from birdie.models.config import ModelConfig
from birdie.models.registry import get_family
from birdie.tokenizers import Tokenizer, load_tokenizer
from birdie.train.export import MODEL_CONFIG, TOKENIZER, WEIGHTS

REMOTE_CODE = Path(__file__).parent / "hf_remote" / "modeling_birdie.py"


@dataclass(frozen=True)
class HFExport:
    """What ``to-hf`` wrote: the directory, its architecture and whether it needs ``trust_remote_code``."""

    out: Path
    architecture: str
    remote_code: bool


def is_native(config: ModelConfig) -> bool:
    """Whether ``config`` is exactly a Llama/Mistral model: a causal Transformer with RMSNorm and SwiGLU."""
    causal = config.bidirectional_layers in ("none", ())
    return config.family == "transformer" and config.norm == "rmsnorm" and config.mlp_activation == "silu" and causal


def _token_ids(tokenizer: Tokenizer) -> dict[str, int]:
    specials = tokenizer.specials
    return {"bos_token_id": specials.bos, "eos_token_id": specials.eos, "pad_token_id": specials.pad}


def _llama_config(config: ModelConfig, tokenizer: Tokenizer, dtype: torch.dtype) -> dict:
    mistral = config.sliding_window is not None
    out = {
        "architectures": ["MistralForCausalLM" if mistral else "LlamaForCausalLM"],
        "model_type": "mistral" if mistral else "llama",
        "vocab_size": config.vocab_size, "hidden_size": config.d_model, "intermediate_size": config.mlp_width,
        "num_hidden_layers": config.n_layers, "num_attention_heads": config.n_heads,
        "num_key_value_heads": config.kv_heads, "head_dim": config.head_size, "hidden_act": "silu",
        "rms_norm_eps": config.norm_eps, "rope_theta": config.rope_base, "rope_scaling": config.rope_scaling,
        "max_position_embeddings": config.max_seq_len, "tie_word_embeddings": config.tie_embeddings,
        "initializer_range": config.init_std, "torch_dtype": str(dtype).removeprefix("torch."),
        "attention_bias": False, "mlp_bias": False, **_token_ids(tokenizer),
    }
    if mistral:
        out["sliding_window"] = config.sliding_window
    return out


def _llama_tensors(reader: ShardedReader, config: ModelConfig) -> Iterator[tuple[str, torch.Tensor]]:
    """HF Llama tensors in plan order, one birdie tensor read at a time."""
    q_width, kv_width = config.n_heads * config.head_size, config.kv_heads * config.head_size
    yield "model.embed_tokens.weight", reader.get("tok_embeddings.weight")
    for layer in range(config.n_layers):
        ours, theirs = f"layers.{layer}.", f"model.layers.{layer}."
        q, k, v = reader.get(ours + "attention.in_proj.weight").split([q_width, kv_width, kv_width])
        gate, up = reader.get(ours + "feed_forward.w12.weight").chunk(2)
        yield theirs + "input_layernorm.weight", reader.get(ours + "attention_norm.weight")
        yield from ((theirs + f"self_attn.{n}_proj.weight", t) for n, t in (("q", q), ("k", k), ("v", v)))
        yield theirs + "self_attn.o_proj.weight", reader.get(ours + "attention.out_proj.weight")
        yield theirs + "post_attention_layernorm.weight", reader.get(ours + "ffn_norm.weight")
        yield theirs + "mlp.gate_proj.weight", gate
        yield theirs + "mlp.up_proj.weight", up
        yield theirs + "mlp.down_proj.weight", reader.get(ours + "feed_forward.w3.weight")
    yield "model.norm.weight", reader.get("norm.weight")
    if not config.tie_embeddings:
        yield "lm_head.weight", reader.get("output.weight")


def _llama_plan(config: ModelConfig, dtype: torch.dtype) -> list[tuple[str, tuple[int, ...], torch.dtype]]:
    dim, q_width = config.d_model, config.n_heads * config.head_size
    kv_width, hidden = config.kv_heads * config.head_size, config.mlp_width
    plan = [("model.embed_tokens.weight", (config.vocab_size, dim))]
    for layer in range(config.n_layers):
        theirs = f"model.layers.{layer}."
        plan += [(theirs + "input_layernorm.weight", (dim,)), (theirs + "self_attn.q_proj.weight", (q_width, dim)),
                 (theirs + "self_attn.k_proj.weight", (kv_width, dim)),
                 (theirs + "self_attn.v_proj.weight", (kv_width, dim)),
                 (theirs + "self_attn.o_proj.weight", (dim, q_width)),
                 (theirs + "post_attention_layernorm.weight", (dim,)),
                 (theirs + "mlp.gate_proj.weight", (hidden, dim)), (theirs + "mlp.up_proj.weight", (hidden, dim)),
                 (theirs + "mlp.down_proj.weight", (dim, hidden))]
    plan.append(("model.norm.weight", (dim,)))
    if not config.tie_embeddings:
        plan.append(("lm_head.weight", (config.vocab_size, dim)))
    return [(name, shape, dtype) for name, shape in plan]


def remote_config(config: ModelConfig, tokenizer: Tokenizer) -> dict:
    """``config.json`` for ``modeling_birdie.py``: the birdie config with every derived size resolved."""
    from birdie.models.supra import decay_rates

    resolved = {
        **config.to_dict(), "kv_heads": config.kv_heads, "head_size": config.head_size,
        "mlp_width": config.mlp_width, "recurrent_width": config.recurrent_width,
        "has_mlp": get_family(config.family).has_mlp,
        "bidirectional": [i for i in range(config.n_layers) if config.is_bidirectional(i)],
        "log_decay": (-decay_rates(config.n_heads, config.decay)).tolist(),
    }
    return {"architectures": ["BirdieForCausalLM"], "model_type": "birdie",
            "auto_map": {"AutoConfig": "modeling_birdie.BirdieConfig",
                         "AutoModelForCausalLM": "modeling_birdie.BirdieForCausalLM"},
            "tie_word_embeddings": False, "birdie": resolved, **_token_ids(tokenizer)}


def convert_to_hf(source: str | Path, out: str | Path, remote_code: bool = False) -> HFExport:
    """Write the birdie export ``source`` as a HF directory ``out``; ``remote_code`` forces the birdie modeling
    file even for a model Llama expresses natively."""
    source, out = Path(source), Path(out)
    for name in (MODEL_CONFIG, WEIGHTS, TOKENIZER):
        if not (source / name).is_file():
            raise FileNotFoundError(f"{source / name} not found: to-hf reads a birdie export directory "
                                    f"({MODEL_CONFIG}, {WEIGHTS}, {TOKENIZER})")
    config = ModelConfig.from_dict(json.loads((source / MODEL_CONFIG).read_text()))
    tokenizer = load_tokenizer(source / TOKENIZER)
    tokenizer_json = hf_tokenizer_json(tokenizer)  # converted and checked before anything is written
    if (out / "config.json").exists():
        raise FileExistsError(f"{out / 'config.json'} exists; choose a new output directory")
    out.mkdir(parents=True, exist_ok=True)
    write_hf_tokenizer(out, tokenizer, tokenizer_json, config.max_seq_len)
    native = is_native(config) and not remote_code
    reader = ShardedReader({name: source / WEIGHTS for name in _names(source / WEIGHTS)})
    dtype = reader.dtype("tok_embeddings.weight")
    if native:
        hf_config = _llama_config(config, tokenizer, dtype)
        with StreamingWriter(out / "model.safetensors", _llama_plan(config, dtype)) as writer:
            for name, tensor in _llama_tensors(reader, config):
                writer.write(name, tensor)
    else:
        hf_config = remote_config(config, tokenizer)
        shutil.copyfile(source / WEIGHTS, out / "model.safetensors")
        shutil.copyfile(REMOTE_CODE, out / REMOTE_CODE.name)
    (out / "config.json").write_text(json.dumps(hf_config, indent=2))
    (out / "generation_config.json").write_text(json.dumps(_token_ids(tokenizer), indent=2))
    return HFExport(out, hf_config["architectures"][0], not native)


def _names(path: Path) -> list[str]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        return list(handle.keys())
