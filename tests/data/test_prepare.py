"""minialex-prepare: the pixels, the layout and manifest, determinism, resume, and every bad input."""

import errno
import hashlib
import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from minialex.atomic import WriteFailed
from minialex.data import (DataError, ImageFolder, ShardDataset, SkipLog, center_crop, decode_image,
                           ensure_synthetic_dataset, open_train_val, write_shards)
from minialex.data import prepare as prepare_mod
from minialex.data.prepare import DEFAULT_QUALITY, PrepareInterrupted, main, prepare
from minialex.data.tarshards import INDEX_NAME

from .conftest import make_folder

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SIZE = 64


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    """10 classes, 40 train and 20 val JPEGs of 72 x 72."""
    from pathlib import Path
    return Path(ensure_synthetic_dataset(tmp_path_factory.mktemp("synth") / "src", image_size=72,
                                         train_per_class=4, val_per_class=2))


def quiet_prepare(source, out, **kw):
    kw.setdefault("size", SIZE)
    kw.setdefault("workers", 1)
    kw.setdefault("log", lambda line: None)
    return prepare(source, out, **kw)


def tar_bytes(folder):
    names = sorted(n for n in os.listdir(folder) if n.endswith(".tar"))
    return {n: open(os.path.join(folder, n), "rb").read() for n in names}


def partial_of(out):
    return os.path.join(os.path.dirname(out), "." + os.path.basename(out) + ".partial")


def jpeg_roundtrip(arr, quality=DEFAULT_QUALITY):
    """What a reader gets back from ``arr`` stored as the preparation stores it."""
    from PIL import Image
    return np.asarray(Image.open(io.BytesIO(prepare_mod.encode_jpeg(arr, quality))))


def records(ds):
    """[(key, label, image)] of a ShardDataset in file order."""
    out = []
    for rec in ds.stream(seed=0, epoch=0, shuffle=False):
        img, label = ds.decode(rec)
        out.append((rec.name.split(":", 1)[1].rsplit(".", 1)[0], label, img))
    return out


# -- what is written -------------------------------------------------------------------------
def test_folder_source_gives_the_loaders_pixels_labels_and_classes(synth, tmp_path):
    out = str(tmp_path / "prepared")
    summary = quiet_prepare(synth, out, shard_size=7)
    assert summary["counts"] == {"train": 40, "val": 20} and summary["shards"] == 6 + 3
    assert not os.path.exists(partial_of(out))
    assert sorted(os.listdir(out)) == sorted(
        ["classes.txt", "synset_words.txt", INDEX_NAME]
        + [f"train-{k:06d}.tar" for k in range(6)] + [f"val-{k:06d}.tar" for k in range(3)])

    train, val = open_train_val(out)
    for split, ds in (("train", train), ("val", val)):
        src = ImageFolder(synth, split)
        assert ds.classes == src.classes and ds.names == src.names
        by_key = {os.path.splitext(os.path.relpath(p, src.folder))[0]: (p, label) for p, label in src.samples}
        got = records(ds)
        assert sorted(k for k, _, _ in got) == sorted(by_key)  # every sample once, keys kept
        errors = []
        for key, label, img in got:
            path, src_label = by_key[key]
            assert label == src_label
            assert img.shape == (SIZE, SIZE, 3) and img.dtype == np.uint8
            want = center_crop(decode_image(path, path, shorter=SIZE), SIZE)
            # Exactly the loader's pixels went into the JPEG encoder ...
            np.testing.assert_array_equal(img, jpeg_roundtrip(want))
            errors.append(np.abs(img.astype(np.int16) - want).mean())
        # ... and the JPEG loss stays small. These saturated, sharp-edged drawings are a hard case
        # for 4:2:0 chroma subsampling (about 5 grey levels at quality 90, photographs far less).
        assert np.mean(errors) < 6.0 and max(errors) < 15.0
    # the seeded order mixes the classes: the first shard holds more than one
    first = ShardDataset(os.path.join(out, "train-000000.tar"))
    assert len({label for _, label, _ in records(first)}) > 2


