"""``birdie convert from-open-lm``: open_lm state dicts (FSDP prefixes, epoch_N.pt layout) into exports."""

from __future__ import annotations

import argparse

import pytest
import torch

from birdie.cli import main
from birdie.convert.from_open_lm import convert_from_open_lm
from birdie.models import create
from birdie.train.export import load, read_training_record


def _checkpoint(path, preset="supra-tiny", extra=None, **overrides):
    torch.manual_seed(0)
    model = create(preset, **overrides)
    state = {f"module.{k}": v for k, v in model.state_dict().items()}
    torch.save({"epoch": 3, "name": "run", "state_dict": state, "step": 30, "next_shard_per_source": [2],
                "samples_seen": 480, "shard_shuffle_seed": 0, "evaluation_metrics": {}, **(extra or {})}, path)
    return model.eval()


def test_epoch_checkpoint_converts_and_keeps_the_tokens_logits(tmp_path):
    original = _checkpoint(tmp_path / "epoch_3.pt")
    record = convert_from_open_lm(tmp_path / "epoch_3.pt", tmp_path / "out", "supra-tiny", "bytes")
    model, tokenizer = load(tmp_path / "out")
    ids = torch.as_tensor(tokenizer.encode("open_lm checkpoint"), dtype=torch.long)[None]
    with torch.no_grad():
        assert torch.allclose(model(ids)[0][..., :256], original(ids)[0][..., :256], atol=1e-6)
    eos = tokenizer.specials.eos
    assert torch.allclose(model.tok_embeddings.weight[eos], original.tok_embeddings.weight[:256].mean(0))
    assert record["source"] == "from-open-lm" and read_training_record(tmp_path / "out")["preset"] == "supra-tiny"


def test_pickled_objects_need_the_trust_flag(tmp_path):
    _checkpoint(tmp_path / "epoch_1.pt", extra={"args": argparse.Namespace(lr=3e-4)})
    with pytest.raises(ValueError, match="--trust-checkpoint"):
        convert_from_open_lm(tmp_path / "epoch_1.pt", tmp_path / "out", "supra-tiny", "bytes")
    assert not (tmp_path / "out").exists()
    assert main(["convert", "from-open-lm", str(tmp_path / "epoch_1.pt"), str(tmp_path / "out"), "--preset",
                 "supra-tiny", "--tokenizer", "bytes", "--trust-checkpoint"]) == 0
    assert (tmp_path / "out" / "model.safetensors").is_file()


def test_wrong_preset_names_the_differences(tmp_path):
    _checkpoint(tmp_path / "epoch_1.pt", preset="transformer-tiny", n_kv_heads=2)
    with pytest.raises(ValueError, match=r"does not fit preset 'supra-tiny' \(missing: .*_totrain_embed"):
        convert_from_open_lm(tmp_path / "epoch_1.pt", tmp_path / "out", "supra-tiny", "bytes")
    with pytest.raises(ValueError, match="mismatched: layers.0.attention.in_proj.weight"):
        convert_from_open_lm(tmp_path / "epoch_1.pt", tmp_path / "out2", "transformer-tiny", "bytes")
