"""``birdie convert from-hf``: tiny random Llama / Mistral models built with transformers convert exactly."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")

from birdie.convert.from_hf import convert_from_hf  # noqa: E402
from birdie.train.export import load, read_training_record  # noqa: E402
from tests.convert.hf_fixtures import TEXT, bpe_tokenizer_json, hf_model, sentencepiece_model  # noqa: E402

CASES = {
    "llama-gqa-untied": dict(kind="llama"),
    "llama-tied-llama3-rope": dict(kind="llama", tie_word_embeddings=True, rope_theta=50_000.0,
                                   rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                                 "high_freq_factor": 4.0, "original_max_position_embeddings": 16}),
    "llama-linear-rope-sharded": dict(kind="llama", shard=True,
                                      rope_scaling={"rope_type": "linear", "factor": 2.0}),
    "mistral-sliding-window": dict(kind="mistral", sliding_window=5),
}


def _source(tmp_path, case):
    source = tmp_path / "hf"
    source.mkdir()
    vocab = bpe_tokenizer_json(source / "tokenizer.json")
    model = hf_model(source, vocab_size=vocab, **CASES[case])
    return source, model, vocab


@pytest.mark.parametrize("case", sorted(CASES))
def test_logits_and_greedy_generation_match_transformers(tmp_path, case):
    source, hf, vocab = _source(tmp_path, case)
    convert_from_hf(source, tmp_path / "out")
    model, tokenizer = load(tmp_path / "out")
    ids = torch.as_tensor(tokenizer.encode(TEXT[:80]), dtype=torch.long)[None, :16]
    with torch.no_grad():
        theirs = hf(ids).logits
        ours, _ = model(ids)
    assert torch.allclose(ours[..., :vocab], theirs, atol=1e-4, rtol=0), (ours[..., :vocab] - theirs).abs().max()
    prompt = ids[:, :6]
    expected = hf.generate(prompt, max_new_tokens=12, do_sample=False, attention_mask=torch.ones_like(prompt),
                           pad_token_id=0)[:, 6:]
    assert torch.equal(model.generate(prompt, 12, temperature=0), expected)


def test_sliding_window_is_applied_not_ignored(tmp_path):
    """With a window shorter than the input the logits differ from the unwindowed model's (so the test above
    compares windowed attention, not plain causal attention that happens to agree)."""
    source, _, _ = _source(tmp_path, "mistral-sliding-window")
    convert_from_hf(source, tmp_path / "out")
    model, tokenizer = load(tmp_path / "out")
    ids = torch.as_tensor(tokenizer.encode(TEXT[:80]), dtype=torch.long)[None, :16]
    full = type(model)(model.config.replace(sliding_window=None))
    full.load_state_dict(model.state_dict())
    with torch.no_grad():
        assert not torch.allclose(model(ids)[0][:, 8:], full.eval()(ids)[0][:, 8:], atol=1e-4)


def test_tokenizer_keeps_its_ids_and_specials_are_new_rows(tmp_path):
    from tokenizers import Tokenizer as RawTokenizer

    source, hf, vocab = _source(tmp_path, "llama-gqa-untied")
    done = convert_from_hf(source, tmp_path / "out")
    model, tokenizer = load(tmp_path / "out")
    raw = RawTokenizer.from_file(str(source / "tokenizer.json"))
    assert tokenizer.encode(TEXT).tolist() == raw.encode(TEXT, add_special_tokens=False).ids
    assert min(done.special_ids) >= vocab and model.config.vocab_size == max(done.special_ids) + 1
    embedding = model.tok_embeddings.weight.detach()
    assert torch.equal(embedding[:vocab], hf.model.embed_tokens.weight.detach())
    new = torch.tensor(done.special_ids)
    assert torch.allclose(embedding[new], hf.model.embed_tokens.weight.detach().mean(0).expand(len(new), -1))
    assert tokenizer.decode([tokenizer.specials.eos]) == "<|eos|>"
    record = read_training_record(tmp_path / "out")
    assert record["source"] == "from-hf" and record["prefix_lm"] is False


def test_sentencepiece_tokenizer_round_trips_and_keeps_ids(tmp_path):
    import sentencepiece

    source = tmp_path / "hf"
    source.mkdir()
    pieces = sentencepiece_model(source / "tokenizer.model")
    hf = hf_model(source, vocab_size=pieces)
    convert_from_hf(source, tmp_path / "out")
    model, tokenizer = load(tmp_path / "out")
    processor = sentencepiece.SentencePieceProcessor(model_file=str(source / "tokenizer.model"))
    text = "The little fox rolled the red ball to the owl."
    assert tokenizer.encode(text).tolist() == processor.encode(text)
    assert tokenizer.decode(tokenizer.encode(text)) == text
    assert min(tokenizer.specials.ids) == pieces
    ids = torch.as_tensor(tokenizer.encode(text), dtype=torch.long)[None]
    with torch.no_grad():
        assert torch.allclose(model(ids)[0][..., :pieces], hf(ids).logits, atol=1e-4, rtol=0)


def test_cli_from_hf_then_generate(tmp_path, capsys):
    from birdie.cli import main

    source, _, _ = _source(tmp_path, "llama-gqa-untied")
    assert main(["convert", "from-hf", str(source), str(tmp_path / "out")]) == 0
    assert "birdie special tokens" in capsys.readouterr().out
    assert main(["generate", "--checkpoint", str(tmp_path / "out"), "--prompt", "Once upon", "--max-new-tokens", "4",
                 "--temperature", "0"]) == 0
    assert capsys.readouterr().out.strip()


def test_unsupported_architecture_is_named_with_the_supported_list(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"]}))
    with pytest.raises(ValueError, match=r"'gpt2'.*GPT2LMHeadModel.*llama \(LlamaForCausalLM\), mistral"):
        convert_from_hf(tmp_path, tmp_path / "out")


def test_missing_weight_files(tmp_path):
    source, _, _ = _source(tmp_path, "llama-gqa-untied")
    (source / "model.safetensors").unlink()
    (source / "pytorch_model.bin").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="no \\*.safetensors.*pytorch_model.bin.*does not unpickle"):
        convert_from_hf(source, tmp_path / "out")


def test_missing_shard_of_an_index(tmp_path):
    source = tmp_path / "hf"
    source.mkdir()
    vocab = bpe_tokenizer_json(source / "tokenizer.json")
    hf_model(source, vocab_size=vocab, shard=True)
    shard = sorted(source.glob("model-*.safetensors"))[-1]
    shard.unlink()
    with pytest.raises(FileNotFoundError, match=shard.name):
        convert_from_hf(source, tmp_path / "out")


def test_shape_mismatch_names_the_tensor(tmp_path):
    source, _, _ = _source(tmp_path, "llama-gqa-untied")
    config = json.loads((source / "config.json").read_text())
    config["intermediate_size"] = 48
    (source / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"mlp\.(gate|up|down)_proj\.weight has shape .* implies"):
        convert_from_hf(source, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_tokenizer_larger_than_the_embedding_is_refused(tmp_path):
    source = tmp_path / "hf"
    source.mkdir()
    vocab = bpe_tokenizer_json(source / "tokenizer.json")
    hf_model(source, vocab_size=vocab - 10)
    with pytest.raises(ValueError, match=f"tokenizer has {vocab} tokens but .* {vocab - 10} rows"):
        convert_from_hf(source, tmp_path / "out")


def test_padded_embedding_keeps_every_row_the_tokenizer_reaches(tmp_path):
    source = tmp_path / "hf"
    source.mkdir()
    vocab = bpe_tokenizer_json(source / "tokenizer.json")
    hf = hf_model(source, vocab_size=vocab + 8)
    done = convert_from_hf(source, tmp_path / "out")
    model, _ = load(tmp_path / "out")
    assert np.array_equal(model.tok_embeddings.weight[:vocab].detach().numpy(),
                          hf.model.embed_tokens.weight[:vocab].detach().numpy())
    assert min(done.special_ids) == vocab


def test_rope_scaling_and_window_are_validated():
    from birdie.models import preset_config

    with pytest.raises(ValueError, match="rope_type='yarn' must be one of"):
        preset_config("transformer-tiny", rope_scaling={"rope_type": "yarn", "factor": 2.0})
    with pytest.raises(ValueError, match=r"llama3\) needs numeric \['low_freq_factor'"):
        preset_config("transformer-tiny", rope_scaling={"rope_type": "llama3", "factor": 8.0})
    with pytest.raises(ValueError, match="sliding_window=8 is a Transformer option"):
        preset_config("hawk-tiny", sliding_window=8)
