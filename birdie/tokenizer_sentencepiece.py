"""A SentencePiece model (``tokenizer.model``, Llama 2 / Mistral) as a birdie tokenizer.

The model's own ids are kept (``<unk>``, ``<s>``, ``</s>`` and every piece stay where they are); birdie's special
tokens get ids from ``first_special_id`` up (by default the piece count), which the model's pieces never use.
The serialized model travels inside the tokenizer's spec, so an export needs no second file.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any, Sequence

from birdie.special_tokens import NUM_SENTINELS
from birdie.tokenizers import ExtendedTokenizer


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
