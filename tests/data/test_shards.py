"""Tar shards: writing from a folder, reading them back as a stream, and every bad input."""

import io
import json
import os
import re
import subprocess
import sys
import tarfile

import numpy as np
import pytest

from minialex.data import (CorruptImageError, DataError, DataLoader, EvalTransform, ImageFolder,
                           ShardDataset, SkipLog, TrainTransform, compute_stats, expand_braces,
                           open_train_val, shard_paths, write_shards)
from minialex.data.tarshards import INDEX_NAME

from .conftest import make_folder, write_jpeg

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run(*args):
    """``python *args`` from the repository root, as a user would; (exit code, stdout, stderr lines)."""
    proc = subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, cwd=ROOT,
                          env=dict(os.environ, PYTHONPATH=ROOT), timeout=120)
    return proc.returncode, proc.stdout, [line for line in proc.stderr.splitlines() if line.strip()]


def assert_one_line_error(result, *words):
    code, _, err = result
    assert code == 2 and len(err) == 1 and err[0].startswith("error:"), (code, err)
    for w in words:
        assert w in err[0], (w, err[0])


@pytest.fixture(scope="module")
def image_root(tmp_path_factory):
    """train/ (with the fixture's gray PNG, CMYK and corrupt file) and val/, 3 classes."""
    root = tmp_path_factory.mktemp("shards") / "ds"
    make_folder(root, per_class=4)
    make_folder(root, per_class=2, special=False, split="val", seed=1)
    return root


@pytest.fixture(scope="module")
def shard_root(image_root):
    out = image_root.parent / "out"
    write_shards(image_root, out, shard_size=3)
    return out


def decoded(samples):
    """{(label, shape, pixel bytes)} -> count, for comparing sample sets."""
    out = {}
    for img, label in samples:
        k = (label, img.shape, img.tobytes())
        out[k] = out.get(k, 0) + 1
    return out


def test_brace_patterns_and_lists(shard_root):
    assert expand_braces("s-{08..11}.tar") == ["s-08.tar", "s-09.tar", "s-10.tar", "s-11.tar"]
    assert expand_braces("{a,b{1..2}}x") == ["ax", "b1x", "b2x"]
    assert expand_braces("s-{8..10}") == ["s-8", "s-9", "s-10"]
    with pytest.raises(DataError, match="unbalanced"):
        expand_braces("s-{0..2.tar")
    train = sorted(str(p) for p in shard_root.glob("train-*.tar"))
    assert shard_paths(shard_root) == sorted(str(p) for p in shard_root.glob("*.tar"))
    assert shard_paths(f"{shard_root}/train-{{000000..{len(train) - 1:06d}}}.tar") == train
    assert shard_paths(f"{train[0]}::{train[1]}") == train[:2] == shard_paths(train[:2])
    with pytest.raises(DataError, match="2 of 3 shards not found"):
        shard_paths(f"{shard_root}/train-{{000004..000006}}.tar")


def test_writer_layout_and_index(image_root, shard_root):
    names = sorted(os.listdir(shard_root))
    # 15 train samples (12 JPEGs + gray, CMYK, corrupt) in shards of 3; 6 val samples.
    assert names == (["classes.txt", INDEX_NAME, "synset_words.txt"]
                     + [f"train-{k:06d}.tar" for k in range(5)] + [f"val-{k:06d}.tar" for k in range(2)])
    assert (shard_root / "classes.txt").read_text().split() == ["n001", "n002", "n003"]
    index = json.loads((shard_root / INDEX_NAME).read_text())
    assert [e["samples"] for e in index["shards"]] == [3] * 5 + [3] * 2
    with tarfile.open(shard_root / "train-000000.tar") as tar:
        members = tar.getnames()
    assert len(members) == 6 and members[1] == members[0].rsplit(".", 1)[0] + ".cls"
    assert not any(n.startswith(".") for n in os.listdir(image_root.parent))  # no leftovers


