"""SkipLog: an unreadable image is named once per run, in one plain line, and counted per epoch.

No Python warning (which shows a source path and repeats), checked in a subprocess as a
user would see it, with ``-W error`` so any warning would fail the run.
"""

import os
import subprocess
import sys
import threading
import warnings

import numpy as np
import pytest

from minialex.atomic import WriteFailed
from minialex.data import (CorruptImageError, DataLoader, ImageFolder, SkipLog, TrainTransform,
                           compute_stats, load_or_compute_stats)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LINE = "warning: skipped unreadable image {}: "


def run_python(code, *args):
    """``python -W error -c code *args`` from the repository root: (exit code, stderr lines)."""
    proc = subprocess.run([sys.executable, "-W", "error", "-c", code, *map(str, args)],
                          capture_output=True, text=True, cwd=ROOT,
                          env=dict(os.environ, PYTHONPATH=ROOT), timeout=120)
    return proc.returncode, [line for line in proc.stderr.splitlines() if line.strip()]


def assert_plain(lines):
    """No trace of Python's warning machinery: no category name, no source path."""
    for line in lines:
        assert "Warning" not in line and "warnings.warn" not in line and ".py:" not in line, line


def broken_path(root):
    return str(root / "train" / "n002" / "broken.JPEG")


# -- SkipLog on its own ------------------------------------------------------------------------

def test_each_path_is_named_once_and_every_skip_counts():
    lines = []
    log = SkipLog(write=lines.append)
    log.note("a.jpg", "truncated")
    log.note("b.jpg", "not an image")
    log.note("a.jpg", "truncated")
    assert lines == ["warning: skipped unreadable image a.jpg: truncated",
                     "warning: skipped unreadable image b.jpg: not an image"]
    assert log.take_count() == 3 and log.take_count() == 0  # taking resets
    log.note("a.jpg", "truncated")  # a new epoch meets the same file: counted, not named again
    assert len(lines) == 2 and log.take_count() == 1
    assert log.total == 4 and log.paths == ["a.jpg", "b.jpg"]


def test_default_writes_one_line_to_stderr(capsys):
    log = SkipLog()
    log.note("x.jpg", "bad bytes")
    log.note("x.jpg", "bad bytes")
    captured = capsys.readouterr()
    assert captured.err == "warning: skipped unreadable image x.jpg: bad bytes\n" and captured.out == ""


