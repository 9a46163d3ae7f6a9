"""``birdie convert to-hf``: birdie exports load with ``AutoModelForCausalLM`` and give birdie's logits."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("transformers")

from birdie.convert.from_hf import convert_from_hf  # noqa: E402
from birdie.convert.to_hf import convert_to_hf  # noqa: E402
from birdie.models import create  # noqa: E402
from birdie.tokenizers import ByteTokenizer  # noqa: E402
from birdie.train.export import export_model, load  # noqa: E402
from tests.convert.hf_fixtures import TEXT, bpe_tokenizer_json, hf_model  # noqa: E402

PROMPT = "The fox rolled the ball"


def _birdie_export(path, preset, **overrides):
    """A birdie export of ``preset`` with random weights large enough that greedy decoding has no ties."""
    tokenizer = ByteTokenizer()
    torch.manual_seed(0)
    model = create(preset, vocab_size=tokenizer.vocab_size, **overrides)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.1)
    export_model(path, model, model.config.to_dict(), tokenizer)
    return load(path)


def _hf(path, remote):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(path, trust_remote_code=remote, dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(path, trust_remote_code=remote)


def _check_equal(ours, theirs, hf_tokenizer, birdie_tokenizer, new_tokens=10, decode=True):
    """Same prompt ids, logits to 1e-4 and greedy tokens; with ``decode`` the generated text too."""
    ids = torch.as_tensor(birdie_tokenizer.encode(PROMPT), dtype=torch.long)[None]
    assert hf_tokenizer(PROMPT, add_special_tokens=False)["input_ids"] == ids[0].tolist()
    with torch.no_grad():
        expected, _ = ours(ids)
        got = theirs(ids).logits
    assert torch.allclose(got, expected, atol=1e-4, rtol=0), (got - expected).abs().max()
    generated = theirs.generate(ids, max_new_tokens=new_tokens, do_sample=False,
                                attention_mask=torch.ones_like(ids))[:, ids.shape[1]:]
    assert torch.equal(generated, ours.generate(ids, new_tokens, temperature=0))
    if decode:
        assert hf_tokenizer.decode(generated[0]) == birdie_tokenizer.decode(generated[0])


def test_causal_transformer_is_native_llama(tmp_path):
    model, tokenizer = _birdie_export(tmp_path / "export", "transformer-tiny", bidirectional_layers="none",
                                      n_kv_heads=2, tie_embeddings=True)
    done = convert_to_hf(tmp_path / "export", tmp_path / "hf")
    assert (done.architecture, done.remote_code) == ("LlamaForCausalLM", False)
    assert not (tmp_path / "hf" / "modeling_birdie.py").exists()
    theirs, hf_tokenizer = _hf(tmp_path / "hf", remote=False)
    _check_equal(model, theirs, hf_tokenizer, tokenizer)


def test_from_hf_then_to_hf_gives_the_original_logits(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    vocab = bpe_tokenizer_json(source / "tokenizer.json")
    original = hf_model(source, kind="mistral", vocab_size=vocab, sliding_window=4)
    convert_from_hf(source, tmp_path / "export")
    done = convert_to_hf(tmp_path / "export", tmp_path / "hf")
    assert done.architecture == "MistralForCausalLM"
    theirs, _ = _hf(tmp_path / "hf", remote=False)
    ours, tokenizer = load(tmp_path / "export")
    ids = torch.as_tensor(tokenizer.encode(TEXT[:60]), dtype=torch.long)[None, :12]
    with torch.no_grad():
        assert torch.allclose(theirs(ids).logits[..., :vocab], original(ids).logits, atol=1e-4, rtol=0)


@pytest.mark.parametrize("preset", ["hawk-tiny", "gated-ssm-tiny", "supra-tiny", "transformer-tiny"])
def test_other_families_load_with_remote_code(tmp_path, preset):
    model, tokenizer = _birdie_export(tmp_path / "export", preset)
    done = convert_to_hf(tmp_path / "export", tmp_path / "hf")
    assert done.remote_code and (tmp_path / "hf" / "modeling_birdie.py").is_file()
    theirs, hf_tokenizer = _hf(tmp_path / "hf", remote=True)
    _check_equal(model, theirs, hf_tokenizer, tokenizer)
    if model.config.bidirectional_layers != "none":  # the prefix-LM form: a bidirectional prefix of 9 tokens
        ids = torch.as_tensor(tokenizer.encode(PROMPT), dtype=torch.long)[None]
        prefix = (torch.arange(ids.shape[1]) < 9)[None]
        with torch.no_grad():
            expected, _ = model(ids, attention_mask=prefix.long())
            causal, _ = model(ids)
            got = theirs(ids, prefix_mask=prefix).logits
        assert not torch.allclose(expected, causal, atol=1e-4)
        assert torch.allclose(got, expected, atol=1e-4, rtol=0)


def test_cli_to_hf(tmp_path, capsys):
    from birdie.cli import main

    _birdie_export(tmp_path / "export", "hawk-tiny")
    assert main(["convert", "to-hf", str(tmp_path / "export"), str(tmp_path / "hf")]) == 0
    assert "trust_remote_code=True" in capsys.readouterr().out
    with pytest.raises(FileExistsError, match="config.json exists"):
        main(["convert", "to-hf", str(tmp_path / "export"), str(tmp_path / "hf")])
