"""Special-token-aware tokenizers.

Every tokenizer birdie uses follows one small protocol (:class:`Tokenizer`): ``encode(str) -> ndarray``,
``decode(ids) -> str``, ``vocab_size`` and ``specials``, a :class:`SpecialTokens` table of single ids that
encoding text can never produce (padding, end of text, the begin-generating token that separates an example's
prefix from its target, sentinels for masked spans, one paradigm token per objective class and the
selective-copying markers).

Three implementations:

* :class:`ByteTokenizer` -- UTF-8 bytes are ids 0..255, specials follow. The zero-download default.
* :class:`HFTokenizer` -- any HF ``tokenizers.Tokenizer`` or fast ``transformers`` tokenizer; the specials become
  added tokens, and text that spells a special token out is encoded as ordinary text.
* :class:`ExtendedTokenizer` -- any object with ``encode``/``decode`` (a ``tiktoken`` encoding, a user's own
  tokenizer); specials get ids above its vocabulary and ``decode`` renders them itself.

:func:`load_tokenizer` builds any of them from a spec string, and :func:`as_tokenizer` wraps whatever a user
passes.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Protocol, Sequence, runtime_checkable

import numpy as np

#: Objective classes, in the order their paradigm tokens are allocated.
OBJECTIVE_CLASSES: tuple[str, ...] = (
    "next_token_prediction",
    "prefix_language_modeling",
    "copying",
    "deshuffling",
    "infilling",
    "autoencoding",
    "autoencoding_with_deshuffling",
    "selective_copying",
)

#: Selective-copying markers (paper Fig. 2): ``[CONTEXT] text [COPY] [START] a [END] b ... -> span [SEP] ... [DONE]``.
SELECTIVE_COPYING_MARKERS: tuple[str, ...] = ("context", "copy", "start", "end", "sep", "done")

NUM_SENTINELS = 128


def _special_names(num_sentinels: int) -> list[str]:
    names = ["<|pad|>", "<|eos|>", "<|bos|>", "<|begin_generating|>"]
    names += [f"<|{name}|>" for name in OBJECTIVE_CLASSES]
    names += [f"<|{name}|>" for name in SELECTIVE_COPYING_MARKERS]
    names += [f"<|mask_{i}|>" for i in range(num_sentinels)]
    return names


@dataclass(frozen=True)
class SpecialTokens:
    """Ids of the special tokens. Each is a single id that no text encodes to.

    Attributes:
        names: special-token strings in id order; ``ids[i]`` is the id of ``names[i]``.
        ids: the matching ids.
    """

    names: tuple[str, ...]
    ids: tuple[int, ...]
    _by_name: dict[str, int] = field(init=False, repr=False, compare=False)
    _sentinels: np.ndarray = field(init=False, repr=False, compare=False)
    _is_special_table: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.names) != len(self.ids):
            raise ValueError(f"SpecialTokens: {len(self.names)} names but {len(self.ids)} ids")
        if len(set(self.ids)) != len(self.ids):
            raise ValueError("SpecialTokens: ids must be distinct")
        object.__setattr__(self, "_by_name", dict(zip(self.names, self.ids)))
        sentinels = np.array([i for n, i in zip(self.names, self.ids) if n.startswith("<|mask_")], dtype=np.int64)
        sentinels.flags.writeable = False  # shared by every call; objectives read it on their hot path
        object.__setattr__(self, "_sentinels", sentinels)
        # Indexed by id up to the largest special id: one gather instead of np.isin's sort on the hot path.
        table = np.zeros(max(self.ids, default=0) + 1, dtype=bool)
        table[list(self.ids)] = True
        table.flags.writeable = False
        object.__setattr__(self, "_is_special_table", table)

    @classmethod
    def contiguous(cls, first_id: int, num_sentinels: int = NUM_SENTINELS) -> "SpecialTokens":
        """The standard table with ids ``first_id, first_id + 1, ...``."""
        names = _special_names(num_sentinels)
        return cls(tuple(names), tuple(range(first_id, first_id + len(names))))

    def id(self, name: str) -> int:
        """Id of a special token given as ``"<|eos|>"`` or ``"eos"``."""
        key = name if name.startswith("<|") else f"<|{name}|>"
        try:
            return self._by_name[key]
        except KeyError:
            raise KeyError(f"unknown special token {name!r}; known: {', '.join(self.names[:20])}, ...") from None

    @property
    def pad(self) -> int:
        return self._by_name["<|pad|>"]

    @property
    def eos(self) -> int:
        return self._by_name["<|eos|>"]

    @property
    def bos(self) -> int:
        return self._by_name["<|bos|>"]

    @property
    def begin_generating(self) -> int:
        return self._by_name["<|begin_generating|>"]

    @property
    def sentinels(self) -> np.ndarray:
        """Sentinel ids for masked spans, in order (int64; ``num_sentinels`` of them, 128 by default)."""
        return self._sentinels

    def paradigm(self, objective_class: str) -> int:
        """Paradigm token of an objective class (one of :data:`OBJECTIVE_CLASSES`)."""
        if objective_class not in OBJECTIVE_CLASSES:
            raise KeyError(f"unknown objective class {objective_class!r}; valid: {', '.join(OBJECTIVE_CLASSES)}")
        return self._by_name[f"<|{objective_class}|>"]

    def marker(self, name: str) -> int:
        """Selective-copying marker id (one of :data:`SELECTIVE_COPYING_MARKERS`)."""
        if name not in SELECTIVE_COPYING_MARKERS:
            raise KeyError(f"unknown marker {name!r}; valid: {', '.join(SELECTIVE_COPYING_MARKERS)}")
        return self._by_name[f"<|{name}|>"]

    @property
    def min_id(self) -> int:
        return min(self.ids)

    def is_special(self, ids: np.ndarray) -> np.ndarray:
        """Boolean mask of the special ids in ``ids``."""
        ids = np.asarray(ids)
        table = self._is_special_table
        inside = (ids >= 0) & (ids < len(table))
        return table[np.where(inside, ids, 0)] & inside

    def name_of(self, token_id: int) -> str | None:
        """The special-token string of ``token_id``, or None when it is not special."""
        for n, i in zip(self.names, self.ids):
            if i == token_id:
                return n
        return None


@runtime_checkable
class Tokenizer(Protocol):
    """What birdie needs from a tokenizer."""

    vocab_size: int
    specials: SpecialTokens

    def encode(self, text: str) -> np.ndarray:
        """Token ids (int32, 1-D) of ``text``; never a special id."""

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        """Text of ``ids``; special ids are rendered as their names (``<|eos|>``)."""


def _ids_array(ids: Iterable[int] | np.ndarray) -> np.ndarray:
    if hasattr(ids, "detach"):  # a torch tensor, possibly on an accelerator
        ids = ids.detach().cpu().numpy()
    return np.asarray(ids, dtype=np.int64).reshape(-1)


def _decode_runs(ids: np.ndarray, specials: SpecialTokens, decode_text) -> str:
    """Decode ``ids``, rendering special ids by name and decoding each run of ordinary ids with ``decode_text``."""
    special_mask = specials.is_special(ids)
    if not special_mask.any():
        return decode_text(ids)
    pieces: list[str] = []
    start = 0
    for pos in np.flatnonzero(special_mask):
        if pos > start:
            pieces.append(decode_text(ids[start:pos]))
        pieces.append(specials.name_of(int(ids[pos])) or "")
        start = pos + 1
    if start < len(ids):
        pieces.append(decode_text(ids[start:]))
    return "".join(pieces)


class ByteTokenizer:
    """UTF-8 bytes as ids 0..255; special tokens at 256 and up. Needs no files."""

    def __init__(self, num_sentinels: int = NUM_SENTINELS) -> None:
        self.specials = SpecialTokens.contiguous(256, num_sentinels)
        self.vocab_size = 256 + len(self.specials.ids)

    def encode(self, text: str) -> np.ndarray:
        return np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.int32)

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        ids = _ids_array(ids)
        # An id outside the vocabulary (a model whose padded vocabulary is larger can sample one) becomes the
        # invalid byte 0xFF, which decodes to U+FFFD: visible, never silently another character.
        ids = np.where((ids < 0) | (ids >= self.vocab_size), 0xFF, ids)
        return _decode_runs(
            ids, self.specials, lambda run: bytes(run.astype(np.uint8)).decode("utf-8", errors="replace")
        )

    def spec(self) -> dict[str, Any]:
        """A JSON-able description that :func:`load_tokenizer` rebuilds this tokenizer from."""
        return {"kind": "bytes", "num_sentinels": len(self.specials.sentinels)}


class HFTokenizer:
    """A HF ``tokenizers.Tokenizer`` (or fast ``transformers`` tokenizer) with birdie's specials as added tokens.

    Text that happens to spell a special token (``"<|eos|>"``) is encoded as ordinary text: encoding text never
    yields a special id.
    """

    def __init__(self, tokenizer: Any, num_sentinels: int = NUM_SENTINELS) -> None:
        from tokenizers import AddedToken, Tokenizer as RawTokenizer

        if not isinstance(tokenizer, RawTokenizer):
            backend = getattr(tokenizer, "backend_tokenizer", None)
            if backend is None:
                raise TypeError(
                    f"HFTokenizer needs a tokenizers.Tokenizer or a fast transformers tokenizer, got "
                    f"{type(tokenizer).__name__}; wrap other tokenizers with ExtendedTokenizer"
                )
            tokenizer = RawTokenizer.from_str(backend.to_str())
        names = _special_names(num_sentinels)
        missing = [n for n in names if tokenizer.token_to_id(n) is None]
        if missing:
            tokenizer.add_special_tokens([AddedToken(n, special=True, normalized=False) for n in missing])
        tokenizer.encode_special_tokens = True
        self._tok = tokenizer
        self._one_off: Any = None  # the copy behind encode_once, made on first use
        self.specials = SpecialTokens(tuple(names), tuple(tokenizer.token_to_id(n) for n in names))
        self.vocab_size = tokenizer.get_vocab_size(with_added_tokens=True)

    @classmethod
    def from_file(cls, path: str | os.PathLike, num_sentinels: int = NUM_SENTINELS) -> "HFTokenizer":
        from tokenizers import Tokenizer as RawTokenizer

        return cls(RawTokenizer.from_file(str(path)), num_sentinels)

    def encode(self, text: str) -> np.ndarray:
        return np.asarray(self._tok.encode(text, add_special_tokens=False).ids, dtype=np.int32)

    def encode_batch(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Encode many texts at once (HF parallelises this in Rust)."""
        return [np.asarray(e.ids, dtype=np.int32) for e in self._tok.encode_batch(list(texts), add_special_tokens=False)]

    def encode_once(self, text: str) -> np.ndarray:
        """``encode(text)`` for text whose words will not recur (deshuffling's shuffled characters).

        It runs on a second copy of the tokenizer: HF's BPE caches the first 10,000 distinct words it sees, and
        one-off words filling that cache slowed ``encode`` of ordinary text by 20-35% (stories BPE) for the rest of
        the process.
        """
        if self._one_off is None:
            from tokenizers import Tokenizer as RawTokenizer

            try:
                self._one_off = RawTokenizer.from_str(self._tok.to_str())
                self._one_off.encode_special_tokens = True
            except Exception:  # custom Python components cannot be serialized (tokenizers raises a bare Exception)
                self._one_off = self._tok  # then share its cache rather than fail
        return np.asarray(self._one_off.encode(text, add_special_tokens=False).ids, dtype=np.int32)

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        return _decode_runs(
            _ids_array(ids), self.specials, lambda run: self._tok.decode(run.tolist(), skip_special_tokens=False)
        )

    def save(self, path: str | os.PathLike) -> None:
        """Write the tokenizer (with the specials) as a ``tokenizer.json`` file."""
        self._tok.save(str(path))

    def spec(self) -> dict[str, Any]:
        return {"kind": "hf", "json": self._tok.to_str(), "num_sentinels": len(self.specials.sentinels)}