def test_manifest_is_the_shard_index_with_the_preparation(synth, tmp_path):
    out = tmp_path / "prepared"
    quiet_prepare(synth, out, shard_size=25, quality=80)
    manifest = json.loads((out / INDEX_NAME).read_text())
    assert manifest["version"] == 1
    for e in manifest["shards"]:
        data = (out / e["name"]).read_bytes()
        assert e["bytes"] == len(data) and e["sha256"] == hashlib.sha256(data).hexdigest()
    assert [e["samples"] for e in manifest["shards"]] == [25, 15, 20]
    p = manifest["prepared"]
    assert p["size"] == SIZE and p["quality"] == 80 and p["format"] == "jpeg" and p["subsampling"] == "4:2:0"
    assert p["rule"].startswith(f"shorter side to {SIZE} ")
    assert p["rule"].endswith(f"centre crop {SIZE} x {SIZE}")
    assert p["source"] == os.path.abspath(synth) and p["counts"] == {"train": 40, "val": 20}
    assert p["corrupt"] == [] and p["pillow"] and p["minialex"]
    # ShardDataset takes the counts from it instead of scanning (a wrong count would show)
    assert len(ShardDataset(str(out))) == 60


def test_shard_source_keeps_shards_order_and_keys(synth, tmp_path):
    shards = tmp_path / "shards"
    write_shards(synth, shards, shard_size=9)
    out = tmp_path / "prepared"
    quiet_prepare(str(shards), out)
    ins = sorted(n for n in os.listdir(shards) if n.endswith(".tar"))
    assert sorted(tar_bytes(out)) == ins
    assert ShardDataset(str(out)).classes == ShardDataset(str(shards)).classes
    for name in ins:
        src = ShardDataset(str(shards / name))
        a = list(src.stream(seed=0, epoch=0, shuffle=False))
        b = records(ShardDataset(str(out / name)))
        assert [rec.name.split(":", 1)[1].rsplit(".", 1)[0] for rec in a] == [k for k, _, _ in b]
        for rec, (_, label, img) in zip(a, b):
            want, src_label = src.decode(rec, shorter=SIZE)
            assert label == src_label and img.shape == (SIZE, SIZE, 3)
            np.testing.assert_array_equal(img, jpeg_roundtrip(center_crop(want, SIZE)))


def test_pattern_source_and_a_root_with_train_only(synth, tmp_path):
    shards = tmp_path / "shards"
    write_shards(synth, shards, shard_size=20)
    out = tmp_path / "p1"
    s = quiet_prepare(str(shards / "train-{000000..000001}.tar"), out)
    assert s["counts"] == {"train": 40} and sorted(tar_bytes(out)) == ["train-000000.tar", "train-000001.tar"]
    listed = f"{shards}/train-000001.tar::{shards}/val-000000.tar"
    s = quiet_prepare(listed, tmp_path / "p3")
    assert s["counts"] == {"train": 20, "val": 20}
    assert json.loads((tmp_path / "p3" / INDEX_NAME).read_text())["prepared"]["source"] == listed

    only_train = make_folder(tmp_path / "only", special=False)
    s = quiet_prepare(only_train, tmp_path / "p2")
    assert s["counts"] == {"train": 9}
    assert ShardDataset(str(tmp_path / "p2")).classes == ["n001", "n002", "n003"]


def test_same_bytes_whatever_the_workers(synth, tmp_path):
    quiet_prepare(synth, tmp_path / "one", shard_size=8, workers=1)
    quiet_prepare(synth, tmp_path / "two", shard_size=8, workers=2)  # a spawned pool
    a, b = tar_bytes(tmp_path / "one"), tar_bytes(tmp_path / "two")
    assert len(a) == 8 and a == b
    assert (tmp_path / "one" / INDEX_NAME).read_text() == (tmp_path / "two" / INDEX_NAME).read_text()


