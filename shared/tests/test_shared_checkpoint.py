"""Checkpoints: exact round trips, and a clear error naming the file for every kind of damage."""

import json
import os

import numpy as np
import pytest

from shared.checkpoint import (
    flatten_state,
    load_checkpoint,
    read_meta,
    save_checkpoint,
    unflatten_state,
)
from shared.errors import CheckpointError

RNG = np.random.default_rng(0)
WEIGHTS = {
    "embed.weight": RNG.standard_normal((11, 4)),
    "head.bias": RNG.standard_normal(3).astype(np.float32),
    "counts": np.arange(5, dtype=np.int64),
}
SHAPES = {k: v.shape for k, v in WEIGHTS.items()}


def test_numpy_round_trip(tmp_path):
    optimizer = {"state": {0: {"m": np.ones(3), "step": 4}}, "lr": 0.1, "names": ["a", "b"]}
    meta = {"step": 12, "config": {"lr": 0.1}, "metrics": {"loss": np.float32(1.5)}}
    path = save_checkpoint(tmp_path / "ckpt", WEIGHTS, optimizer, meta)
    ckpt = load_checkpoint(path, expected=SHAPES)
    for k, v in WEIGHTS.items():
        np.testing.assert_array_equal(ckpt.model[k], v)
        assert ckpt.model[k].dtype == v.dtype
    assert ckpt.meta["step"] == 12 and ckpt.meta["metrics"]["loss"] == 1.5
    assert list(ckpt.optimizer["state"]) == [0]  # int keys survive
    np.testing.assert_array_equal(ckpt.optimizer["state"][0]["m"], np.ones(3))
    assert ckpt.optimizer["lr"] == 0.1 and ckpt.optimizer["names"] == ["a", "b"]
    assert sorted(os.listdir(path)) == ["meta.json", "model.safetensors", "optimizer.safetensors"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp leftovers


def test_torch_round_trip_with_optimizer_and_tied_weights(tmp_path):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Embedding(7, 4), torch.nn.Linear(4, 7))
    model[1].weight = model[0].weight  # tied, as in GPT
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model(torch.tensor([1, 2])).sum().backward()
    opt.step()
    save_checkpoint(tmp_path / "c", model.state_dict(), opt.state_dict(), {"step": 1})
    ckpt = load_checkpoint(
        tmp_path / "c", {k: tuple(v.shape) for k, v in model.state_dict().items()}, "torch"
    )
    clone = torch.nn.Sequential(torch.nn.Embedding(7, 4), torch.nn.Linear(4, 7))
    clone[1].weight = clone[0].weight
    clone.load_state_dict(ckpt.model)
    opt2 = torch.optim.AdamW(clone.parameters(), lr=1e-2)
    opt2.load_state_dict(ckpt.optimizer)
    for a, b in zip(model.parameters(), clone.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    sa, sb = opt.state_dict(), opt2.state_dict()
    assert sa["param_groups"] == sb["param_groups"]
    for idx in sa["state"]:
        for key, value in sa["state"][idx].items():
            torch.testing.assert_close(value, sb["state"][idx][key], rtol=0, atol=0)


def test_flatten_unflatten_is_the_identity_on_nested_state():
    state = {"a": [np.zeros(2), {"b": 3, 7: np.ones(1)}], "c": None}
    arrays, tree = flatten_state(state)
    assert sorted(arrays) == ["a.0", "a.1.7"]
    json.dumps(tree)  # the tree is plain JSON
    back = unflatten_state(json.loads(json.dumps(tree)), arrays)
    assert back["a"][1][7] is arrays["a.1.7"] and back["a"][1]["b"] == 3 and back["c"] is None


def test_overwrite_replaces_the_old_checkpoint(tmp_path):
    save_checkpoint(tmp_path / "c", WEIGHTS, meta={"step": 1})
    save_checkpoint(tmp_path / "c", WEIGHTS, meta={"step": 2})
    assert read_meta(tmp_path / "c")["step"] == 2
    assert [p.name for p in tmp_path.iterdir()] == ["c"]


def test_failed_save_keeps_the_previous_checkpoint(tmp_path):
    save_checkpoint(tmp_path / "c", WEIGHTS, meta={"step": 1})
    with pytest.raises(TypeError):  # an object JSON cannot hold, found mid-save
        save_checkpoint(tmp_path / "c", WEIGHTS, meta={"step": 2, "bad": object()})
    assert read_meta(tmp_path / "c")["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["c"]


def test_missing_unexpected_and_shape_mismatch_are_named(tmp_path):
    save_checkpoint(tmp_path / "c", WEIGHTS)
    expected = dict(SHAPES)
    del expected["counts"]
    expected["blocks.0.weight"] = (4, 4)
    expected["embed.weight"] = (12, 4)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(tmp_path / "c", expected)
    message = str(info.value)
    assert "model.safetensors does not fit this model" in message
    assert "missing keys blocks.0.weight" in message
    assert "unexpected keys counts" in message
    assert "shape mismatch embed.weight (11, 4) vs model (12, 4)" in message


def test_truncated_file_is_named(tmp_path):
    path = save_checkpoint(tmp_path / "c", WEIGHTS)
    data = (path / "model.safetensors").read_bytes()
    (path / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"c/model.safetensors is truncated or corrupt"):
        load_checkpoint(path)


def test_flipped_byte_is_caught(tmp_path):
    path = save_checkpoint(tmp_path / "c", WEIGHTS)
    data = bytearray((path / "model.safetensors").read_bytes())
    data[-3] ^= 0xFF
    (path / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(path)


def test_garbage_safetensors_with_matching_checksum(tmp_path):
    """A file that is not safetensors at all (checksum updated to match) fails to parse, named."""
    path = save_checkpoint(tmp_path / "c", WEIGHTS)
    (path / "model.safetensors").write_bytes(b"\x00" * 16)
    meta = json.loads((path / "meta.json").read_text())
    import hashlib

    meta["files"]["model.safetensors"] = hashlib.sha256(b"\x00" * 16).hexdigest()
    (path / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="model.safetensors is not a readable safetensors"):
        load_checkpoint(path)


def test_missing_or_broken_meta(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint at .*nowhere"):
        load_checkpoint(tmp_path / "nowhere")
    path = save_checkpoint(tmp_path / "c", WEIGHTS)
    (path / "meta.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="meta.json is not valid JSON"):
        load_checkpoint(path)
    (path / "meta.json").unlink()
    with pytest.raises(CheckpointError, match="meta.json is missing"):
        load_checkpoint(path)


def test_nothing_is_unpickled(tmp_path, monkeypatch):
    """Loading works with every unpickling entry point booby-trapped."""
    import pickle

    path = save_checkpoint(tmp_path / "c", WEIGHTS, {"m": np.ones(2)}, {"step": 1})

    def refuse(*args, **kwargs):
        raise AssertionError("a checkpoint load tried to unpickle")

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, refuse)
    ckpt = load_checkpoint(path)
    np.testing.assert_array_equal(ckpt.optimizer["m"], np.ones(2))


def test_rng_states_saved_in_meta_resume_the_same_numbers(tmp_path):
    """An exact resume: RNG states stored in meta.json restore every generator."""
    import random

    from shared import seeding

    seeding.seed_everything(7)
    save_checkpoint(tmp_path / "c", WEIGHTS, meta={"rng": seeding.rng_state()})
    expected = (random.random(), float(np.random.rand()))
    seeding.seed_everything(99)  # disturb everything
    seeding.set_rng_state(load_checkpoint(tmp_path / "c").meta["rng"])
    assert (random.random(), float(np.random.rand())) == expected
