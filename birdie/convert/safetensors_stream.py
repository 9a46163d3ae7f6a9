"""Write and read ``.safetensors`` files one tensor at a time, so converting a model never holds it whole.

The format is an 8-byte little-endian header length, a JSON header ``{name: {"dtype", "shape", "data_offsets"}}``
and the tensors' bytes in header order. Every shape and dtype is known before any weight is read (from the source
files' headers), so :class:`StreamingWriter` writes the header first and then each tensor as it is produced:
peak memory is one tensor (plus whatever the caller holds), not the model.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Iterator, Sequence

import torch

#: torch dtype -> safetensors dtype name.
DTYPE_NAMES = {
    torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.float64: "F64",
    torch.int64: "I64", torch.int32: "I32", torch.int8: "I8", torch.uint8: "U8", torch.bool: "BOOL",
}


class StreamingWriter:
    """Write ``plan`` = [(name, shape, dtype), ...] to ``path``; then :meth:`write` each tensor in plan order.

    Use as a context manager; leaving it checks that every planned tensor was written (a partial file is
    removed, never left looking complete).
    """

    def __init__(self, path: str | Path, plan: Sequence[tuple[str, tuple[int, ...], torch.dtype]],
                 metadata: dict[str, str] | None = None) -> None:
        self.path = Path(path)
        self._plan = list(plan)
        header: dict[str, object] = {"__metadata__": metadata or {"format": "pt"}}
        offset = 0
        for name, shape, dtype in self._plan:
            size = int(torch.Size(shape).numel()) * torch.empty((), dtype=dtype).element_size()
            header[name] = {"dtype": DTYPE_NAMES[dtype], "shape": list(shape), "data_offsets": [offset, offset + size]}
            offset += size
        raw = json.dumps(header, separators=(",", ":")).encode()
        raw += b" " * (-len(raw) % 8)  # tensors start 8-byte aligned, as safetensors writes them
        self._file = self.path.open("wb")
        self._file.write(struct.pack("<Q", len(raw)) + raw)
        self._next = 0

    def write(self, name: str, tensor: torch.Tensor) -> None:
        """Append ``tensor`` (must be the next planned name, with its shape and dtype)."""
        if self._next >= len(self._plan):
            raise ValueError(f"{self.path}: {name} was not planned (every planned tensor is already written)")
        planned, shape, dtype = self._plan[self._next]
        if name != planned or tuple(tensor.shape) != tuple(shape) or tensor.dtype != dtype:
            raise ValueError(f"{self.path}: expected {planned} {tuple(shape)} {dtype}, got {name} "
                             f"{tuple(tensor.shape)} {tensor.dtype}")
        data = tensor.detach().to("cpu").contiguous()
        if data.numel():
            self._file.write(data.reshape(-1).view(torch.uint8).numpy().data)  # a view: no copy of the tensor
        self._next += 1

    def __enter__(self) -> "StreamingWriter":
        return self

    def __exit__(self, kind, error, trace) -> None:
        self._file.close()
        if kind is not None or self._next != len(self._plan):
            self.path.unlink(missing_ok=True)
            if kind is None:
                missing = [name for name, _, _ in self._plan[self._next:]]
                raise ValueError(f"{self.path}: {len(missing)} planned tensors were never written ({missing[:3]} ...)")


class ShardedReader:
    """Read tensors by name from one or several ``.safetensors`` files (a sharded checkpoint), one at a time.

    Only the headers are read up front. :meth:`get` reads one tensor's bytes with plain file reads rather than
    a memory map, so the process holds just the tensors the caller keeps (a memory map would leave every page
    it touched resident until the file is closed).
    """

    def __init__(self, files: dict[str, Path]) -> None:
        self._where = dict(files)  # tensor name -> file
        self._entries: dict[str, tuple[torch.dtype, tuple[int, ...], int, int]] = {}
        dtypes = {name: dtype for dtype, name in DTYPE_NAMES.items()}
        for path in sorted(set(self._where.values())):
            with Path(path).open("rb") as handle:
                (length,) = struct.unpack("<Q", handle.read(8))
                header = json.loads(handle.read(length))
            for name, entry in header.items():
                if name == "__metadata__" or self._where.get(name) != path:
                    continue
                if entry["dtype"] not in dtypes:
                    raise ValueError(f"{path}: {name} has dtype {entry['dtype']}, which birdie does not read")
                begin, end = entry["data_offsets"]
                self._entries[name] = (dtypes[entry["dtype"]], tuple(entry["shape"]), 8 + length + begin, end - begin)
        missing = sorted(set(self._where) - set(self._entries))
        if missing:
            raise ValueError(f"{self._where[missing[0]]} does not hold {missing[:3]}, which its index places there")

    def names(self) -> list[str]:
        return list(self._where)

    def file_of(self, name: str) -> Path:
        return self._where[name]

    def shape(self, name: str) -> tuple[int, ...]:
        return self._entries[name][1]

    def dtype(self, name: str) -> torch.dtype:
        return self._entries[name][0]

    def get(self, name: str) -> torch.Tensor:
        dtype, shape, offset, size = self._entries[name]
        buffer = bytearray(size)
        with self._where[name].open("rb") as handle:
            handle.seek(offset)
            if handle.readinto(buffer) != size:
                raise ValueError(f"{self._where[name]} is truncated: {name} needs {size} bytes at offset {offset}")
        if not size:
            return torch.empty(shape, dtype=dtype)
        return torch.frombuffer(buffer, dtype=dtype).reshape(shape)

    def __iter__(self) -> Iterator[str]:
        return iter(self._where)
