"""``birdie convert from-hf SRC OUT``: a local Llama / Mistral Hugging Face directory -> a birdie export.

Weights are streamed: each output tensor is read from the source shards (by its offset in the header), fused
where birdie fuses (``in_proj`` = [q | k | v], ``w12`` = [gate | up]) and appended to ``model.safetensors`` before
the next is read, so memory holds one tensor at a time, never the model.

The tokenizer keeps every id of the model's own; birdie's special tokens get new ids after them, and the
embedding (and untied output head) grows to cover them. The new rows are the mean of the model's own rows:
a new token then starts as an "average" input, and as an output its logit is the average logit, so it neither
dominates the softmax nor starts unreachable (Hewitt, "Initializing new word embeddings", 2021).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from birdie.convert.hf_source import (load_source_tokenizer, model_config_from_hf, read_hf_config,
                                      weight_files)
from birdie.convert.safetensors_stream import ShardedReader, StreamingWriter
from birdie.models.config import ModelConfig
from birdie.train.export import WEIGHTS, write_model_files
from birdie.train.integrity import write_manifest

#: birdie per-layer name -> the HF per-layer tensors it is made of (concatenated on dim 0, in this order).
LAYER_MAP: dict[str, tuple[str, ...]] = {
    "attention_norm.weight": ("input_layernorm.weight",),
    "attention.in_proj.weight": ("self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight"),
    "attention.out_proj.weight": ("self_attn.o_proj.weight",),
    "ffn_norm.weight": ("post_attention_layernorm.weight",),
    "feed_forward.w12.weight": ("mlp.gate_proj.weight", "mlp.up_proj.weight"),
    "feed_forward.w3.weight": ("mlp.down_proj.weight",),
}
#: Tensors some checkpoints carry that the model recomputes (old Llama saves its RoPE table).
IGNORED_SUFFIXES = ("rotary_emb.inv_freq",)


@dataclass(frozen=True)
class Conversion:
    """What ``from-hf`` did: the output directory, the birdie config, and the vocabulary it grew."""

    out: Path
    config: ModelConfig
    source_vocab: int
    special_ids: tuple[int, ...]


def _expected_shapes(hf: dict, rows: int) -> dict[str, tuple[int, ...]]:
    """HF tensor name -> the shape the config implies (``rows`` = the source embedding's rows)."""
    dim, hidden = hf["hidden_size"], hf["intermediate_size"]
    heads = hf["num_attention_heads"]
    head = hf.get("head_dim") or dim // heads
    kv = (hf.get("num_key_value_heads") or heads) * head
    shapes = {"model.embed_tokens.weight": (rows, dim), "model.norm.weight": (dim,)}
    if not hf.get("tie_word_embeddings", False):
        shapes["lm_head.weight"] = (rows, dim)
    per_layer = {
        "input_layernorm.weight": (dim,), "post_attention_layernorm.weight": (dim,),
        "self_attn.q_proj.weight": (heads * head, dim), "self_attn.k_proj.weight": (kv, dim),
        "self_attn.v_proj.weight": (kv, dim), "self_attn.o_proj.weight": (dim, heads * head),
        "mlp.gate_proj.weight": (hidden, dim), "mlp.up_proj.weight": (hidden, dim),
        "mlp.down_proj.weight": (dim, hidden),
    }
    for layer in range(hf["num_hidden_layers"]):
        shapes.update({f"model.layers.{layer}.{name}": shape for name, shape in per_layer.items()})
    return shapes


def _check_tensors(reader: ShardedReader, hf: dict, source: Path) -> int:
    """Every expected tensor present with its shape, nothing unknown; returns the embedding's rows."""
    if "model.embed_tokens.weight" not in reader.names():
        raise ValueError(f"{source}: the weights have no model.embed_tokens.weight (not a Llama/Mistral checkpoint)")
    rows = reader.shape("model.embed_tokens.weight")[0]
    expected = _expected_shapes(hf, rows)
    present = {name for name in reader.names() if not name.endswith(IGNORED_SUFFIXES)}
    tied_head = hf.get("tie_word_embeddings", False) and "lm_head.weight" in present
    missing = sorted(set(expected) - present)
    if missing:
        raise ValueError(f"{source}: weight(s) {missing[:4]}{' ...' if len(missing) > 4 else ''} are missing "
                         f"({len(missing)} in all) for the {hf['num_hidden_layers']}-layer config.json")
    unknown = sorted(present - set(expected) - ({"lm_head.weight"} if tied_head else set()))
    if unknown:
        raise ValueError(f"{source}: weight(s) {unknown[:4]} are not part of a {hf['model_type']} model with this "
                         "config.json; birdie converts nothing approximately")
    for name, shape in expected.items():
        if reader.shape(name) != shape:
            raise ValueError(f"{reader.file_of(name)}: {name} has shape {reader.shape(name)} but config.json "
                             f"implies {shape}")
    return rows


def grow_embedding(table: torch.Tensor, rows: int, own: int, new_ids: tuple[int, ...]) -> torch.Tensor:
    """``table`` (V0, D) -> (rows, D): the rows of ``table`` kept, rows ``new_ids`` (the special tokens) set to
    the mean of the first ``own`` rows (the tokenizer's own tokens), any other new row zero."""
    out = torch.zeros(rows, table.shape[1], dtype=table.dtype)
    out[: table.shape[0]] = table
    out[list(new_ids)] = table[:own].float().mean(dim=0).to(table.dtype)
    return out


def convert_from_hf(source: str | Path, out: str | Path, dtype: torch.dtype | None = None) -> Conversion:
    """Convert the HF model directory ``source`` into a birdie export at ``out`` (created; must not hold a
    model already). ``dtype``: cast the weights (default: keep the source's)."""
    source, out = Path(source), Path(out)
    if not source.is_dir():
        raise FileNotFoundError(f"{source} is not a directory; from-hf reads a local Hugging Face model directory")
    hf = read_hf_config(source)
    reader = ShardedReader(weight_files(source))
    rows = _check_tensors(reader, hf, source)
    tokenizer, own = load_source_tokenizer(source)
    if own > rows:
        raise ValueError(f"{source}: the tokenizer has {own} tokens but model.embed_tokens.weight has {rows} rows; "
                         "this tokenizer does not belong to these weights")
    new_ids = tuple(int(i) for i in tokenizer.specials.ids)
    config = model_config_from_hf(hf, max(rows, tokenizer.vocab_size, max(new_ids) + 1), source / "config.json")
    if (out / WEIGHTS).exists():
        raise FileExistsError(f"{out / WEIGHTS} exists; choose a new output directory")
    out.mkdir(parents=True, exist_ok=True)
    _write_weights(reader, hf, config, own, new_ids, out / WEIGHTS, dtype)
    write_model_files(out, config.to_dict(), tokenizer, {
        "sequence_length": config.max_seq_len, "objectives": [], "agent": None, "prefix_lm": False,
        "source": "from-hf", "hf_source": str(source.resolve()), "hf_model_type": hf["model_type"],
        "source_vocab_size": own})
    write_manifest(out)
    return Conversion(out, config, own, new_ids)


def _write_weights(reader: ShardedReader, hf: dict, config: ModelConfig, own: int, new_ids: tuple[int, ...],
                   path: Path, dtype: torch.dtype | None) -> None:
    """Stream the birdie state dict (embedding, layers, final norm, head) into ``path``."""
    head = "model.embed_tokens.weight" if config.tie_embeddings else "lm_head.weight"
    producers: list[tuple[str, tuple[int, ...], Callable[[], torch.Tensor]]] = []

    def fused(names: tuple[str, ...]) -> Callable[[], torch.Tensor]:
        return lambda: torch.cat([reader.get(name) for name in names], dim=0)

    def table(name: str) -> Callable[[], torch.Tensor]:
        return lambda: grow_embedding(reader.get(name), config.vocab_size, own, new_ids)

    producers.append(("tok_embeddings.weight", (config.vocab_size, config.d_model), table("model.embed_tokens.weight")))
    for layer in range(config.n_layers):
        for ours, theirs in LAYER_MAP.items():
            names = tuple(f"model.layers.{layer}.{name}" for name in theirs)
            shape = (sum(reader.shape(n)[0] for n in names), *reader.shape(names[0])[1:])
            producers.append((f"layers.{layer}.{ours}", shape, fused(names)))
    producers.append(("norm.weight", (config.d_model,), fused(("model.norm.weight",))))
    producers.append(("output.weight", (config.vocab_size, config.d_model), table(head)))
    source_dtype = reader.dtype("model.embed_tokens.weight")
    plan = [(name, shape, dtype or source_dtype) for name, shape, _ in producers]
    with StreamingWriter(path, plan) as writer:
        for name, _, produce in producers:
            writer.write(name, produce().to(dtype or source_dtype))