class ExtendedTokenizer:
    """Any tokenizer with ``encode``/``decode`` (tiktoken, sentencepiece, a user's own), with specials on top.

    Special ids are ``base_vocab_size, base_vocab_size + 1, ...``; the base tokenizer never sees them.

    Args:
        base: the wrapped tokenizer. ``encode_ordinary`` is used when present (tiktoken), so text never maps to
            the base tokenizer's own special tokens either.
        base_vocab_size: size of the base vocabulary; read from ``n_vocab``, ``vocab_size`` or ``len(base)``
            when not given.
    """

    def __init__(self, base: Any, base_vocab_size: int | None = None, num_sentinels: int = NUM_SENTINELS) -> None:
        if not (callable(getattr(base, "encode", None)) and callable(getattr(base, "decode", None))):
            raise TypeError(f"a tokenizer needs encode() and decode() methods; {type(base).__name__} lacks them")
        if base_vocab_size is None:
            for attr in ("n_vocab", "vocab_size"):
                value = getattr(base, attr, None)
                if isinstance(value, int):
                    base_vocab_size = value
                    break
            else:
                try:
                    base_vocab_size = len(base)
                except TypeError:
                    raise TypeError(
                        f"cannot tell the vocabulary size of {type(base).__name__}; pass base_vocab_size="
                    ) from None
        self.base = base
        self.base_vocab_size = int(base_vocab_size)
        self._encode = getattr(base, "encode_ordinary", None) or base.encode
        self.specials = SpecialTokens.contiguous(self.base_vocab_size, num_sentinels)
        self.vocab_size = self.base_vocab_size + len(self.specials.ids)

    def encode(self, text: str) -> np.ndarray:
        return self._checked(self._encode(text))

    def encode_batch(self, texts: Sequence[str]) -> list[np.ndarray]:
        batch = getattr(self.base, "encode_ordinary_batch", None)
        if batch is None:
            return [self.encode(t) for t in texts]
        return [self._checked(ids) for ids in batch(list(texts))]

    def _checked(self, ids: Any) -> np.ndarray:
        """The base tokenizer's ``ids`` as int32; an id at or above ``base_vocab_size`` would alias a special."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        if ids.size and (ids.min() < 0 or ids.max() >= self.base_vocab_size):
            raise ValueError(
                f"{type(self.base).__name__}.encode returned ids outside [0, {self.base_vocab_size}); "
                "pass the right base_vocab_size"
            )
        return ids.astype(np.int32)

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        return _decode_runs(_ids_array(ids), self.specials, lambda run: self.base.decode(run.tolist()))

    def spec(self) -> dict[str, Any]:
        name = getattr(self.base, "name", None)
        if type(self.base).__module__.startswith("tiktoken") and name:
            return {"kind": "tiktoken", "name": name, "num_sentinels": len(self.specials.sentinels)}
        raise ValueError(
            f"{type(self.base).__name__} cannot be saved by birdie; save it yourself and pass it as the tokenizer"
        )


def tiktoken_tokenizer(encoding: str | Any, num_sentinels: int = NUM_SENTINELS) -> ExtendedTokenizer:
    """Wrap a tiktoken encoding (an ``Encoding`` object or a name tiktoken can load, e.g. from TIKTOKEN_CACHE_DIR)."""
    if isinstance(encoding, str):
        import tiktoken

        encoding = tiktoken.get_encoding(encoding)
    return ExtendedTokenizer(encoding, base_vocab_size=encoding.n_vocab, num_sentinels=num_sentinels)


def as_tokenizer(obj: Any) -> Tokenizer:
    """Return ``obj`` as a birdie :class:`Tokenizer`.

    Accepts None (the :class:`ByteTokenizer`), a birdie tokenizer (returned as is), a spec string or path for
    :func:`load_tokenizer`, a HF tokenizer, or any object with ``encode``/``decode``.
    """
    if obj is None:
        return ByteTokenizer()
    if isinstance(obj, (str, os.PathLike)):
        return load_tokenizer(obj)
    if isinstance(obj, (ByteTokenizer, HFTokenizer, ExtendedTokenizer)):
        return obj
    try:
        from tokenizers import Tokenizer as RawTokenizer
    except ImportError:
        RawTokenizer = ()  # type: ignore[assignment]
    if isinstance(obj, RawTokenizer) or getattr(obj, "backend_tokenizer", None) is not None:
        return HFTokenizer(obj)
    if isinstance(obj, Tokenizer):  # the runtime protocol check covers specials and vocab_size too
        return obj
    return ExtendedTokenizer(obj)


def load_tokenizer(spec: str | os.PathLike | dict[str, Any]) -> Tokenizer:
    """Build a tokenizer from a spec.

    Specs: ``"bytes"``; a path to a HF ``tokenizer.json`` (or a directory holding one); ``"tiktoken:NAME"``;
    or a dict written by a tokenizer's ``spec()`` method.
    """
    if isinstance(spec, dict):
        kind = spec.get("kind")
        num_sentinels = spec.get("num_sentinels", NUM_SENTINELS)  # absent from specs written before it was recorded
        if kind == "bytes":
            return ByteTokenizer(num_sentinels)
        if kind == "hf":
            from tokenizers import Tokenizer as RawTokenizer

            return HFTokenizer(RawTokenizer.from_str(spec["json"]), num_sentinels)
        if kind == "tiktoken":
            return tiktoken_tokenizer(spec["name"], num_sentinels)
        raise ValueError(f"unknown tokenizer spec kind {kind!r}; valid: bytes, hf, tiktoken")
    text = str(spec)
    if text in ("bytes", "byte"):
        return ByteTokenizer()
    if text.startswith("tiktoken:"):
        return tiktoken_tokenizer(text.split(":", 1)[1])
    path = Path(text)
    if path.is_dir():
        path = path / "tokenizer.json"
    if path.is_file():
        if path.suffix == ".json":
            contents = json.loads(path.read_text())
            if contents.get("kind") in ("bytes", "hf", "tiktoken"):  # a spec() written to a file
                return load_tokenizer(contents)
        return HFTokenizer.from_file(path)
    raise ValueError(
        f"cannot load tokenizer {text!r}: use 'bytes', 'tiktoken:NAME', or the path of a HF tokenizer.json"
    )


def train_bpe(files: Sequence[str | os.PathLike], vocab_size: int, min_frequency: int = 2) -> HFTokenizer:
    """Train a byte-level BPE on text files with HF ``tokenizers``; birdie's specials are reserved in it."""
    from tokenizers import ByteLevelBPETokenizer

    if vocab_size < 256 + len(_special_names(NUM_SENTINELS)):
        raise ValueError(
            f"vocab_size={vocab_size} is too small: a byte-level BPE needs 256 byte tokens plus "
            f"{len(_special_names(NUM_SENTINELS))} specials"
        )
    missing = [str(f) for f in files if not Path(f).is_file()]
    if missing:
        raise FileNotFoundError(f"tokenizer training files not found: {', '.join(missing)}")
    bpe = ByteLevelBPETokenizer()
    bpe.train([str(f) for f in files], vocab_size=vocab_size, min_frequency=min_frequency,
              special_tokens=_special_names(NUM_SENTINELS), show_progress=False)
    from tokenizers import Tokenizer as RawTokenizer

    return HFTokenizer(RawTokenizer.from_str(bpe.to_str()))
