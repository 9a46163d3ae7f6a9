"""Generated evaluation sets on disk: JSONL files with a manifest, reused when their options match.

A set is ``NAME.jsonl`` (one item per line) plus ``NAME.jsonl.manifest.json`` holding the generator's options, their
checksum, the item count and the SHA-256 of the JSONL. :func:`cached_items` reuses a file only when the manifest's
checksum equals the requested options' checksum and the file is intact, so a stale or hand-edited set is rebuilt
rather than silently scored.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Callable

#: Where sets go when the user names no file: ``$BIRDIE_CACHE/eval`` or ``~/.cache/birdie/eval``.
DEFAULT_CACHE_DIR = Path(os.environ.get("BIRDIE_CACHE", Path.home() / ".cache" / "birdie")) / "eval"


def options_checksum(options: dict[str, Any]) -> str:
    """A short stable hash of JSON-serialisable generator options (key order does not matter)."""
    canonical = json.dumps(options, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:12]


def _manifest_path(path: Path) -> Path:
    return path.with_name(path.name + ".manifest.json")


def _file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_jsonl(path: str | Path, items: list[dict[str, Any]]) -> None:
    """Write ``items`` one JSON object per line (UTF-8)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for item in items:
            handle.write(json.dumps(item, ensure_ascii=False) + "\n")


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Read a JSONL file; a malformed line raises ``ValueError`` naming the file and line number."""
    items = []
    with Path(path).open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                items.append(json.loads(line))
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}:{number}: not valid JSON ({error.msg})") from None
    return items


def cached_items(
    path: str | Path, options: dict[str, Any], build: Callable[[], list[dict[str, Any]]]
) -> tuple[list[dict[str, Any]], bool]:
    """The items at ``path`` if its manifest matches ``options``; otherwise ``build()`` them and write the set.

    Returns:
        ``(items, reused)`` where ``reused`` tells whether the file on disk was used.
    """
    path = Path(path)
    checksum = options_checksum(options)
    manifest_path = _manifest_path(path)
    if path.exists() and manifest_path.exists():
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        if manifest.get("checksum") == checksum and manifest.get("sha256") == _file_sha256(path):
            return read_jsonl(path), True
    items = build()
    write_jsonl(path, items)
    manifest = {"checksum": checksum, "options": options, "num_items": len(items), "sha256": _file_sha256(path)}
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return items, False


def default_set_path(task: str, options: dict[str, Any], cache_dir: str | Path | None = None) -> Path:
    """``CACHE/TASK-CHECKSUM.jsonl``: the cache file for a set with these options."""
    return Path(cache_dir or DEFAULT_CACHE_DIR) / f"{task}-{options_checksum(options)}.jsonl"


def cached_set(options: argparse.Namespace, task: str, generator_options: dict[str, Any],
               build: Callable[[], list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """``--data FILE`` if given, else the generated set at ``--generate FILE`` or in the cache (reused when its
    manifest matches ``generator_options``)."""
    if options.data:
        return read_jsonl(options.data)
    path = Path(options.generate) if options.generate else default_set_path(task, generator_options, options.cache_dir)
    items, reused = cached_items(path, generator_options, build)
    print(f"{'reused' if reused else 'wrote'} {len(items)} items: {path}")
    return items
