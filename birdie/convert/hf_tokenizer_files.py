"""A birdie tokenizer as Hugging Face tokenizer files (``tokenizer.json`` + ``tokenizer_config.json``).

``AutoTokenizer.from_pretrained`` then encodes text to the same ids as birdie and knows birdie's ``<|eos|>``,
``<|bos|>`` and ``<|pad|>``. The byte tokenizer becomes a byte-level BPE without merges whose ids are the byte
values (GPT-2's byte-to-character table), with the specials added at birdie's ids.
"""

from __future__ import annotations

import json
from pathlib import Path

from birdie.tokenizers import ByteTokenizer, HFTokenizer, Tokenizer


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
    from tokenizers import AddedToken, Tokenizer as RawTokenizer, decoders, models, pre_tokenizers

    vocab = {char: byte for byte, char in _bytes_to_unicode().items()}
    raw = RawTokenizer(models.BPE(vocab=vocab, merges=[]))
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    raw.decoder = decoders.ByteLevel()
    names, ids = tokenizer.specials.names, tokenizer.specials.ids
    if list(ids) != list(range(256, 256 + len(ids))):
        raise ValueError("the byte tokenizer's special ids are not 256, 257, ...; cannot express it for HF")
    raw.add_special_tokens([AddedToken(name, special=True, normalized=False) for name in names])
    return raw.to_str()


def check_hf_tokenizer(tokenizer: Tokenizer) -> None:
    """Raise ValueError unless :func:`write_hf_tokenizer` can write ``tokenizer``."""
    if not isinstance(tokenizer, (HFTokenizer, ByteTokenizer)):
        raise ValueError(f"to-hf writes HF tokenizer.json files for byte and HF (tokenizer.json) tokenizers; "
                         f"{type(tokenizer).__name__} is neither: export the model with one of those")


def write_hf_tokenizer(directory: Path, tokenizer: Tokenizer, max_length: int) -> None:
    """Write ``tokenizer.json``, ``tokenizer_config.json`` and ``special_tokens_map.json`` into ``directory``."""
    check_hf_tokenizer(tokenizer)
    if isinstance(tokenizer, HFTokenizer):
        tokenizer.save(directory / "tokenizer.json")
    else:
        (directory / "tokenizer.json").write_text(byte_tokenizer_json(tokenizer))
    specials = {"bos_token": "<|bos|>", "eos_token": "<|eos|>", "pad_token": "<|pad|>"}
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": max_length,
              "add_bos_token": False, "add_eos_token": False, "clean_up_tokenization_spaces": False, **specials}
    (directory / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    (directory / "special_tokens_map.json").write_text(json.dumps(specials, indent=2))