def test_up_to_date_output_is_not_rewritten(synth, tmp_path, capsys):
    out = tmp_path / "prepared"
    quiet_prepare(synth, out)
    stamps = {n: os.stat(out / n).st_mtime_ns for n in os.listdir(out)}
    assert main([str(synth), str(out), "--size", str(SIZE), "--quiet"]) == 0
    assert "up to date" in capsys.readouterr().out
    assert {n: os.stat(out / n).st_mtime_ns for n in os.listdir(out)} == stamps
    # other options: refused, then replaced with --overwrite
    assert main([str(synth), str(out), "--size", "48", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "--overwrite" in err[0]
    assert main([str(synth), str(out), "--size", "48", "--quiet", "--overwrite", "--workers", "1"]) == 0
    assert json.loads((out / INDEX_NAME).read_text())["prepared"]["size"] == 48


# -- corrupt images ---------------------------------------------------------------------------
def test_corrupt_image_is_skipped_named_once_and_listed(tmp_path, capsys):
    src = make_folder(tmp_path / "ds")  # n002 holds broken.JPEG, a grayscale PNG and a CMYK JPEG
    out = tmp_path / "prepared"
    assert main([str(src), str(out), "--size", "32", "--quiet", "--workers", "1"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("warning: skipped unreadable image")
    assert "broken.JPEG" in err[0]
    p = json.loads((out / INDEX_NAME).read_text())["prepared"]
    assert p["counts"] == {"train": 11} and len(p["corrupt"]) == 1 and p["corrupt"][0].endswith("broken.JPEG")
    ds = ShardDataset(str(out))
    assert len(ds) == 11 and all(img.shape == (32, 32, 3) for _, _, img in records(ds))
    skips = SkipLog(write=lambda line: None)
    quiet_prepare(src, tmp_path / "again", size=32, skips=skips)
    assert skips.total == 1


def test_a_split_whose_every_image_is_unreadable_is_an_error(tmp_path, capsys):
    for split, n in (("train", 2), ("val", 1)):
        folder = tmp_path / "ds" / split / "n001"
        folder.mkdir(parents=True)
        for i in range(n):
            (folder / f"bad{i}.JPEG").write_bytes(b"not a jpeg" * 10)
    good = np.random.default_rng(0).integers(0, 256, (20, 20, 3), dtype=np.uint8)
    Image.fromarray(good).save(tmp_path / "ds" / "train" / "n001" / "good.jpg")
    out = tmp_path / "prepared"
    assert main([str(tmp_path / "ds"), str(out), "--size", "16", "--quiet", "--workers", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 4 and all(e.startswith("warning: skipped unreadable image") for e in err[:3])
    assert err[3].startswith("error: no image of the val split") and "could be decoded" in err[3]
    assert sorted(os.listdir(tmp_path)) == ["ds"]  # neither OUT nor a partial folder


# -- resume -------------------------------------------------------------------------------------
def fail_after(monkeypatch, n, exc):
    """Make the shard writer fail on its (n+1)-th call, after writing half of the shard to .tmp."""
    real, calls = prepare_mod._write_file, []

    def writer(path, data):
        calls.append(path)
        if len(calls) > n:
            raise exc
        real(path, data)
    monkeypatch.setattr(prepare_mod, "_write_file", writer)
    return calls


def test_full_disk_keeps_finished_shards_and_a_rerun_resumes(synth, tmp_path, monkeypatch, capsys):
    clean = tmp_path / "clean"
    quiet_prepare(synth, clean, shard_size=6)
    out = tmp_path / "prepared"
    args = [str(synth), str(out), "--size", str(SIZE), "--shard-size", "6", "--workers", "1", "--quiet"]
    fail_after(monkeypatch, 3, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: cannot write ") and "No space left on device" in err[0]
    partial = partial_of(str(out))
    assert not os.path.exists(out)
    kept = sorted(n for n in os.listdir(partial) if n.endswith(".tar"))
    assert kept == [f"train-{k:06d}.tar" for k in range(3)]
    assert not [n for n in os.listdir(partial) if n.endswith(".tmp")]

    monkeypatch.undo()
    assert main(args) == 0
    captured = capsys.readouterr()
    assert "resuming: 3 of 11 shards done and verified" in captured.err
    assert tar_bytes(out) == tar_bytes(clean) and not os.path.exists(partial)
    assert sorted(os.listdir(out)) == sorted(os.listdir(clean))  # no plan or journal left behind


def test_resume_verifies_redoes_damaged_shards_and_removes_strays(synth, tmp_path, monkeypatch):
    clean = tmp_path / "clean"
    quiet_prepare(synth, clean, shard_size=6)
    out = str(tmp_path / "prepared")
    fail_after(monkeypatch, 5, OSError(errno.EIO, "Input/output error"))
    with pytest.raises(WriteFailed, match="Input/output error"):
        quiet_prepare(synth, out, shard_size=6)
    monkeypatch.undo()
    partial = partial_of(out)
    with open(os.path.join(partial, "train-000001.tar"), "r+b") as f:  # same size, other bytes
        f.seek(700)
        f.write(b"\0\1\2")
    os.unlink(os.path.join(partial, "train-000003.tar"))
    open(os.path.join(partial, "train-000005.tar.tmp"), "wb").write(b"half a shard")
    lines = []
    quiet_prepare(synth, out, shard_size=6, log=lines.append)
    assert lines == ["resuming: 3 of 11 shards done and verified"]
    assert tar_bytes(out) == tar_bytes(clean) and sorted(os.listdir(out)) == sorted(os.listdir(clean))


def test_interrupt_keeps_finished_shards(synth, tmp_path, monkeypatch, capsys):
    out = tmp_path / "prepared"
    args = [str(synth), str(out), "--size", str(SIZE), "--shard-size", "10", "--workers", "1", "--quiet"]
    fail_after(monkeypatch, 2, KeyboardInterrupt())
    assert main(args) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "2 of 6 shards are finished" in err[0] and "same command" in err[0]
    with pytest.raises(PrepareInterrupted) as info:
        quiet_prepare(synth, out, shard_size=10)  # interrupted again at its first shard
    assert (info.value.done, info.value.total) == (2, 6)
    monkeypatch.undo()
    lines = []
    quiet_prepare(synth, out, shard_size=10, log=lines.append)
    assert lines == ["resuming: 2 of 6 shards done and verified"]
    assert len(ShardDataset(str(out))) == 60


def test_partial_from_other_options_is_refused_then_discarded(synth, tmp_path, monkeypatch, capsys):
    out = tmp_path / "prepared"
    fail_after(monkeypatch, 1, KeyboardInterrupt())
    with pytest.raises(PrepareInterrupted):
        quiet_prepare(synth, out, shard_size=10)
    monkeypatch.undo()
    args = [str(synth), str(out), "--size", str(SIZE), "--shard-size", "12", "--workers", "1", "--quiet"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "--overwrite" in err[0] and "resume" in err[0]
    assert main(args + ["--overwrite"]) == 0
    shards = json.loads((out / INDEX_NAME).read_text())["shards"]
    assert [e["samples"] for e in shards] == [12, 12, 12, 4, 12, 8]


# -- bad input ---------------------------------------------------------------------------------
@pytest.mark.parametrize("case", ["empty source", "class folders at the top", "missing source",
                                  "no split in shard names", "quality 0",
                                  "quality 96", "size 0", "shard-size 0", "workers 0", "non-empty out",
                                  "out inside the images", "out is a file"])
def test_bad_input_is_one_line_and_exit_2(case, synth, tmp_path, capsys):
    source, out, extra = str(synth), tmp_path / "out", []
    if case == "empty source":
        source = str(tmp_path / "empty")
        os.mkdir(source)
    elif case == "class folders at the top":
        source = str(synth / "train")
        out = tmp_path / "out"
    elif case == "missing source":
        source = str(tmp_path / "nowhere")
    elif case == "no split in shard names":
        write_shards(synth, tmp_path / "sh", shard_size=30)
        os.rename(tmp_path / "sh" / "train-000000.tar", tmp_path / "sh" / "part-0.tar")
        source = str(tmp_path / "sh")
    elif case == "non-empty out":
        out.mkdir()
        (out / "notes.txt").write_text("mine")
    elif case == "out inside the images":
        out = synth / "train" / "prepared"
    elif case == "out is a file":
        out.write_text("a file")
    else:
        flag, value = case.split()
        extra = [f"--{flag}", value]
    before = sorted(os.listdir(tmp_path))
    assert main([source, str(out), "--size", str(SIZE), "--quiet", *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:"), err
    assert sorted(os.listdir(tmp_path)) == before  # nothing written, no partial folder
    assert not os.path.exists(synth / "train" / "prepared")


def test_quality_bounds_in_the_library(synth, tmp_path):
    with pytest.raises(DataError, match="1 to 95"):
        quiet_prepare(synth, tmp_path / "o", quality=100)
    assert 1 <= DEFAULT_QUALITY <= 95


def run(*args):
    proc = subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, cwd=ROOT,
                          env=dict(os.environ, PYTHONPATH=ROOT), timeout=120)
    return proc.returncode, proc.stdout, [line for line in proc.stderr.splitlines() if line.strip()]


def test_command_line_in_a_subprocess(synth, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = run("-m", "minialex", "prepare", empty, tmp_path / "out")
    assert code == 2 and len(err) == 1 and err[0].startswith("error:") and "no images" in err[0]
    code, _, err = run("-m", "minialex.data.prepare", synth, tmp_path / "out", "--quality", "101")
    assert code == 2 and len(err) == 1 and "Traceback" not in err[0]
    code, out, err = run("-m", "minialex", "prepare", synth, tmp_path / "out", "--size", "32", "--quiet")
    assert code == 0 and out.startswith("wrote ") and err == []
    assert len(ShardDataset(str(tmp_path / "out"))) == 60


def test_ctrl_c_in_a_subprocess_keeps_finished_shards(synth, tmp_path):
    """SIGINT to the process group, as a terminal's Ctrl-C: the workers ignore it, the parent stops
    the pool and says how to resume. The signal is sent once the first shard is journalled."""
    import shutil
    import signal
    import time
    src = tmp_path / "src"
    for copy in range(20):  # 1200 files from the 60 of synth, cheaply
        for split in ("train", "val"):
            for cls in os.listdir(synth / split):
                dst = src / split / cls
                dst.mkdir(parents=True, exist_ok=True)
                for f in os.listdir(synth / split / cls):
                    shutil.copyfile(synth / split / cls / f, dst / f"{copy}-{f}")
    out = tmp_path / "prepared"
    journal = tmp_path / ".prepared.partial" / "journal.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "minialex", "prepare", src, out, "--size", "32",
                             "--shard-size", "2", "--workers", "2", "--quiet"], cwd=ROOT,
                            env=dict(os.environ, PYTHONPATH=ROOT), start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline:
        if journal.exists() and journal.read_text().count("\n") >= 1:
            os.killpg(proc.pid, signal.SIGINT)
            break
        time.sleep(0.01)
    _, err = proc.communicate(timeout=60)
    if proc.returncode == 0:
        pytest.skip("the run finished before the signal arrived")
    lines = [line for line in err.splitlines() if line.strip()]
    assert proc.returncode == 130 and len(lines) == 1, err
    assert lines[0].startswith("interrupted: ") and "run the same command to resume" in lines[0]
    assert not out.exists()
    resume = []
    quiet_prepare(src, out, size=32, shard_size=2, log=resume.append)
    assert resume[0].startswith("resuming: ") and not resume[0].startswith("resuming: 0 ")
    clean = tmp_path / "clean"
    quiet_prepare(src, clean, size=32, shard_size=2)
    assert tar_bytes(out) == tar_bytes(clean)