def test_shards_and_their_folder_give_the_same_samples(image_root, shard_root):
    train, val = open_train_val(shard_root)
    folder_train, folder_val = ImageFolder(image_root, "train"), ImageFolder(image_root, "val")
    assert train.classes == folder_train.classes and train.names == folder_train.names
    assert (len(train), len(val)) == (len(folder_train), len(folder_val)) == (15, 6)
    bad = {}
    for shards, folder in ((train, folder_train), (val, folder_val)):
        from_folder, bad_folder = [], []
        for i in range(len(folder)):
            try:
                from_folder.append(folder.load(i))
            except CorruptImageError as exc:
                bad_folder.append(os.path.basename(exc.path))
        from_shards, bad_shards = [], []
        for record in shards.stream(0, 0, shuffle=False):
            try:
                from_shards.append(shards.decode(record))
            except CorruptImageError as exc:  # the same corrupt file, named inside its shard
                bad_shards.append(exc.path.rsplit("/", 1)[-1])
        assert decoded(from_shards) == decoded(from_folder)
        assert bad_shards == bad_folder
        bad[folder.split] = bad_shards
    assert bad == {"train": ["broken.JPEG"], "val": []}


def test_stream_order_is_a_function_of_seed_and_epoch(shard_root):
    ds = ShardDataset(f"{shard_root}/train-{{000000..000004}}.tar", buffer_size=4)
    order = [r.index for r in ds.stream(3, 0)]
    assert sorted(order) == list(range(15))
    assert order == [r.index for r in ds.stream(3, 0)]
    assert order != [r.index for r in ds.stream(3, 1)]
    assert [r.index for r in ds.stream(3, 0, shuffle=False)] == list(range(15))
    assert [r.index for r in ds.stream(3, 0, limit=4)] == order[:4]


def test_loader_on_shards_is_deterministic_and_resumable(shard_root):
    ds = ShardDataset(sorted(str(p) for p in shard_root.glob("train-*.tar")), buffer_size=5)
    t = TrainTransform(None, 8, 10)

    def batches(workers, start=0):
        quiet = SkipLog(write=lambda line: None)  # broken.JPEG, checked elsewhere
        return [(x.copy(), y.copy()) for x, y in
                DataLoader(ds, t, batch_size=4, seed=2, workers=workers, skips=quiet).epoch_iter(1, start)]

    a, b = batches(1), batches(3)
    assert [len(y) for _, y in a] == [len(y) for _, y in b] and sum(len(y) for _, y in a) == 14
    for (xa, ya), (xb, yb) in zip(a, b):
        assert np.array_equal(xa, xb) and np.array_equal(ya, yb)
    rest = batches(2, start=3)
    assert len(rest) == 1 and np.array_equal(rest[0][0], a[3][0])
    val = ShardDataset(sorted(str(p) for p in shard_root.glob("val-*.tar")))
    small = DataLoader(val, EvalTransform(None, 8, 10), batch_size=4, shuffle=False, max_images=5,
                       on_error="raise")
    assert len(small) == 2 and [len(y) for _, y in small] == [4, 1]


def test_breaking_out_of_a_stream_stops_the_reader(shard_root):
    import threading
    before = threading.active_count()
    loader = DataLoader(ShardDataset(shard_root, buffer_size=2), EvalTransform(None, 8, 10),
                        batch_size=2, on_error="skip", skips=SkipLog(write=lambda line: None))
    for _ in loader:
        break
    loader.close()
    assert threading.active_count() <= before


