"""Exported models: ``model.safetensors`` + ``config.json`` + ``tokenizer.json``, and :func:`load`.

``birdie.load(path)`` accepts an export directory, a training checkpoint directory (``step_N``, which also holds
``config.json`` and ``tokenizer.json``) or a run directory (its ``export/``, else its latest checkpoint), and
returns ``(model, tokenizer)`` in eval mode on the CPU. :func:`read_weights` gives the plain state dict of any of
them, which uptraining (``--pretrained``) loads strictly or not.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from birdie.tokenizers import HFTokenizer, Tokenizer, load_tokenizer

WEIGHTS = "model.safetensors"
MODEL_CONFIG = "config.json"
TOKENIZER = "tokenizer.json"
TRAINING_RECORD = "training.json"


def write_training_record(directory: str | Path, record: dict[str, Any]) -> None:
    """Write ``training.json``: how the exported model was trained, for tools that must behave accordingly.

    Keys: ``sequence_length`` (int, the length trained at), ``objectives`` (list of ``{"name", "key",
    "objective_class", "prob"}``: the mixture the run started from), ``agent`` (str: ``birdie``, ``ul2``,
    ``ntp``, ``fixed``, ...), ``prefix_lm`` (bool: some objective trained with a bidirectional prefix and
    ``<|begin_generating|>``), ``source`` (str: ``birdie train``, ``from-hf``, ``sft``, ...).
    """
    (Path(directory) / TRAINING_RECORD).write_text(json.dumps({"format_version": 1, **record}, indent=2))


def read_training_record(path: str | Path) -> dict[str, Any] | None:
    """The ``training.json`` of an export or checkpoint directory (see :func:`write_training_record`), or None
    for a model exported before birdie recorded it (callers then say that they are guessing)."""
    record_path = _model_dir(Path(path)) / TRAINING_RECORD
    if not record_path.is_file():
        return None
    return json.loads(record_path.read_text())


def write_model_files(directory: str | Path, model_config: dict[str, Any], tokenizer: Tokenizer) -> None:
    """Write ``config.json`` (the model config) and ``tokenizer.json`` (HF file, or the tokenizer's spec)."""
    directory = Path(directory)
    (directory / MODEL_CONFIG).write_text(json.dumps(model_config, indent=2))
    if isinstance(tokenizer, HFTokenizer):
        tokenizer.save(directory / TOKENIZER)
    else:
        spec = getattr(tokenizer, "spec", None)
        if spec is None:
            raise TypeError(f"{type(tokenizer).__name__} has no spec(); birdie cannot save it with the export")
        (directory / TOKENIZER).write_text(json.dumps(spec()))


def export_model(directory: str | Path, model: nn.Module, model_config: dict[str, Any], tokenizer: Tokenizer,
                 is_main: bool = True) -> Path:
    """Gather the full weights (works for DDP/FSDP2-wrapped models; every rank must call this) and let rank 0
    write them as ``model.safetensors`` next to ``config.json`` and ``tokenizer.json``."""
    from safetensors.torch import save_file
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    state = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    directory = Path(directory)
    if is_main:
        directory.mkdir(parents=True, exist_ok=True)
        # clone: tied weights share storage, which safetensors refuses to write
        save_file({k: v.detach().to("cpu").clone().contiguous() for k, v in state.items()}, str(directory / WEIGHTS))
        write_model_files(directory, model_config, tokenizer)
    return directory


def _model_dir(path: Path) -> Path:
    """The directory holding ``config.json`` for an export, checkpoint or run directory."""
    if (path / MODEL_CONFIG).is_file():
        return path
    if (path / "export" / MODEL_CONFIG).is_file():
        return path / "export"
    from birdie.train.checkpoint import resolve_checkpoint

    try:
        return resolve_checkpoint(str(path), path)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} holds no birdie model: expected {MODEL_CONFIG} (an export or checkpoint "
                                "dir) or a run dir with export/ or checkpoints/") from None


def read_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """The model's full state dict (CPU tensors) from an export or a checkpoint directory (read, not gathered)."""
    directory = _model_dir(Path(path))
    if (directory / WEIGHTS).is_file():
        from safetensors.torch import load_file

        return load_file(str(directory / WEIGHTS))
    import warnings

    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.metadata import TensorStorageMetadata

    reader = dcp.FileSystemReader(str(directory))
    entries = reader.read_metadata().state_dict_metadata
    # Allocate the model's tensors from the checkpoint's metadata; DCP fills them (optimizer state is not read).
    model = {key[len("model."):]: torch.empty(meta.size, dtype=meta.properties.dtype)
             for key, meta in entries.items() if key.startswith("model.") and isinstance(meta, TensorStorageMetadata)}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="torch.distributed is disabled")
        dcp.load({"model": model}, storage_reader=reader, no_dist=True)
    return model


def load_weights(model: nn.Module, weights: dict[str, torch.Tensor], strict: bool) -> dict[str, list[str]]:
    """Copy ``weights`` into ``model``; returns ``{"missing", "unexpected", "mismatched"}`` key lists.

    Strict: any difference raises a ValueError listing them. Not strict: matching keys are loaded, mismatched
    shapes are left at their initial values, and the caller reports the lists.
    """
    own = model.state_dict()
    report = {
        "missing": sorted(set(own) - set(weights)),
        "unexpected": sorted(set(weights) - set(own)),
        "mismatched": sorted(k for k in set(own) & set(weights) if own[k].shape != weights[k].shape),
    }
    if strict and any(report.values()):
        details = "; ".join(f"{kind}: {', '.join(keys)}" for kind, keys in report.items() if keys)
        raise ValueError(f"the weights do not match the model ({details})")
    usable = {k: v for k, v in weights.items() if k in own and k not in report["mismatched"]}
    model.load_state_dict(usable, strict=False)
    return report


def load(path: str | Path) -> tuple[nn.Module, Tokenizer]:
    """Load an exported (or checkpointed) model and its tokenizer: ``model, tokenizer = birdie.load(path)``.

    A reward model exported by ``birdie rm`` loads as a :class:`birdie.finetune.reward_model.RewardModel`."""
    from birdie.models import LanguageModel, ModelConfig

    directory = _model_dir(Path(path))
    if (read_training_record(directory) or {}).get("head") == "reward":  # written by birdie rm
        from birdie.finetune.reward_model import load_reward_model

        return load_reward_model(directory)
    config = ModelConfig.from_dict(json.loads((directory / MODEL_CONFIG).read_text()))
    model = LanguageModel(config)
    try:
        load_weights(model, read_weights(directory), strict=True)
    except ValueError as error:
        raise ValueError(f"{directory}: {error}; its {MODEL_CONFIG} and weights disagree, so the directory was "
                         "edited or written by another program: export the model again") from None
    tokenizer = load_tokenizer(directory / TOKENIZER)
    return model.eval(), tokenizer
