"""SentencePiece and tiktoken tokenizers as a HF ``tokenizer.json`` that keeps their ids, checked before it is used.

* SentencePiece **BPE** models (Llama 2, Mistral) go through ``transformers``' own converter
  (``SpmConverter.build_tokenizer_from_spm_proto``, which follows the model's normalizer spec: extra-whitespace
  removal, dummy prefix, byte fallback, user-defined pieces). Control and unknown pieces stay in the BPE vocabulary,
  where text can never reach them (as in SentencePiece), and decode to what SentencePiece renders for them
  (nothing, and `` ⁇ ``). Unigram models are refused: ``tokenizers``' Unigram would read a control piece such as
  ``<s>`` out of text, which SentencePiece never does.
* **tiktoken** encodings become a byte-level BPE (``TikTokenConverter``'s vocabulary and merges, the encoding's own
  split pattern). Its special tokens and the unused ids between them stay in the vocabulary too, unreachable from
  text, as ``encode_ordinary`` never produces them.

birdie's own specials are added on top as special tokens at birdie's ids. Every conversion is then checked on
:data:`PROBES`: each probe must encode to birdie's ids and those ids must decode to birdie's text, else the export is
refused with the first probe that differs.
"""

from __future__ import annotations

import re
from typing import Any

from birdie.tokenizers import ExtendedTokenizer, SentencePieceTokenizer, Tokenizer

#: text every converted tokenizer must encode and decode exactly as birdie does (whitespace runs, newlines, Unicode
#: that NFKC changes, digits, contractions, code, spelled-out control pieces, SentencePiece's meta symbol)
PROBES = (
    "Once upon a time, a little fox found a red ball in the tall grass.",
    "  leading, trailing and  doubled   spaces  ",
    "tabs\tand\nnew lines\n\n\r\nend",
    "Ünïcödé: ½ ﬁ Å ｆｕｌｌ 東京 🙂 naïve café",
    "digits 12345 and 3.14159, 1,000,000",
    "def f(x):\n    return x ** 2  # comment",
    "'s 're 've 'm 'll 'd don't I'M YOU'LL",
    "<s> </s> <unk> <pad> <|endoftext|> [CLS] ▁already ▁▁meta",
    "",
    " ",
    "\n",
)

_BPE = 2  # SentencePiece's ModelProto.TrainerSpec.ModelType.BPE
_NEVER_FROM_TEXT = {2: "unknown", 3: "control", 5: "unused"}  # SentencePiece piece types text never yields


def sentencepiece_tokenizer_json(tokenizer: SentencePieceTokenizer) -> str:
    """``tokenizer`` (a SentencePiece BPE model + birdie's specials) as a checked ``tokenizer.json`` string."""
    from sentencepiece import sentencepiece_model_pb2
    from tokenizers import Regex, decoders
    from transformers.convert_slow_tokenizer import SpmConverter

    proto = sentencepiece_model_pb2.ModelProto.FromString(tokenizer.model_proto)
    if proto.trainer_spec.model_type != _BPE:
        kind = sentencepiece_model_pb2.TrainerSpec.ModelType.Name(proto.trainer_spec.model_type)
        raise ValueError(f"to-hf writes SentencePiece BPE models only; this one is {kind}: tokenizers' Unigram reads "
                         "control pieces such as <s> out of text, which SentencePiece never does, so the ids would "
                         "differ. Use the exported tokenizer.model with sentencepiece directly")
    if not hasattr(SpmConverter, "build_tokenizer_from_spm_proto"):
        raise ImportError("writing a SentencePiece tokenizer.json needs a transformers version whose SpmConverter "
                          "has build_tokenizer_from_spm_proto: pip install -U transformers")
    vocab = {piece.piece: index for index, piece in enumerate(proto.pieces)}
    raw = SpmConverter.build_tokenizer_from_spm_proto(proto, vocab, legacy=True)
    # SentencePiece decodes control and unused pieces to nothing and the unknown piece to its unk_surface
    rendered = [decoders.Replace(Regex(f"^{re.escape(piece.piece)}$"),
                                 proto.trainer_spec.unk_surface if piece.type == 2 else "")
                for piece in proto.pieces if piece.type in _NEVER_FROM_TEXT]
    raw.decoder = decoders.Sequence([*rendered, raw.decoder])
    return _finish(raw, tokenizer)


