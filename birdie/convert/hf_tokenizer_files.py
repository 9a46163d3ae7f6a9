"""A birdie tokenizer as Hugging Face tokenizer files (``tokenizer.json`` + ``tokenizer_config.json``).

``AutoTokenizer.from_pretrained`` then encodes text to the same ids as birdie and knows birdie's ``<|eos|>``,
``<|bos|>`` and ``<|pad|>``. The byte tokenizer becomes a byte-level BPE without merges whose ids are the byte
values (GPT-2's byte-to-character table), with the specials added at birdie's ids. SentencePiece and tiktoken
tokenizers are converted and checked by :mod:`birdie.convert.hf_tokenizer_json`.
"""

from __future__ import annotations

import json
from pathlib import Path

from birdie.convert.hf_tokenizer_json import add_birdie_specials, sentencepiece_tokenizer_json, tiktoken_tokenizer_json
from birdie.tokenizers import ByteTokenizer, ExtendedTokenizer, HFTokenizer, SentencePieceTokenizer, Tokenizer


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's printable stand-in character for every byte (the ``ByteLevel`` pre-tokenizer's alphabet)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) \
        + list(range(ord("®"), ord("ÿ") + 1))
    table, extra = {}, 0
    for byte in range(256):
        if byte in printable:
            table[byte] = chr(byte)
        else:
            table[byte] = chr(256 + extra)
            extra += 1
    return table


def byte_tokenizer_json(tokenizer: ByteTokenizer) -> str:
    """A ``tokenizers`` JSON encoding text exactly as ``tokenizer`` (bytes 0..255, specials at their ids)."""
    from tokenizers import Tokenizer as RawTokenizer, decoders, models, pre_tokenizers

    vocab = {char: byte for byte, char in _bytes_to_unicode().items()}
    raw = RawTokenizer(models.BPE(vocab=vocab, merges=[]))
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    raw.decoder = decoders.ByteLevel()
    add_birdie_specials(raw, tokenizer)
    return raw.to_str()


def hf_tokenizer_json(tokenizer: Tokenizer) -> str:
    """``tokenizer`` as a ``tokenizer.json`` string that encodes text to the same ids; ValueError if it cannot be
    written faithfully (the message says why)."""
    if isinstance(tokenizer, HFTokenizer):
        return tokenizer.spec()["json"]
    if isinstance(tokenizer, ByteTokenizer):
        return byte_tokenizer_json(tokenizer)
    if isinstance(tokenizer, SentencePieceTokenizer):
        return sentencepiece_tokenizer_json(tokenizer)
    if isinstance(tokenizer, ExtendedTokenizer) and type(tokenizer.base).__module__.startswith("tiktoken"):
        return tiktoken_tokenizer_json(tokenizer)
    raise ValueError(f"to-hf writes byte, HF (tokenizer.json), SentencePiece and tiktoken tokenizers; "
                     f"{type(tokenizer).__name__} wrapping {type(getattr(tokenizer, 'base', tokenizer)).__name__} "
                     "is none of them: export the model with one of those")


def write_hf_tokenizer(directory: Path, tokenizer: Tokenizer, tokenizer_json: str, max_length: int) -> None:
    """Write ``tokenizer.json`` (from :func:`hf_tokenizer_json`), ``tokenizer_config.json`` and
    ``special_tokens_map.json`` into ``directory``, and a SentencePiece model's own ``tokenizer.model``."""
    (directory / "tokenizer.json").write_text(tokenizer_json)
    if isinstance(tokenizer, SentencePieceTokenizer):  # for tools that read SentencePiece directly (llama.cpp)
        (directory / "tokenizer.model").write_bytes(tokenizer.model_proto)
    specials = {"bos_token": "<|bos|>", "eos_token": "<|eos|>", "pad_token": "<|pad|>"}
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": max_length,
              "add_bos_token": False, "add_eos_token": False, "clean_up_tokenization_spaces": False, **specials}
    (directory / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    (directory / "special_tokens_map.json").write_text(json.dumps(specials, indent=2))
