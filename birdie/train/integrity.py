"""What birdie checks before it trusts a checkpoint or export directory: checksums, finite weights, no pickles.

* :func:`write_manifest` records the size and BLAKE2b digest of every file of a directory in ``manifest.json``;
  it is written last, so a directory with a manifest is complete. :func:`verify_manifest` re-hashes the listed
  files and raises :class:`IntegrityError` naming the first missing, truncated or corrupt one.
* :func:`check_finite` rejects weights holding NaN or infinity, naming the tensor.
* :func:`load_side_file` reads a ``torch.save`` file with ``weights_only=True``: tensors, numbers, strings,
  containers; a pickled object that would run code is refused with an error that says so.
* :func:`require_trust` guards what cannot be read without unpickling: DCP's ``.metadata`` is a Python pickle, so
  a checkpoint directory that this run did not write is opened only with ``trust_checkpoint=True``.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Iterable

import torch

MANIFEST = "manifest.json"
_ALGORITHM = "blake2b"
_CHUNK = 1 << 20


class IntegrityError(ValueError):
    """A checkpoint or export file is missing, truncated, corrupt or holds non-finite weights."""


class UntrustedCheckpointError(PermissionError):
    """Opening this directory would unpickle a file, and the caller did not say that it trusts it."""


def file_digest(path: Path) -> str:
    """BLAKE2b hex digest of ``path``, read in 1 MiB chunks."""
    digest = hashlib.blake2b()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _listed_files(directory: Path) -> list[str]:
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file() and p.name != MANIFEST)


def write_manifest(directory: str | Path) -> None:
    """Write ``directory/manifest.json`` (size and digest of every other file) and fsync it; call it last."""
    directory = Path(directory)
    files = {name: {"size": (directory / name).stat().st_size, _ALGORITHM: file_digest(directory / name)}
             for name in _listed_files(directory)}
    path = directory / MANIFEST
    path.write_text(json.dumps({"format_version": 1, "algorithm": _ALGORITHM, "files": files}, indent=1))
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def has_manifest(directory: str | Path) -> bool:
    return (Path(directory) / MANIFEST).is_file()


def verify_manifest(directory: str | Path, what: str = "directory") -> None:
    """Check every file listed in ``directory/manifest.json`` (present, same size, same digest).

    Raises :class:`IntegrityError` naming the first bad file and what is wrong with it (``what`` names the kind of
    directory in the message, e.g. ``checkpoint``).
    """
    directory = Path(directory)
    try:
        manifest = json.loads((directory / MANIFEST).read_text())
        files = manifest["files"]
    except FileNotFoundError:
        raise IntegrityError(f"{what} {directory} has no {MANIFEST}: it is incomplete (a save was interrupted) or "
                             "was not written by this version of birdie") from None
    except (ValueError, KeyError, TypeError):
        raise IntegrityError(f"{directory / MANIFEST} is not a valid birdie manifest; the {what} is "
                             "damaged") from None
    for name, entry in files.items():
        path = directory / name
        if not path.resolve().is_relative_to(directory.resolve()):
            raise IntegrityError(f"{directory / MANIFEST} lists {name!r}, outside the {what}; the manifest is "
                                 "damaged or forged")
        if not path.is_file():
            raise IntegrityError(f"{what} {directory} is incomplete: {name} is missing (listed in {MANIFEST}); "
                                 f"restore it or use another {what}")
        size = path.stat().st_size
        if size != entry["size"]:
            raise IntegrityError(f"{path} is truncated or overwritten: {size} bytes, {MANIFEST} says "
                                 f"{entry['size']}; the {what} is damaged, use another one")
        if file_digest(path) != entry[_ALGORITHM]:
            raise IntegrityError(f"{path} is corrupt: its checksum differs from {MANIFEST}; the {what} is "
                                 "damaged, use another one")


def check_finite(tensors: Iterable[tuple[str, torch.Tensor]], source: str | Path) -> None:
    """Raise :class:`IntegrityError` naming the first floating-point tensor holding NaN or infinity."""
    for name, tensor in tensors:
        local = tensor.to_local() if hasattr(tensor, "to_local") else tensor  # a DTensor: this rank's shard
        if local.is_floating_point() and not bool(torch.isfinite(local).all()):
            raise IntegrityError(f"{source}: weight {name!r} holds NaN or infinite values; the file is corrupt or "
                                 "was saved from a diverged run: use another checkpoint or export")


def load_side_file(path: Path) -> Any:
    """``torch.load(path, weights_only=True)`` with errors that name the file and say why it was refused."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise IntegrityError(f"{path} is missing; the checkpoint is incomplete, use another one") from None
    except Exception as error:  # the unpickler's refusal or a damaged zip: never fall back to a full unpickle
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise IntegrityError(f"{path} cannot be read as plain tensors and values ({first}); birdie never unpickles "
                             "objects from a file, which could run code: use a checkpoint written by birdie") from None


def require_trust(directory: str | Path, trusted: bool) -> None:
    """Refuse to open the DCP checkpoint ``directory`` (its ``.metadata`` is a pickle) unless ``trusted``."""
    if not trusted:
        raise UntrustedCheckpointError(
            f"{directory} is a training checkpoint, and reading it unpickles its DCP .metadata file, which can run "
            "code if the file came from someone else. Load an export instead (OUT/export: safetensors + JSON, needs "
            "no flag), or, if you trust where it came from, pass trust_checkpoint=True (--trust-checkpoint)")

