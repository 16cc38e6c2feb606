"""Checkpoint files: round trip without pickle, atomic replacement, clear errors."""

import os

import numpy as np
import pytest

from minialex.weights.checkpoint import CheckpointError, load_checkpoint, read_meta, save_checkpoint


def test_round_trip(tmp_path):
    path = tmp_path / "ck.npz"
    arrays = {"model/w": np.arange(6.0, dtype=np.float32).reshape(2, 3)}
    save_checkpoint(path, arrays, {"epoch": 3, "classes": ["a", "b"]})
    loaded, meta = load_checkpoint(path)
    np.testing.assert_array_equal(loaded["model/w"], arrays["model/w"])
    assert loaded["model/w"].dtype == np.float32
    assert meta["epoch"] == 3 and meta["classes"] == ["a", "b"] and meta["format_version"] == 1
    with np.load(path, allow_pickle=False) as z:  # readable by anyone without pickle
        assert set(z.files) == {"model/w", "__meta__"}


def test_failed_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "ck.npz"
    save_checkpoint(path, {"w": np.ones(2)}, {"epoch": 1})

    class Boom:
        """An array-like that fails halfway through np.savez."""
        def __array__(self, *a, **k):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        save_checkpoint(path, {"w": np.zeros(2), "bad": Boom()}, {"epoch": 2})
    arrays, meta = load_checkpoint(path)
    assert meta["epoch"] == 1 and arrays["w"][0] == 1.0
    assert [f for f in os.listdir(tmp_path) if f.startswith(".tmp-")] == []  # no temp file left


def test_errors(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.npz")
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip file")
    with pytest.raises(CheckpointError, match="not a minialex checkpoint"):
        load_checkpoint(junk)
    text = tmp_path / "notes.npz"  # a text file named .npz: no advice to load it with pickles
    text.write_text("epoch 3: val_top1_err 31%\n")
    for read in (load_checkpoint, read_meta):
        with pytest.raises(CheckpointError) as err:
            read(text)
        assert str(err.value) == f"{text} is not a minialex checkpoint (not an .npz archive)"
        assert "pickle" not in str(err.value)
    plain = tmp_path / "plain.npz"
    np.savez(plain, w=np.ones(1))
    with pytest.raises(CheckpointError, match="not a minialex checkpoint"):
        load_checkpoint(plain)
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, obj=np.array([{"a": 1}], dtype=object))
    with pytest.raises(CheckpointError, match="cannot read|not a minialex"):
        load_checkpoint(pickled)
