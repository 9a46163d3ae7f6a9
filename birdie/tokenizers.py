"""Special-token-aware tokenizers.

Every tokenizer birdie uses follows one small protocol (:class:`Tokenizer`): ``encode(str) -> ndarray``,
``decode(ids) -> str``, ``vocab_size`` and ``specials``, a :class:`SpecialTokens` table
(:mod:`birdie.special_tokens`) of single ids that encoding text can never produce (padding, end of text, the begin-
generating token that separates an example's prefix from its target, sentinels for masked spans, one paradigm token
per objective class and the selective-copying markers).

Three implementations:

* :class:`ByteTokenizer` -- UTF-8 bytes are ids 0..255, specials follow. The zero-download default.
* :class:`HFTokenizer` -- any HF ``tokenizers.Tokenizer`` or fast ``transformers`` tokenizer; the specials become
  added tokens, and text that spells a special token out is encoded as ordinary text.
* :class:`ExtendedTokenizer` -- any object with ``encode``/``decode`` (a ``tiktoken`` encoding, a user's own
  tokenizer); specials get ids above its vocabulary and ``decode`` renders them itself.
  :class:`SentencePieceTokenizer` is one for a SentencePiece ``tokenizer.model`` (Llama 2, Mistral), whose
  serialized model travels inside the spec.

:func:`load_tokenizer` builds any of them from a spec string, and :func:`as_tokenizer` wraps whatever a user
passes.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any, Iterable, Protocol, Sequence, runtime_checkable

import numpy as np

from birdie.special_tokens import (  # noqa: F401 -- re-exported: the tokenizers' public vocabulary
    NUM_SENTINELS,
    OBJECTIVE_NAMES,
    SELECTIVE_COPYING_MARKERS,
    SpecialTokens,
    special_token_names,
)


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

    def __init__(self, num_sentinels: int = NUM_SENTINELS, special_names: Sequence[str] | None = None) -> None:
        self.specials = SpecialTokens.contiguous(256, num_sentinels, special_names)
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
        return {"kind": "bytes", "num_sentinels": len(self.specials.sentinels),
                "special_tokens": list(self.specials.names)}


class HFTokenizer:
    """A HF ``tokenizers.Tokenizer`` (or fast ``transformers`` tokenizer) with birdie's specials as added tokens.

    Text that happens to spell a special token (``"<|eos|>"``) is encoded as ordinary text: encoding text never
    yields a special id.
    """

    def __init__(self, tokenizer: Any, num_sentinels: int = NUM_SENTINELS,
                 special_names: Sequence[str] | None = None) -> None:
        from tokenizers import AddedToken, Tokenizer as RawTokenizer

        if not isinstance(tokenizer, RawTokenizer):
            backend = getattr(tokenizer, "backend_tokenizer", None)
            if backend is None:
                raise TypeError(
                    f"HFTokenizer needs a tokenizers.Tokenizer or a fast transformers tokenizer, got "
                    f"{type(tokenizer).__name__}; wrap other tokenizers with ExtendedTokenizer"
                )
            tokenizer = RawTokenizer.from_str(backend.to_str())
        names = list(special_names) if special_names is not None else special_token_names(num_sentinels)
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
        return {"kind": "hf", "json": self._tok.to_str(), "num_sentinels": len(self.specials.sentinels),
                "special_tokens": list(self.specials.names)}


class ExtendedTokenizer:
    """Any tokenizer with ``encode``/``decode`` (tiktoken, sentencepiece, a user's own), with specials on top.

    Special ids are ``base_vocab_size, base_vocab_size + 1, ...``; the base tokenizer never sees them.

    Args:
        base: the wrapped tokenizer. ``encode_ordinary`` is used when present (tiktoken), so text never maps to
            the base tokenizer's own special tokens either.
        base_vocab_size: size of the base vocabulary; read from ``n_vocab``, ``vocab_size`` or ``len(base)``
            when not given.
    """

    def __init__(self, base: Any, base_vocab_size: int | None = None, num_sentinels: int = NUM_SENTINELS,
                 special_names: Sequence[str] | None = None) -> None:
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
        self.specials = SpecialTokens.contiguous(self.base_vocab_size, num_sentinels, special_names)
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
            return {"kind": "tiktoken", "name": name, "num_sentinels": len(self.specials.sentinels),
                    "special_tokens": list(self.specials.names)}
        raise ValueError(
            f"{type(self.base).__name__} cannot be saved by birdie; save it yourself and pass it as the tokenizer"
        )


class SentencePieceTokenizer(ExtendedTokenizer):
    """``sentencepiece.SentencePieceProcessor`` with birdie's specials at ``first_special_id, ...``.

    Args:
        model_proto: the serialized SentencePiece model (the bytes of a ``tokenizer.model`` file).
        first_special_id: id of the first birdie special; at least the piece count (a larger value leaves the
            ids in between unused, e.g. the padding rows of a model whose embedding is larger than its vocabulary).
    """

    def __init__(self, model_proto: bytes, first_special_id: int | None = None,
                 num_sentinels: int = NUM_SENTINELS, special_names: Sequence[str] | None = None) -> None:
        import sentencepiece

        processor = sentencepiece.SentencePieceProcessor(model_proto=model_proto)
        pieces = processor.get_piece_size()
        first = pieces if first_special_id is None else int(first_special_id)
        if first < pieces:
            raise ValueError(f"first_special_id={first} would reuse the SentencePiece model's ids (it has {pieces})")
        self._proto = bytes(model_proto)
        self.piece_count = pieces
        super().__init__(processor, base_vocab_size=first, num_sentinels=num_sentinels, special_names=special_names)

    @property
    def model_proto(self) -> bytes:
        """The serialized SentencePiece model (the bytes of its ``tokenizer.model``)."""
        return self._proto

    @classmethod
    def from_file(cls, path: str | Path, first_special_id: int | None = None,
                  num_sentinels: int = NUM_SENTINELS) -> "SentencePieceTokenizer":
        """Load a ``tokenizer.model`` file."""
        return cls(Path(path).read_bytes(), first_special_id, num_sentinels)

    def spec(self) -> dict[str, Any]:
        return {"kind": "sentencepiece", "model": base64.b64encode(self._proto).decode("ascii"),
                "first_special_id": self.base_vocab_size, "num_sentinels": len(self.specials.sentinels),
                "special_tokens": list(self.specials.names)}

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> "SentencePieceTokenizer":
        """Inverse of :meth:`spec`."""
        return cls(base64.b64decode(spec["model"]), spec["first_special_id"], spec.get("num_sentinels", NUM_SENTINELS),
                   spec.get("special_tokens"))


def tiktoken_tokenizer(encoding: str | Any, num_sentinels: int = NUM_SENTINELS,
                       special_names: Sequence[str] | None = None) -> ExtendedTokenizer:
    """Wrap a tiktoken encoding (an ``Encoding`` object or a name tiktoken can load, e.g. from TIKTOKEN_CACHE_DIR)."""
    if isinstance(encoding, str):
        import tiktoken

        encoding = tiktoken.get_encoding(encoding)
    return ExtendedTokenizer(encoding, base_vocab_size=encoding.n_vocab, num_sentinels=num_sentinels,
                             special_names=special_names)


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
        # The saved table keeps the tokenizer's special ids when the objective registry grows (absent: older specs)
        names = spec.get("special_tokens")
        if kind == "bytes":
            return ByteTokenizer(num_sentinels, names)
        if kind == "hf":
            from tokenizers import Tokenizer as RawTokenizer

            return HFTokenizer(RawTokenizer.from_str(spec["json"]), num_sentinels, names)
        if kind == "tiktoken":
            return tiktoken_tokenizer(spec["name"], num_sentinels, names)
        if kind == "sentencepiece":
            return SentencePieceTokenizer.from_spec(spec)
        raise ValueError(f"unknown tokenizer spec kind {kind!r}; valid: bytes, hf, tiktoken, sentencepiece")
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
            if contents.get("kind") in ("bytes", "hf", "tiktoken", "sentencepiece"):  # a spec() written to a file
                return load_tokenizer(contents)
        return HFTokenizer.from_file(path)
    raise ValueError(
        f"cannot load tokenizer {text!r}: use 'bytes', 'tiktoken:NAME', or the path of a HF tokenizer.json"
    )


def train_bpe(files: Sequence[str | os.PathLike], vocab_size: int, min_frequency: int = 2) -> HFTokenizer:
    """Train a byte-level BPE on text files with HF ``tokenizers``; birdie's specials are reserved in it."""
    from tokenizers import ByteLevelBPETokenizer

    if vocab_size < 256 + len(special_token_names(NUM_SENTINELS)):
        raise ValueError(
            f"vocab_size={vocab_size} is too small: a byte-level BPE needs 256 byte tokens plus "
            f"{len(special_token_names(NUM_SENTINELS))} specials"
        )
    missing = [str(f) for f in files if not Path(f).is_file()]
    if missing:
        raise FileNotFoundError(f"tokenizer training files not found: {', '.join(missing)}")
    bpe = ByteLevelBPETokenizer()
    bpe.train([str(f) for f in files], vocab_size=vocab_size, min_frequency=min_frequency,
              special_tokens=special_token_names(NUM_SENTINELS), show_progress=False)
    from tokenizers import Tokenizer as RawTokenizer

    return HFTokenizer(RawTokenizer.from_str(bpe.to_str()))
