"""``birdie linearize``: SUPRA from a trained Transformer reuses its weights and uptrains faster than scratch."""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest
import torch

from birdie.convert.linearize import linearize
from birdie.data.stories import generate_story
from birdie.models import create
from birdie.tokenizers import ByteTokenizer
from birdie.train.export import export_model, load, read_training_record

LENGTH = 64


@functools.lru_cache(maxsize=1)
def _corpus() -> np.ndarray:
    tokenizer = ByteTokenizer()
    return np.concatenate([tokenizer.encode(generate_story(0, i).text + "\n") for i in range(100)])


def _batches(count: int, batch: int, seed: int) -> list[torch.Tensor]:
    """``count`` (batch, LENGTH + 1) windows of byte-tokenized synthetic stories."""
    ids = _corpus()
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, len(ids) - LENGTH - 1, size=(count, batch))
    return [torch.as_tensor(np.stack([ids[s:s + LENGTH + 1] for s in row]), dtype=torch.long) for row in starts]


def _train(model, steps: int, lr: float, seed: int) -> None:
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95))
    model.train()
    for batch in _batches(steps, 8, seed):
        _, loss = model(batch[:, :-1], label_ids=batch[:, 1:])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()


def _loss(model) -> float:
    with torch.no_grad():
        return float(np.mean([model(b[:, :-1], label_ids=b[:, 1:])[1].item() for b in _batches(4, 16, seed=999)]))


def _transformer_export(path, steps: int):
    torch.manual_seed(0)
    model = create("transformer-tiny", vocab_size=ByteTokenizer().vocab_size, bidirectional_layers="none",
                   n_kv_heads=2)
    _train(model, steps, 3e-3, seed=1)
    export_model(path, model, model.config.to_dict(), ByteTokenizer())


def test_report_lists_reused_and_new_weights(tmp_path):
    _transformer_export(tmp_path / "transformer", steps=0)
    report = linearize(tmp_path / "transformer", tmp_path / "supra")
    model, _ = load(tmp_path / "supra")
    transformer, _ = load(tmp_path / "transformer")
    assert model.config.family == "supra"
    assert set(report.reused) == set(transformer.state_dict())
    assert set(report.new) == {f"layers.{i}.attention.{name}" for i in range(2)
                               for name in ("_totrain_embed.weight", "_totrain_embed.bias",
                                            "_totrain_embed_kv.weight", "_totrain_embed_kv.bias")}
    for name in report.reused:
        assert torch.equal(model.state_dict()[name], transformer.state_dict()[name]), name
    on_disk = json.loads((tmp_path / "supra" / "linearize_report.json").read_text())
    assert on_disk["reused"] == report.reused and on_disk["new"] == report.new
    assert read_training_record(tmp_path / "supra")["source"] == "linearize"


def test_refuses_a_recurrent_model(tmp_path):
    model = create("hawk-tiny", vocab_size=ByteTokenizer().vocab_size)
    export_model(tmp_path / "hawk", model, model.config.to_dict(), ByteTokenizer())
    with pytest.raises(ValueError, match="family is 'hawk'"):
        linearize(tmp_path / "hawk", tmp_path / "supra")


@pytest.mark.slow
def test_uptrained_supra_beats_supra_from_scratch(tmp_path):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: one thread is faster than two on a shared CPU
    try:
        _transformer_export(tmp_path / "transformer", steps=150)
        linearize(tmp_path / "transformer", tmp_path / "supra")
        uptrained, _ = load(tmp_path / "supra")
        torch.manual_seed(0)
        scratch = create("supra-tiny", **{k: v for k, v in uptrained.config.to_dict().items() if k != "family"})
        for model in (uptrained, scratch):
            _train(model, 30, 1e-3, seed=2)
        transformer, _ = load(tmp_path / "transformer")
        scratch_loss, uptrained_loss = _loss(scratch), _loss(uptrained)
    finally:
        torch.set_num_threads(threads)
    assert uptrained_loss < scratch_loss - 0.3, (uptrained_loss, scratch_loss, _loss(transformer))


def test_cli_linearize_prints_the_report_and_the_uptraining_command(tmp_path, capsys):
    from birdie.cli import main

    _transformer_export(tmp_path / "transformer", steps=0)
    assert main(["linearize", str(tmp_path / "transformer"), str(tmp_path / "supra")]) == 0
    out = capsys.readouterr().out
    assert "reused 15 weights" in out and "new 8 weights" in out and "layers.0.attention._totrain_embed.weight" in out
    assert f"birdie train --pretrained {tmp_path / 'supra'}" in out
