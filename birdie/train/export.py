"""Exported models: ``model.safetensors`` + ``config.json`` + ``tokenizer.json`` + ``training.json`` +
``manifest.json`` (checksums, written last), and :func:`load`.

``birdie.load(path)`` accepts an export directory, a training checkpoint directory (``step_N``, which also holds
``config.json`` and ``tokenizer.json``) or a run directory (its ``export/``, else its latest checkpoint), and
returns ``(model, tokenizer)`` in eval mode on the CPU. :func:`read_weights` gives the plain state dict of any of
them, which uptraining (``--pretrained``) loads strictly or not. Every file is checked against the manifest and
the weights must be finite. An export is safetensors + JSON and needs no trust; a checkpoint directory is read
through DCP, whose ``.metadata`` is a pickle, so it needs ``trust_checkpoint=True``.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from birdie.tokenizers import HFTokenizer, Tokenizer, load_tokenizer
from birdie.train.integrity import check_finite, has_manifest, require_trust, verify_manifest, write_manifest

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
    (Path(directory) / TRAINING_RECORD).write_text(_training_json(record))


def _training_json(record: dict[str, Any]) -> str:
    return json.dumps({"format_version": 1, **record}, indent=2)


def read_training_record(path: str | Path) -> dict[str, Any] | None:
    """The ``training.json`` of an export or checkpoint directory (see :func:`write_training_record`), or None
    for a model exported before birdie recorded it (callers then say that they are guessing)."""
    record_path = _model_dir(Path(path)) / TRAINING_RECORD
    if not record_path.is_file():
        return None
    return json.loads(record_path.read_text())


def model_files(model_config: dict[str, Any], tokenizer: Tokenizer,
                training_record: dict[str, Any] | None = None) -> dict[str, bytes]:
    """The contents of ``config.json`` (the model config), ``tokenizer.json`` (HF file, or the tokenizer's spec)
    and, when given, ``training.json`` (see :func:`write_training_record`), by file name."""
    if isinstance(tokenizer, HFTokenizer):
        tokenizer_json = tokenizer.spec()["json"]
    else:
        spec = getattr(tokenizer, "spec", None)
        if spec is None:
            raise TypeError(f"{type(tokenizer).__name__} has no spec(); birdie cannot save it with the export")
        tokenizer_json = json.dumps(spec())
    files = {MODEL_CONFIG: json.dumps(model_config, indent=2).encode(), TOKENIZER: tokenizer_json.encode()}
    if training_record is not None:
        files[TRAINING_RECORD] = _training_json(training_record).encode()
    return files


def write_model_files(directory: str | Path, model_config: dict[str, Any], tokenizer: Tokenizer,
                      training_record: dict[str, Any] | None = None) -> None:
    """Write :func:`model_files` into ``directory``."""
    for name, content in model_files(model_config, tokenizer, training_record).items():
        (Path(directory) / name).write_bytes(content)


def export_model(directory: str | Path, model: nn.Module, model_config: dict[str, Any], tokenizer: Tokenizer,
                 is_main: bool = True, training_record: dict[str, Any] | None = None) -> Path:
    """Gather the full weights (works for DDP/FSDP2-wrapped models; every rank must call this) and let rank 0
    write them as ``model.safetensors`` next to :func:`model_files` and ``manifest.json``.

    The export is written to a temporary sibling directory and moved into place when complete, so an
    interrupted export never leaves a half-written ``directory``; an existing export there is replaced.
    """
    from safetensors.torch import save_file
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    state = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    directory = Path(directory)
    if is_main:
        tmp = directory.parent / f".tmp-{directory.name}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            # clone: tied weights share storage, which safetensors refuses to write
            save_file({k: v.detach().to("cpu").clone().contiguous() for k, v in state.items()}, str(tmp / WEIGHTS))
            write_model_files(tmp, model_config, tokenizer, training_record)
            write_manifest(tmp)
            if directory.exists():
                shutil.rmtree(directory)
            os.replace(tmp, directory)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
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


def read_weights(path: str | Path, trust_checkpoint: bool = False) -> dict[str, torch.Tensor]:
    """The model's full state dict (CPU tensors) from an export or a checkpoint directory (read, not gathered).

    The files are verified against ``manifest.json`` and the weights must be finite (:class:`IntegrityError`
    otherwise). A checkpoint directory needs ``trust_checkpoint=True`` (:class:`UntrustedCheckpointError`).
    """
    directory = _verified_model_dir(Path(path), trust_checkpoint)
    if (directory / WEIGHTS).is_file():
        from safetensors.torch import load_file

        weights = load_file(str(directory / WEIGHTS))
        check_finite(weights.items(), directory / WEIGHTS)
        return weights
    from birdie.train.checkpoint import read_model_weights

    return read_model_weights(directory)


def _verified_model_dir(path: Path, trust_checkpoint: bool) -> Path:
    """The model directory of ``path``, its trust checked (checkpoints) and its files verified."""
    directory = _model_dir(path)
    if (directory / WEIGHTS).is_file():
        if has_manifest(directory):
            verify_manifest(directory, "export")
        else:
            warnings.warn(f"{directory} has no manifest.json (exported before birdie recorded checksums); its files "
                          "are not verified", stacklevel=3)
    else:
        require_trust(directory, trust_checkpoint)
        verify_manifest(directory, "checkpoint")
    return directory


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


def load(path: str | Path, trust_checkpoint: bool = False) -> tuple[nn.Module, Tokenizer]:
    """Load an exported (or checkpointed) model and its tokenizer: ``model, tokenizer = birdie.load(path)``.

    A training checkpoint (not an export) needs ``trust_checkpoint=True``: see :func:`read_weights`. A reward
    model exported by ``birdie rm`` loads as a :class:`birdie.finetune.reward_model.RewardModel`."""
    from birdie.models import LanguageModel, ModelConfig

    directory = _model_dir(Path(path))
    weights = read_weights(directory, trust_checkpoint)
    config = ModelConfig.from_dict(json.loads((directory / MODEL_CONFIG).read_text()))
    model = LanguageModel(config)
    if (read_training_record(directory) or {}).get("head") == "reward":  # written by birdie rm
        from birdie.finetune.reward_model import RewardModel

        model = RewardModel(model)
    try:
        load_weights(model, weights, strict=True)
    except ValueError as error:
        raise ValueError(f"{directory}: {error}; its {MODEL_CONFIG} and weights disagree, so the directory was "
                         "edited or written by another program: export the model again") from None
    tokenizer = load_tokenizer(directory / TOKENIZER)
    if hasattr(model, "tokenizer"):
        model.tokenizer = tokenizer  # a reward model's score(texts) encodes with it
    return model.eval(), tokenizer