def test_ranks_read_their_own_shards(shard_root):
    paths = sorted(str(p) for p in shard_root.glob("train-*.tar"))  # 5 shards of 3
    ranks = [ShardDataset(paths, rank=r, world_size=2) for r in (0, 1)]
    assert [len(d) for d in ranks] == [6, 6]  # 2 shards each at least: every rank stops at 6
    for epoch in (0, 1):
        got = [[r.index for r in d.stream(0, epoch)] for d in ranks]
        assert len(got[0]) == len(got[1]) == 6 and not set(got[0]) & set(got[1])
        shards = [set(d.epoch_shards(0, epoch)) for d in ranks]
        assert not shards[0] & shards[1] and len(shards[0] | shards[1]) == 5
    assert ranks[0].epoch_shards(0, 0) != ranks[0].epoch_shards(0, 1) or \
        ranks[1].epoch_shards(0, 0) != ranks[1].epoch_shards(0, 1)
    with pytest.raises(DataError, match="rank"):
        ShardDataset(paths, rank=2, world_size=2)
    with pytest.raises(DataError, match="cannot give each of 6"):
        ShardDataset(paths, world_size=6)


def test_stats_from_shards_equal_stats_from_the_folder(image_root, shard_root):
    folder = compute_stats(ImageFolder(image_root, "val"), size=12)
    shards = compute_stats(ShardDataset(sorted(str(p) for p in shard_root.glob("val-*.tar"))), size=12)
    assert shards.count == folder.count == 6
    assert np.allclose(shards.mean_image, folder.mean_image, atol=1e-4)
    assert np.allclose(shards.eigvals, folder.eigvals, rtol=1e-4)


def _copy_shards(src, dst, names):
    dst.mkdir(parents=True)
    for name in names:
        (dst / name).write_bytes((src / name).read_bytes())
    return dst


