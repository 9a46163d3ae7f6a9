"""On-disk state birdie did not just write: planted pickles, flipped bytes, truncation, deleted files, NaN weights,
a full disk, a forged ``latest`` pointer and a changed model size each give a clear error, never code execution."""

import errno
import pathlib
import pickle

import numpy as np
import pytest
import torch

import birdie.train.checkpoint as ckpt
from birdie.models import create
from birdie.tokenizers import ByteTokenizer
from birdie.train.checkpoint import CheckpointError, load_checkpoint, resolve_checkpoint, save_checkpoint
from birdie.train.export import export_model, load, read_weights
from birdie.train.integrity import IntegrityError, UntrustedCheckpointError, write_manifest

from tests.train.helpers import SINGLE, training_state


class Payload:
    """Unpickling this creates ``marker``: what a planted ``__reduce__`` would do with a shell command instead."""

    def __init__(self, marker: pathlib.Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return pathlib.Path.touch, (self.marker,)


def _tiny(**overrides):
    torch.manual_seed(0)
    return create("transformer-tiny", vocab_size=ByteTokenizer().vocab_size, **overrides)


def _checkpoint(root: pathlib.Path, step: int = 1, **overrides) -> pathlib.Path:
    model = _tiny(**overrides)
    return save_checkpoint(root, step, training_state(model, torch.optim.AdamW(model.parameters()), {"step": step},
                                                      {"position": 7}), SINGLE)


def _load(path: pathlib.Path, trusted: bool = True, **overrides):
    model = _tiny(**overrides)
    states = training_state(model, torch.optim.AdamW(model.parameters()))
    return load_checkpoint(path, states, SINGLE, trusted=trusted), states


def _distcp(path: pathlib.Path) -> pathlib.Path:
    return next(path.glob("*.distcp"))


def _flip_byte(file: pathlib.Path, offset: int) -> None:
    data = bytearray(file.read_bytes())
    data[offset] ^= 0xFF
    file.write_bytes(bytes(data))


def test_a_checkpoint_round_trips_through_weights_only_side_files(tmp_path):
    path = _checkpoint(tmp_path)
    restored, states = _load(path)
    assert (restored.step, restored.per_rank) == (1, True)
    assert states.shared["progress"].value == {"step": 1} and states.per_rank["data"].value == {"position": 7}
    expected = _tiny().state_dict()
    assert all(torch.equal(value, expected[name]) for name, value in states.sharded["model"].state_dict().items())


def test_a_planted_reduce_payload_in_a_rank_file_is_refused_not_run(tmp_path):
    path = _checkpoint(tmp_path)
    marker = tmp_path / "pwned"
    torch.save({"data": Payload(marker)}, path / "rank_0.pt")
    write_manifest(path)  # the attacker rewrote the manifest too, so only the unpickler stands in the way
    with pytest.raises(IntegrityError, match=r"rank_0\.pt cannot be read as plain tensors.*never unpickles"):
        _load(path)
    assert not marker.exists()


def test_a_planted_payload_in_dcp_metadata_is_not_opened_without_trust(tmp_path):
    path = _checkpoint(tmp_path)
    marker = tmp_path / "pwned"
    (path / ".metadata").write_bytes(pickle.dumps(Payload(marker)))
    write_manifest(path)
    for open_it in (lambda: load(path), lambda: read_weights(path), lambda: _load(path, trusted=False)):
        with pytest.raises(UntrustedCheckpointError, match="unpickles its DCP .metadata.*trust_checkpoint=True"):
            open_it()
    assert not marker.exists()


def test_a_tampered_metadata_of_the_runs_own_checkpoint_fails_its_checksum_before_it_is_read(tmp_path):
    path = _checkpoint(tmp_path)
    marker = tmp_path / "pwned"
    (path / ".metadata").write_bytes(pickle.dumps(Payload(marker)))
    with pytest.raises(IntegrityError, match=r"\.metadata is (corrupt|truncated)"):
        _load(path)
    assert not marker.exists()


def test_flipped_bytes_in_checkpoint_weights_name_the_file(tmp_path):
    path = _checkpoint(tmp_path)
    _flip_byte(_distcp(path), 1000)
    with pytest.raises(IntegrityError, match=rf"{_distcp(path).name} is corrupt: its checksum differs"):
        _load(path)


def test_a_truncated_dcp_file_is_named(tmp_path):
    path = _checkpoint(tmp_path)
    data = _distcp(path).read_bytes()
    _distcp(path).write_bytes(data[: len(data) // 2])
    with pytest.raises(IntegrityError, match=rf"{_distcp(path).name} is truncated or overwritten"):
        _load(path)
    write_manifest(path)  # even with a matching manifest, DCP's failure is one line naming the checkpoint
    with pytest.raises(CheckpointError, match="the DCP files cannot be read.*damaged") as error:
        _load(path)
    assert "\n" not in str(error.value)


def test_a_deleted_rank_file_is_an_incomplete_checkpoint_not_another_process_count(tmp_path):
    path = _checkpoint(tmp_path)
    (path / "rank_0.pt").unlink()
    with pytest.raises(IntegrityError, match=r"incomplete: rank_0\.pt is missing"):
        _load(path)


def test_a_changed_model_size_names_the_first_mismatched_tensors(tmp_path):
    path = _checkpoint(tmp_path, d_model=64)
    with pytest.raises(CheckpointError, match=r"written for another model: 'tok_embeddings.weight' is \(\d+, 64\) "
                                              r"there but \(\d+, 128\) here.*more.*config.yaml") as error:
        _load(path, d_model=128)
    assert "\n" not in str(error.value) and len(str(error.value)) < 600


def test_non_finite_checkpoint_weights_are_rejected_naming_the_tensor(tmp_path):
    model = _tiny()
    with torch.no_grad():
        model.output.weight[0, 0] = float("nan")
    path = save_checkpoint(tmp_path, 1, training_state(model, torch.optim.AdamW(model.parameters())), SINGLE)
    with pytest.raises(IntegrityError, match="weight 'output.weight' holds NaN"):
        _load(path)


def test_a_full_disk_during_a_save_removes_the_partial_save_and_keeps_the_previous(tmp_path, monkeypatch):
    _checkpoint(tmp_path, step=1)
    real_save = torch.save

    def disk_full(obj, file, *args, **kwargs):
        real_save(obj, file, *args, **kwargs)  # the file is half there when the disk fills up
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ckpt.torch, "save", disk_full)
    with pytest.raises(CheckpointError, match="step 2.*No space left.*partial save was removed.*disk is full") as error:
        _checkpoint(tmp_path, step=2)
    assert "\n" not in str(error.value)
    assert not list(tmp_path.glob(".tmp-*"))
    assert (tmp_path / "latest").read_text().strip() == "step_000001"


def test_a_latest_pointer_outside_the_checkpoints_directory_is_rejected(tmp_path):
    root = tmp_path / "checkpoints"
    _checkpoint(root)
    outside = _checkpoint(tmp_path / "elsewhere")
    (root / "latest").write_text(f"../elsewhere/{outside.name}\n")
    with pytest.raises(IntegrityError, match="not a checkpoint directory inside"):
        resolve_checkpoint("latest", tmp_path)


def test_partial_saves_left_by_a_killed_process_are_removed(tmp_path):
    _checkpoint(tmp_path)
    (tmp_path / ".tmp-step_000002").mkdir()
    (tmp_path / ".tmp-step_000002" / "__0_0.distcp").write_bytes(b"half")
    assert [p.name for p in ckpt.remove_partial_saves(tmp_path)] == [".tmp-step_000002"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest", "step_000001"]


def test_export_corruption_and_nan_weights_are_named(tmp_path):
    tokenizer = ByteTokenizer()
    export = export_model(tmp_path / "export", _tiny(), _tiny().config.to_dict(), tokenizer)
    weights = export / "model.safetensors"
    _flip_byte(weights, weights.stat().st_size - 10)
    with pytest.raises(IntegrityError, match=r"model\.safetensors is corrupt"):
        load(export)
    from safetensors.torch import load_file, save_file

    _flip_byte(weights, weights.stat().st_size - 10)
    tensors = load_file(str(weights))
    tensors["norm.weight"][0] = float("inf")
    save_file(tensors, str(weights))
    write_manifest(export)
    with pytest.raises(IntegrityError, match="weight 'norm.weight' holds NaN or infinite"):
        load(export)


def test_side_state_encoding_restores_numpy_and_python_rng_state_exactly(tmp_path):
    import random

    from birdie.train.stateful import decode_state, encode_state

    state = {"py": random.getstate(), "np": np.random.get_state(), "pcg": np.random.default_rng(3).bit_generator.state,
             "rows": [np.arange(5, dtype=np.float64) / 3, np.array([1, 2], dtype=np.uint32)], "scalar": np.int64(9),
             "tensor": torch.arange(3)}
    torch.save(encode_state(state), tmp_path / "state.pt")
    back = decode_state(torch.load(tmp_path / "state.pt", weights_only=True))
    assert back["py"] == state["py"] and back["pcg"] == state["pcg"]
    assert back["np"][0] == "MT19937" and np.array_equal(back["np"][1], state["np"][1])
    assert back["np"][1].dtype == state["np"][1].dtype and back["np"][2:] == state["np"][2:]
    for got, want in zip(back["rows"], state["rows"]):
        assert got.dtype == want.dtype and np.array_equal(got, want)
    assert type(back["scalar"]) is np.int64 and back["scalar"] == 9
    assert torch.equal(back["tensor"], state["tensor"])