def test_notes_from_many_threads():
    lines = []
    log = SkipLog(write=lines.append)
    n_threads, n_paths, repeats = 8, 10, 50
    start = threading.Barrier(n_threads)

    def worker():
        start.wait()  # all at once, to give races their chance
        for _ in range(repeats):
            for p in range(n_paths):
                log.note(f"img{p}.jpg", "bad")

    threads = [threading.Thread(target=worker) for _ in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(lines) == sorted(f"warning: skipped unreadable image img{p}.jpg: bad" for p in range(n_paths))
    assert log.total == n_threads * n_paths * repeats == log.take_count()
    assert sorted(log.paths) == sorted(f"img{p}.jpg" for p in range(n_paths))


# -- the loader --------------------------------------------------------------------------------

def test_loader_names_a_corrupt_file_once_over_two_epochs(folder_root):
    ds = ImageFolder(folder_root)  # one corrupt file: n002/broken.JPEG
    lines = []
    skips = SkipLog(write=lines.append)
    loader = DataLoader(ds, TrainTransform(None, 8, 10), batch_size=4, workers=3, skips=skips)
    assert loader.skips is skips
    for epoch in range(2):
        n = sum(len(y) for _, y in loader)
        assert n == len(ds) - 1
        assert skips.take_count() == 1  # what the trainer prints at the epoch's end
        assert loader.skipped == [broken_path(folder_root)]  # this epoch's skipped paths
    assert len(lines) == 1 and lines[0].startswith(LINE.format(broken_path(folder_root)))
    assert skips.total == 2 and skips.paths == [broken_path(folder_root)]


def test_loader_default_skiplog_prints_one_plain_line(folder_root, capsys):
    ds = ImageFolder(folder_root)
    loader = DataLoader(ds, TrainTransform(None, 8, 10), batch_size=4, workers=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any Python warning would raise here
        for _ in range(2):
            for _ in loader:
                pass
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(LINE.format(broken_path(folder_root)))
    assert_plain(err)
    assert loader.skips.total == 2


def test_loader_in_a_subprocess_shows_no_python_warning(folder_root):
    code = (
        "import sys\n"
        "from minialex.data import DataLoader, ImageFolder, TrainTransform\n"
        "loader = DataLoader(ImageFolder(sys.argv[1]), TrainTransform(None, 8, 10), batch_size=4)\n"
        "for epoch in range(3):\n"
        "    n = sum(len(y) for _, y in loader)\n"
        "    print(f'epoch {epoch}: {loader.skips.take_count()} skipped', file=sys.stderr)\n"
    )
    rc, err = run_python(code, folder_root)
    assert rc == 0, err
    assert len(err) == 4 and err[0].startswith(LINE.format(broken_path(folder_root))), err
    assert err[1:] == [f"epoch {e}: 1 skipped" for e in range(3)]
    assert_plain(err)


def test_raise_is_unchanged_and_notes_nothing(folder_root):
    lines = []
    skips = SkipLog(write=lines.append)
    loader = DataLoader(ImageFolder(folder_root), TrainTransform(None, 8, 10), batch_size=4,
                        on_error="raise", skips=skips)
    with pytest.raises(CorruptImageError, match="broken.JPEG"):
        for _ in loader:
            pass
    assert lines == [] and skips.total == 0


# -- the statistics pass -----------------------------------------------------------------------

def test_stats_note_the_corrupt_file(folder_root, tmp_path):
    ds = ImageFolder(folder_root)
    lines = []
    skips = SkipLog(write=lines.append)
    st = load_or_compute_stats(ds, tmp_path / "stats.npz", size=12, skips=skips)
    assert st.count == len(ds) - 1 and skips.total == 1
    assert len(lines) == 1 and lines[0].startswith(LINE.format(broken_path(folder_root)))
    # One SkipLog for the whole run: the loader meets the same file and does not name it again.
    loader = DataLoader(ds, TrainTransform(st, 8, 12), batch_size=4, skips=skips)
    for _ in loader:
        pass
    assert len(lines) == 1 and skips.total == 2


def test_stats_default_skiplog_prints_one_plain_line(folder_root, tmp_path, capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        st = compute_stats(ImageFolder(folder_root), size=12)
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(LINE.format(broken_path(folder_root)))
    assert_plain(err)
    assert st.count > 0


def test_stats_in_a_subprocess_show_no_python_warning(folder_root, tmp_path):
    code = (
        "import sys\n"
        "from minialex.data import ImageFolder, load_or_compute_stats\n"
        "st = load_or_compute_stats(ImageFolder(sys.argv[1]), sys.argv[2], size=12)\n"
        "print(f'stats of {st.count} images', file=sys.stderr)\n"
    )
    cache = tmp_path / "stats.npz"
    rc, err = run_python(code, folder_root, cache)
    assert rc == 0, err
    assert len(err) == 2 and err[0].startswith(LINE.format(broken_path(folder_root))), err
    assert_plain(err)
    rc, err = run_python(code, folder_root, cache)  # the cache is read: nothing decoded, nothing named
    assert rc == 0 and len(err) == 1 and err[0].startswith("stats of"), err


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_unreadable_cache_is_one_line_and_recomputed(folder_root, tmp_path, capsys, damage):
    ds = ImageFolder(folder_root)
    cache = tmp_path / "stats.npz"
    quiet = SkipLog(write=lambda line: None)
    good = load_or_compute_stats(ds, cache, size=12, skips=quiet)
    data = cache.read_bytes()
    cache.write_bytes(b"not statistics at all\n" * 4 if damage == "garbage" else data[:len(data) // 2])
    capsys.readouterr()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = load_or_compute_stats(ds, cache, size=12, skips=quiet)
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1, err
    assert err[0].startswith(f"warning: ignoring unreadable statistics cache {cache}: ")
    assert err[0].endswith("; recomputing")
    assert_plain(err)
    assert np.array_equal(again.mean_image, good.mean_image)
    assert cache.read_bytes()[:4] == b"PK\x03\x04"  # written again


def test_cache_that_cannot_be_written_costs_one_line(folder_root, tmp_path, monkeypatch, capsys):
    import minialex.data.stats as stats_mod

    def full_disk(path, write, text=False):
        raise WriteFailed(path, "No space left on device")

    monkeypatch.setattr(stats_mod, "atomic_write", full_disk)
    ds = ImageFolder(folder_root)
    cache = tmp_path / "stats.npz"
    st = load_or_compute_stats(ds, cache, size=12, skips=SkipLog(write=lambda line: None))
    assert st.count == len(ds) - 1 and not cache.exists()
    err = capsys.readouterr().err.splitlines()
    assert err == [f"warning: cannot write {cache}: No space left on device; "
                   "the statistics will be computed again next time"]