def test_truncated_shard_is_skipped_or_raised_like_a_corrupt_file(shard_root, tmp_path):
    d = _copy_shards(shard_root, tmp_path / "cut", ["classes.txt", INDEX_NAME, "val-000000.tar", "val-000001.tar"])
    data = (d / "val-000001.tar").read_bytes()
    with tarfile.open(d / "val-000001.tar") as tar:
        second = tar.getmembers()[2]  # the second sample's image: cut in the middle of its data
    (d / "val-000001.tar").write_bytes(data[:second.offset_data + second.size // 2])
    ds = ShardDataset(d)  # the index no longer matches the file size: counted by a scan
    assert len(ds) == 5
    t = EvalTransform(None, 8, 10)
    lines = []
    n = sum(len(y) for _, y in DataLoader(ds, t, batch_size=4, shuffle=False, skips=SkipLog(write=lines.append)))
    assert n == 4
    assert len(lines) == 1 and re.search("val-000001.tar.*truncated", lines[0]), lines
    with pytest.raises(CorruptImageError, match="val-000001.tar"):
        list(DataLoader(ds, t, batch_size=4, shuffle=False, on_error="raise"))


def _write_tar(path, members):
    with tarfile.open(path, "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def _jpeg_bytes(seed):
    buf = io.BytesIO()
    write_jpeg(buf, np.random.default_rng(seed))
    return buf.getvalue()


def test_member_that_is_not_an_image(tmp_path):
    d = tmp_path / "odd"
    d.mkdir()
    (d / "classes.txt").write_text("a\nb\n")
    _write_tar(d / "train-0.tar", [("k0.jpg", _jpeg_bytes(0)), ("k0.cls", b"1"),
                                   ("k1.jpg", b"plain text, not a JPEG"), ("k1.cls", b"0"),
                                   ("k2.txt", b"a caption only"), ("k2.cls", b"0"),
                                   ("__meta__.json", b"{}")])
    ds = ShardDataset(d)
    assert len(ds) == 3
    recs = list(ds.stream(0, 0, shuffle=False))
    assert ds.decode(recs[0])[1] == 1
    with pytest.raises(CorruptImageError, match="train-0.tar:k1.jpg"):
        ds.decode(recs[1])
    with pytest.raises(CorruptImageError, match="no image member"):
        ds.decode(recs[2])
    lines = []
    loader = DataLoader(ds, EvalTransform(None, 8, 10), batch_size=3, shuffle=False,
                        skips=SkipLog(write=lines.append))
    assert [len(y) for _, y in loader] == [1]
    assert len(loader.skipped) == 2 and len(lines) == 2
    assert "train-0.tar:k1.jpg" in lines[0] and "no image" in lines[1]


def test_bad_shard_sets_are_data_errors(tmp_path):
    d = tmp_path / "bad"
    d.mkdir()
    (d / "classes.txt").write_text("a\nb\n")
    with pytest.raises(DataError, match="no .tar shards"):
        ShardDataset(d)
    _write_tar(d / "s.tar", [("k0.jpg", _jpeg_bytes(0))])
    with pytest.raises(DataError, match="has no labels"):
        ShardDataset(d)
    _write_tar(d / "s.tar", [("k0.jpg", _jpeg_bytes(0)), ("k0.cls", b"2")])
    with pytest.raises(DataError, match="label 2 is out of range"):
        ShardDataset(d)
    _write_tar(d / "s.tar", [("k0.jpg", _jpeg_bytes(0)), ("k0.cls", b"cat")])
    with pytest.raises(DataError, match="not an integer"):
        ShardDataset(d)
    (d / "s.tar").write_bytes(b"not a tar file at all" * 40)
    with pytest.raises(DataError, match="not a readable tar"):
        ShardDataset(d)
    os.remove(d / "classes.txt")
    _write_tar(d / "s.tar", [("k0.jpg", _jpeg_bytes(0)), ("k0.cls", b"0")])
    with pytest.raises(DataError, match="no classes.txt or synset_words.txt"):
        ShardDataset(d)


def test_shard_layouts_for_data(shard_root, tmp_path):
    split = tmp_path / "split"
    for s in ("train", "val"):
        _copy_shards(shard_root, split / s, [n for n in os.listdir(shard_root) if n.startswith(s)])
    (split / "classes.txt").write_text((shard_root / "classes.txt").read_text())
    train, val = open_train_val(split)  # root/train/*.tar, root/val/*.tar, classes.txt in root
    assert (len(train), len(val)) == (15, 6) and val.classes == train.classes
    pattern = f"{shard_root}/{{train-{{000000..000004}},val-{{000000..000001}}}}.tar"
    assert [len(d) for d in open_train_val(pattern)] == [15, 6]
    with pytest.raises(DataError, match="'val' in its name"):
        open_train_val(f"{shard_root}/train-000000.tar::{shard_root}/train-000001.tar")
    with pytest.raises(DataError, match="data path not found"):
        open_train_val(tmp_path / "nowhere")


# -- the command lines --------------------------------------------------------------
WRITE = ("-m", "minialex.data.shards")


def test_writer_command_and_its_bad_input(image_root, tmp_path):
    out = tmp_path / "shards"
    code, stdout, _ = run(*WRITE, image_root, out, "--shard-size", "10", "--quiet")
    assert code == 0 and "train: 15 samples in 2 shards" in stdout and "val: 6 samples in 1 shard" in stdout
    before = sorted(os.listdir(tmp_path))
    assert_one_line_error(run(*WRITE, image_root, tmp_path / "new", "--shard-size", "0"), "--shard-size")
    assert_one_line_error(run(*WRITE, image_root, out, "--quiet"), "not empty", "--overwrite")
    assert_one_line_error(run(*WRITE, tmp_path / "missing", tmp_path / "new"), "missing", "does not exist")
    assert_one_line_error(run(*WRITE, image_root, image_root / "train" / "x", "--quiet"), "overlap")
    assert sorted(os.listdir(tmp_path)) == before  # nothing half-written, no hidden leftovers
    code, _, _ = run(*WRITE, image_root, out, "--shard-size", "100", "--overwrite", "--quiet")
    assert code == 0 and sorted(p.name for p in out.glob("*.tar")) == ["train-000000.tar", "val-000000.tar"]


def test_training_command_reports_bad_shards_in_one_line(tmp_path):
    train = os.path.join("examples", "train_imagenet.py")
    empty = tmp_path / "empty"
    (empty / "train").mkdir(parents=True)
    (empty / "val").mkdir()
    assert_one_line_error(run(train, "--data", empty), "neither class folders nor .tar shards")
    d = tmp_path / "wds"
    d.mkdir()
    (d / "classes.txt").write_text("a\nb\n")
    assert_one_line_error(run(train, "--data", d), "no train/ and val/ folders and no .tar shards")
    (d / "train-0.tar").write_bytes(b"")
    assert_one_line_error(run(train, "--data", d / "nothing-{0..3}.tar"), "not found")
    _write_tar(d / "train-0.tar", [("k0.jpg", _jpeg_bytes(0))])
    _write_tar(d / "val-0.tar", [("k0.jpg", _jpeg_bytes(1)), ("k0.cls", b"0")])
    assert_one_line_error(run(train, "--data", d), "train-0.tar has no labels")
    _write_tar(d / "train-0.tar", [("k0.jpg", _jpeg_bytes(0)), ("k0.cls", b"7")])
    assert_one_line_error(run(train, "--data", d), "label 7 is out of range")


def _mark_prepared(folder, size):
    """Add the ``prepared`` section minialex-prepare writes to the index beside the shards."""
    path = os.path.join(folder, INDEX_NAME)
    with open(path) as f:
        index = json.load(f)
    index["prepared"] = {"size": size}
    with open(path, "w") as f:
        json.dump(index, f)


def test_prepared_shards_skip_the_resize_with_the_same_pixels(tmp_path, monkeypatch):
    from minialex.data import jpeg, tarshards
    from minialex.data.folder import decode_image

    rng = np.random.default_rng(5)
    for k in range(2):
        d = tmp_path / "ds" / "train" / f"c{k}"
        d.mkdir(parents=True)
        for i in range(3):
            write_jpeg(d / f"{i}.jpg", rng, size=(24, 24))
    write_jpeg(tmp_path / "ds" / "train" / "c1" / "wide.jpg", rng, size=(40, 24))  # not what it promises
    write_shards(tmp_path / "ds", tmp_path / "out", shard_size=4)
    assert ShardDataset(tmp_path / "out").prepared_size is None  # original files: no promise
    _mark_prepared(tmp_path / "out", 24)
    ds = ShardDataset(tmp_path / "out")
    assert ds.prepared_size == 24

    calls = []
    real = jpeg.decode_rgb
    monkeypatch.setattr(tarshards, "decode_rgb", lambda data, name: calls.append(name) or real(data, name))
    for rec in ds.stream(0, 0, shuffle=False):
        for crop in [(0, 0, 24), (3, 1, 20), (4, 4, 20)]:
            got, label = ds.decode(rec, shorter=24, crop=crop)
            want = decode_image(io.BytesIO(rec.data), rec.name, 24, crop)  # the general path
            assert label == rec.label and got.shape == want.shape == (crop[2], crop[2], 3)
            assert np.array_equal(got, want), rec.name
        assert np.array_equal(ds.decode(rec, shorter=24)[0], decode_image(io.BytesIO(rec.data), rec.name, 24))
    assert len(calls) == 7 * 4  # every decode at the prepared size went the fast way
    calls.clear()
    rec = next(r for r in ds.stream(0, 0, shuffle=False) if "wide" in r.name)
    ds.decode(rec, shorter=16, crop=(0, 0, 16))
    assert not calls  # another size resizes, as for any shard

    # A shard changed since the manifest was written is no longer covered by it.
    shard = sorted(p for p in os.listdir(tmp_path / "out") if p.endswith(".tar"))[0]
    with open(tmp_path / "out" / shard, "ab") as f:
        f.write(b"\0" * 512)
    assert ShardDataset(tmp_path / "out").prepared_size is None
