"""Checkpoints survive kill -9 during a save, rotate with milestones; exports load back and generate."""

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from birdie.cli import main
from birdie.models import create
from birdie.train.checkpoint import load_checkpoint, resolve_checkpoint, save_checkpoint
from birdie.train.export import MODEL_CONFIG, export_model, load, load_weights, read_weights
from birdie.train.integrity import write_manifest
from birdie.tokenizers import ByteTokenizer

from tests.train.helpers import SINGLE, training_state

ROOT = Path(__file__).resolve().parents[2]

SAVE_THEN_HANG = textwrap.dedent("""
    import sys, time, torch
    import birdie.train.checkpoint as ckpt
    from birdie.models import create
    from birdie.train.distributed import Runtime
    from tests.train.helpers import training_state
    runtime = Runtime(0, 1, 0, torch.device("cpu"), 1, 1, 1, None)
    torch.manual_seed(0)
    model = create("transformer-tiny")
    optimizer = torch.optim.AdamW(model.parameters())
    ckpt.save_checkpoint(sys.argv[1], 1, training_state(model, optimizer, {"step": 1}), runtime)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    real_save = torch.save
    def hang_mid_save(obj, path, *args, **kwargs):
        real_save(obj, path, *args, **kwargs)
        print("saving step 2", flush=True)
        time.sleep(120)
    torch.save = hang_mid_save
    ckpt.save_checkpoint(sys.argv[1], 2, training_state(model, optimizer, {"step": 2}), runtime)
""")


@pytest.mark.slow
@pytest.mark.multiprocess
def test_kill_9_during_a_save_leaves_the_previous_checkpoint_loadable(tmp_path):
    root = tmp_path / "checkpoints"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    process = subprocess.Popen([sys.executable, "-c", SAVE_THEN_HANG, str(root)], env=env, cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().strip() == "saving step 2", process.stderr.read()
        partial = root / ".tmp-step_000002"
        assert any(partial.iterdir()) and not (partial / "manifest.json").exists()  # the new save is half written
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    assert resolve_checkpoint("latest", tmp_path) == root / "step_000001"
    torch.manual_seed(0)
    expected = create("transformer-tiny")
    model = create("transformer-tiny")
    states = training_state(model, torch.optim.AdamW(model.parameters()))
    assert load_checkpoint(root / "step_000001", states, SINGLE, trusted=True).step == 1
    assert states.shared["progress"].value == {"step": 1}
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), expected.parameters()))
    # the next save cleans up the half-written directory and completes
    save_checkpoint(root, 2, training_state(model, torch.optim.AdamW(model.parameters()), {"step": 2}), SINGLE)
    assert resolve_checkpoint("latest", tmp_path).name == "step_000002"
    assert not (root / ".tmp-step_000002").exists()


def test_regular_checkpoints_rotate_and_milestones_stay(tmp_path):
    model = create("transformer-tiny")
    optimizer = torch.optim.AdamW(model.parameters())
    for step in range(1, 6):
        save_checkpoint(tmp_path, step, training_state(model, optimizer, {"step": step}, {"rank": 0}), SINGLE,
                        milestone_every=2)
    assert sorted(p.name for p in tmp_path.glob("step_*")) == ["step_000002", "step_000004", "step_000005"]
    assert (tmp_path / "latest").read_text().strip() == "step_000005"
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        resolve_checkpoint("latest", tmp_path / "elsewhere")


def test_export_loads_back_with_its_tokenizer_and_generates(tmp_path, capsys):
    torch.manual_seed(0)
    tokenizer = ByteTokenizer()
    model = create("hawk-tiny", vocab_size=tokenizer.vocab_size, tie_embeddings=True).eval()
    export_model(tmp_path, model, model.config.to_dict(), tokenizer)
    loaded, loaded_tokenizer = load(tmp_path)
    assert loaded_tokenizer.vocab_size == tokenizer.vocab_size
    ids = torch.as_tensor(tokenizer.encode("Once upon a time"), dtype=torch.long)[None]
    torch.testing.assert_close(loaded(ids)[0], model(ids)[0], rtol=0, atol=0)
    assert main(["generate", "--checkpoint", str(tmp_path), "--prompt", "Once", "--max-new-tokens", "5",
                 "--temperature", "0"]) == 0
    greedy = model.generate(ids[:, :4], 5, temperature=0.0, eos=tokenizer.specials.eos)
    expected = "Once" + tokenizer.decode(greedy[0].tolist()).split("<|eos|>")[0]
    assert capsys.readouterr().out.strip() == expected


def test_pretrained_weights_load_strictly_or_report_differences(tmp_path):
    source = create("transformer-tiny", n_layers=2)
    export_model(tmp_path, source, source.config.to_dict(), ByteTokenizer())
    weights = read_weights(tmp_path)
    deeper = create("transformer-tiny", n_layers=3)
    with pytest.raises(ValueError, match="missing: layers.2"):
        load_weights(deeper, weights, strict=True)
    report = load_weights(deeper, weights, strict=False)
    assert report["missing"] and all(k.startswith("layers.2.") for k in report["missing"])
    assert report["unexpected"] == [] and report["mismatched"] == []
    assert torch.equal(deeper.layers[0].attention.in_proj.weight, source.layers[0].attention.in_proj.weight)
    (tmp_path / MODEL_CONFIG).write_text(json.dumps(deeper.config.to_dict()))
    write_manifest(tmp_path)  # another program rewrote the config and the manifest consistently
    with pytest.raises(ValueError, match="disagree.*export the model again") as error:
        load(tmp_path)
    assert "load-not-strict" not in str(error.value)  # a loader of exports has no such option
    wider_vocab = create("transformer-tiny", n_layers=2, vocab_size=600)
    report = load_weights(wider_vocab, weights, strict=False)
    assert report["mismatched"] == ["output.weight", "tok_embeddings.weight"]
