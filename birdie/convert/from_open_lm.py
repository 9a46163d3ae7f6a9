"""``birdie convert from-open-lm CHECKPOINT OUT --preset NAME``: open_lm / linear_open_lm checkpoints -> exports.

birdie's module names are open_lm's (``tok_embeddings``, ``layers.{i}.attention.in_proj``, ``feed_forward.w12``,
``_totrain_embed`` ...), so the state dict needs only its wrapper prefixes removed (FSDP/DDP ``module.``,
``torch.compile``'s ``_orig_mod.``). The preset names the architecture (a checkpoint does not record it); every
key and shape must then match it exactly.

Checkpoints are pickles. They are read with ``torch.load(weights_only=True)``, which accepts tensors and plain
containers only -- open_lm's ``epoch_N.pt`` (``state_dict``, ``epoch``, ``step``, ...) and bare state dicts
qualify. Anything else is refused unless ``trust_checkpoint`` says the file comes from a trusted source, since
unpickling runs code.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import torch

from birdie.convert.from_hf import grow_embedding
from birdie.models.lm import LanguageModel
from birdie.models.presets import preset_config
from birdie.tokenizers import load_tokenizer
from birdie.train.export import WEIGHTS, write_model_files
from birdie.train.integrity import write_manifest

PREFIXES = ("module.", "_orig_mod.")
#: Non-parameter tensors open_lm saves that birdie recomputes (rotary tables).
RECOMPUTED_SUFFIXES = ("inv_freq", "cos_cached", "sin_cached")


def read_checkpoint(path: Path, trust_checkpoint: bool = False) -> dict[str, torch.Tensor]:
    """The model state dict of an open_lm checkpoint (``{"state_dict": ...}`` or bare), prefixes removed."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: pass an open_lm checkpoint file (epoch_N.pt, checkpoint.pt)")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=not trust_checkpoint, mmap=True)
    except pickle.UnpicklingError as error:
        raise ValueError(f"{path} holds objects other than tensors and plain containers, which only an unpickler "
                         f"that runs code can read ({str(error).splitlines()[0]}); if you trust where the file came "
                         "from, pass --trust-checkpoint") from None
    state = loaded.get("state_dict", loaded) if isinstance(loaded, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path}: expected a state dict of tensors or a dict with 'state_dict'; got "
                         f"{type(loaded).__name__} with keys {list(loaded)[:5] if isinstance(loaded, dict) else []}")
    cleaned = {}
    for key, value in state.items():
        name = key
        while name.startswith(PREFIXES):
            name = name.split(".", 1)[1]
        if not name.endswith(RECOMPUTED_SUFFIXES):
            cleaned[name] = value
    return cleaned


def convert_from_open_lm(checkpoint: str | Path, out: str | Path, preset: str, tokenizer_spec: str,
                         trust_checkpoint: bool = False) -> dict:
    """Write ``checkpoint`` (open_lm state dict of a ``preset`` model) as a birdie export at ``out`` with the
    tokenizer ``tokenizer_spec`` (birdie's special tokens are added at new ids; their embedding rows start as
    the mean of the tokenizer's own rows). Returns the training record written."""
    checkpoint, out = Path(checkpoint), Path(out)
    state = read_checkpoint(checkpoint, trust_checkpoint)
    tokenizer = load_tokenizer(tokenizer_spec)
    if "tok_embeddings.weight" not in state:
        raise ValueError(f"{checkpoint}: no tok_embeddings.weight; keys start {sorted(state)[:4]} (not open_lm)")
    rows = state["tok_embeddings.weight"].shape[0]
    own = min(tokenizer.specials.ids)
    if own > rows:
        raise ValueError(f"{checkpoint}: the tokenizer has {own} tokens but tok_embeddings has {rows} rows; "
                         "pass the tokenizer the model was trained with")
    config = preset_config(preset)
    config = config.replace(vocab_size=max(rows, tokenizer.vocab_size))
    with torch.device("meta"):
        expected = LanguageModel(config).state_dict()
    state = dict(state)
    for name in ("tok_embeddings.weight", "output.weight"):
        if name in state:
            state[name] = grow_embedding(state[name], config.vocab_size, own, tokenizer.specials.ids)
    if config.tie_embeddings and "output.weight" not in state:
        state["output.weight"] = state["tok_embeddings.weight"]
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    mismatched = [f"{k} {tuple(state[k].shape)} vs {tuple(expected[k].shape)}"
                  for k in sorted(set(expected) & set(state)) if state[k].shape != expected[k].shape]
    if missing or unexpected or mismatched:
        details = "; ".join(f"{kind}: {', '.join(keys[:4])}{' ...' if len(keys) > 4 else ''}"
                            for kind, keys in (("missing", missing), ("unexpected", unexpected),
                                               ("mismatched", mismatched)) if keys)
        raise ValueError(f"{checkpoint} does not fit preset {preset!r} ({details}); pass the preset the run used")
    if (out / WEIGHTS).exists():
        raise FileExistsError(f"{out / WEIGHTS} exists; choose a new output directory")
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous().clone() if k == "output.weight" and config.tie_embeddings else v.contiguous()
               for k, v in state.items()}, str(out / WEIGHTS))
    record = {"sequence_length": config.max_seq_len, "objectives": [], "agent": None, "prefix_lm": False,
              "source": "from-open-lm", "open_lm_checkpoint": str(checkpoint.resolve()), "preset": preset}
    write_model_files(out, config.to_dict(), tokenizer, record)
    write_manifest(out)
    return record