def tiktoken_tokenizer_json(tokenizer: ExtendedTokenizer) -> str:
    """``tokenizer`` (a tiktoken encoding + birdie's specials) as a checked ``tokenizer.json`` string."""
    from transformers.convert_slow_tokenizer import TikTokenConverter, bytes_to_unicode

    encoding = tokenizer.base
    ranks: dict[bytes, int] = encoding._mergeable_ranks
    if sorted(ranks.values()) != list(range(len(ranks))):
        raise ValueError(f"tiktoken encoding {encoding.name!r}: its ranks are not 0..{len(ranks) - 1}, so a BPE "
                         "vocabulary cannot keep its ids")
    byte_chars = bytes_to_unicode()
    named = {index: name for name, index in encoding._special_tokens.items()}

    class Converter(TikTokenConverter):
        def load_tiktoken_bpe(self, tiktoken_url: str) -> dict[bytes, int]:
            return ranks

        def extract_vocab_merges_from_model(self, tiktoken_url: str):
            vocab, merges = super().extract_vocab_merges_from_model(tiktoken_url)
            for index in range(len(ranks), tokenizer.base_vocab_size):  # tiktoken's specials and the unused ids
                name = named.get(index, f"<|birdie_unused_{index}|>")
                vocab["".join(byte_chars[byte] for byte in name.encode("utf-8"))] = index
            return vocab, merges

    try:
        raw = Converter(vocab_file=encoding.name, pattern=encoding._pat_str).converted()
    except Exception as error:  # e.g. the Rust regex engine rejects the split pattern
        raise ValueError(f"tiktoken encoding {encoding.name!r} cannot be written as a tokenizer.json: {error}") from None
    return _finish(raw, tokenizer)


def add_birdie_specials(raw: Any, tokenizer: Tokenizer) -> None:
    """Add birdie's specials to ``raw`` (a ``tokenizers.Tokenizer``) as special tokens; they must land at birdie's
    ids, which follow the base vocabulary without a gap."""
    from tokenizers import AddedToken

    names, ids = tokenizer.specials.names, list(tokenizer.specials.ids)
    first = raw.get_vocab_size(with_added_tokens=True)
    if ids != list(range(first, first + len(ids))):
        raise ValueError(f"birdie's special ids start at {ids[0]} but the converted vocabulary ends at {first - 1}; "
                         "a tokenizer.json cannot leave the ids between them empty")
    raw.add_special_tokens([AddedToken(name, special=True, normalized=False) for name in names])


def _finish(raw: Any, tokenizer: Tokenizer) -> str:
    add_birdie_specials(raw, tokenizer)
    check_same_ids(raw, tokenizer)
    return raw.to_str()


def check_same_ids(raw: Any, tokenizer: Tokenizer) -> None:
    """Raise ValueError unless ``raw`` encodes every probe to ``tokenizer``'s ids and decodes them to its text."""
    for probe in PROBES:
        expected = [int(i) for i in tokenizer.encode(probe)]
        got = raw.encode(probe, add_special_tokens=False).ids
        if got != expected:
            raise ValueError(f"the converted tokenizer.json encodes {probe!r} to {got[:12]}..., birdie's tokenizer "
                             f"to {expected[:12]}...: not exported (the ids would differ)")
        if raw.decode(expected, skip_special_tokens=False) != tokenizer.decode(expected):
            raise ValueError(f"the converted tokenizer.json decodes the ids of {probe!r} to "
                             f"{raw.decode(expected, skip_special_tokens=False)!r}, birdie's tokenizer to "
                             f"{tokenizer.decode(expected)!r}: not exported")
