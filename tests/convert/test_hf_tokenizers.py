"""SentencePiece and tiktoken tokenizers written by ``to-hf``: ``AutoTokenizer`` gives birdie's ids and text."""

from __future__ import annotations

import io

import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("sentencepiece")

from birdie.convert.from_hf import convert_from_hf  # noqa: E402
from birdie.convert.hf_tokenizer_files import hf_tokenizer_json, write_hf_tokenizer  # noqa: E402
from birdie.convert.hf_tokenizer_json import PROBES  # noqa: E402
from birdie.convert.to_hf import convert_to_hf  # noqa: E402
from birdie.tokenizers import ExtendedTokenizer, SentencePieceTokenizer  # noqa: E402
from birdie.train.export import load  # noqa: E402
from tests.convert.hf_fixtures import TEXT, hf_model  # noqa: E402
from tests.convert.test_to_hf import _check_equal, _hf  # noqa: E402

#: tiktoken's cl100k_base split pattern (possessive quantifiers and all), written out: no download needed
CL100K_PATTERN = (r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
                  r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s""")


def _sentencepiece(model_type="bpe", **options) -> bytes:
    """A SentencePiece model trained here on the fixture text."""
    import sentencepiece

    proto = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(sentence_iterator=iter(TEXT.splitlines()), model_writer=proto,
                                             model_type=model_type, minloglevel=2, **options)
    return proto.getvalue()


def _assert_same_ids(hf_tokenizer, tokenizer):
    """Every fixture line and probe, and text with birdie's special names, encodes and decodes alike."""
    specials = tokenizer.specials
    for text in [*TEXT.splitlines()[:4], *PROBES]:
        ids = [int(i) for i in tokenizer.encode(text)]
        assert hf_tokenizer(text, add_special_tokens=False)["input_ids"] == ids, text
        assert hf_tokenizer.decode(ids) == tokenizer.decode(ids), text
    assert hf_tokenizer("a<|eos|>", add_special_tokens=False)["input_ids"][-1] == specials.eos
    assert (hf_tokenizer.eos_token_id, hf_tokenizer.pad_token_id) == (specials.eos, specials.pad)


@pytest.mark.parametrize("options", [dict(vocab_size=120), dict(vocab_size=300, byte_fallback=True, split_digits=True),
                                     dict(vocab_size=120, user_defined_symbols=["<tool>"], add_dummy_prefix=False)],
                         ids=["bpe", "byte-fallback", "user-defined-no-prefix"])
def test_sentencepiece_model_round_trips_through_to_hf(tmp_path, options):
    source = tmp_path / "src"
    source.mkdir()
    (source / "tokenizer.model").write_bytes(_sentencepiece(**options))
    pieces = SentencePieceTokenizer.from_file(source / "tokenizer.model").piece_count
    hf_model(source, vocab_size=pieces)
    convert_from_hf(source, tmp_path / "export")
    convert_to_hf(tmp_path / "export", tmp_path / "hf")
    assert (tmp_path / "hf" / "tokenizer.model").read_bytes() == (source / "tokenizer.model").read_bytes()
    ours, tokenizer = load(tmp_path / "export")
    assert isinstance(tokenizer, SentencePieceTokenizer)
    theirs, hf_tokenizer = _hf(tmp_path / "hf", remote=False)
    _assert_same_ids(hf_tokenizer, tokenizer)
    # A random model's byte-fallback pieces form byte runs that are not UTF-8, which tokenizers decodes to one
    # U+FFFD per byte where SentencePiece keeps the valid characters among them (docs/interop.md): the generated
    # ids are compared, and the text only without byte fallback.
    _check_equal(ours, theirs, hf_tokenizer, tokenizer, decode=not options.get("byte_fallback"))


def test_tiktoken_encoding_keeps_its_ids_specials_and_gaps(tmp_path):
    tiktoken = pytest.importorskip("tiktoken")
    from transformers import AutoTokenizer

    from birdie.tokenizers import tiktoken_tokenizer

    ranks = {bytes([byte]): byte for byte in range(256)}
    for piece in (b"th", b"he", b"the", b" t", b" the", b"in", b"ing", b" a", b"ll", b"ed", b" b", b"all", b" ball"):
        ranks[piece] = len(ranks)
    # tiktoken's own specials with unused ids around them, as cl100k_base has
    encoding = tiktoken.Encoding("birdie-test", pat_str=CL100K_PATTERN, mergeable_ranks=ranks,
                                 special_tokens={"<|endoftext|>": len(ranks) + 1, "<|fim|>": len(ranks) + 4})
    tokenizer = tiktoken_tokenizer(encoding)
    assert tokenizer.specials.ids[0] == len(ranks) + 5
    write_hf_tokenizer(tmp_path, tokenizer, hf_tokenizer_json(tokenizer), 128)
    hf_tokenizer = AutoTokenizer.from_pretrained(tmp_path)
    _assert_same_ids(hf_tokenizer, tokenizer)
    # tiktoken's own special tokens are ids, never read out of text (birdie encodes with encode_ordinary)
    assert hf_tokenizer.decode([len(ranks) + 1]) == "<|endoftext|>"
    assert len(ranks) + 1 not in hf_tokenizer("<|endoftext|>", add_special_tokens=False)["input_ids"]


def test_unsupported_tokenizers_are_refused_before_writing(tmp_path):
    unigram = SentencePieceTokenizer(_sentencepiece("unigram", vocab_size=50))
    with pytest.raises(ValueError, match="SentencePiece BPE models only; this one is UNIGRAM"):
        hf_tokenizer_json(unigram)

    class Words:
        vocab_size = 3

        def encode(self, text):
            return [0]

        def decode(self, ids):
            return "a"

    with pytest.raises(ValueError, match="ExtendedTokenizer wrapping Words is none of them"):
        hf_tokenizer_json(ExtendedTokenizer(Words()))
    gap = SentencePieceTokenizer(_sentencepiece(vocab_size=120), first_special_id=130)
    with pytest.raises(ValueError, match="cannot leave the ids between them empty"):
        hf_tokenizer_json(gap)


def test_a_conversion_that_changes_ids_is_refused(monkeypatch):
    from birdie.convert import hf_tokenizer_json as module

    tokenizer = SentencePieceTokenizer(_sentencepiece(vocab_size=120))
    monkeypatch.setattr(module, "PROBES", ("the  ball",))
    real = tokenizer.encode
    monkeypatch.setattr(tokenizer, "encode", lambda text: torch.as_tensor(real(text)).flip(0).numpy())
    with pytest.raises(ValueError, match="encodes 'the  ball' to .*not exported"):
        hf_tokenizer_json(tokenizer)
