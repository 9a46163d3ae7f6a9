"""Text <-> token ids for the harness: the one tokenization both front-ends use.

lm-eval asks a model to encode the EOS *string* (``<|eos|>``) to its single id (the remote tokenizer derives
``eos_token_id`` that way), while birdie tokenizers never turn text into special ids. :func:`encode_text` keeps
ordinary text on the tokenizer's own path and maps the exact special-token names to their ids, so the in-process
model and the server tokenize every string identically.
"""

from __future__ import annotations

import re
from functools import lru_cache

from birdie.tokenizers import SpecialTokens, Tokenizer


@lru_cache(maxsize=16)
def _special_pattern(specials: SpecialTokens) -> re.Pattern[str]:
    names = sorted(specials.names, key=len, reverse=True)
    return re.compile("(" + "|".join(re.escape(name) for name in names) + ")")


def encode_text(tokenizer: Tokenizer, text: str) -> list[int]:
    """Token ids of ``text``; spelled-out special-token names (``<|eos|>``) become their ids."""
    specials = tokenizer.specials
    ids: list[int] = []
    for i, piece in enumerate(_special_pattern(specials).split(text)):
        if i % 2:
            ids.append(specials.id(piece))
        elif piece:
            ids.extend(int(t) for t in tokenizer.encode(piece))
    return ids


def eos_string(tokenizer: Tokenizer) -> str:
    """The EOS token's name (``<|eos|>``), the string lm-eval appends to generation stop sequences."""
    return tokenizer.specials.name_of(tokenizer.specials.eos) or ""
