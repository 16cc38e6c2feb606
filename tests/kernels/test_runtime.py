"""minialex/kernels/cpu/runtime.py: the malloc setting is opt-in only and switchable off by the
environment (run in subprocesses: it changes the allocator of the whole process), no library
code calls it, the thread and BLAS controls behave, buffers are kept per owner, and runtime.gemm
computes c = op(a) op(b) + beta c on windows of wider matrices."""

import os
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest

from minialex.kernels.cpu import runtime

CODE = "from minialex.kernels.cpu import runtime; print(runtime.retain_freed_memory())"
PACKAGE = pathlib.Path(__file__).resolve().parents[2] / "minialex"
TOL = {np.float64: dict(rtol=1e-10, atol=1e-12), np.float32: dict(rtol=2e-4, atol=2e-5)}
DTYPES = [np.float64, np.float32]


def run(env_extra):
    env = dict(os.environ, **env_extra)
    return subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, env=env,
                          check=True).stdout.strip()


def test_applies_on_glibc_and_env_turns_it_off():
    on_glibc = sys.platform.startswith("linux")
    assert run({}) == str(on_glibc)
    assert run({"MINIALEX_KEEP_MALLOC": "1"}) == "False"


def test_only_the_command_line_calls_it():
    """Every file of the package is read: only runtime.py (its definition) and the training
    command line may mention a call to retain_freed_memory()."""
    callers = {str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
               if re.search(r"retain_freed_memory\(", p.read_text())}
    assert callers <= {"kernels/cpu/runtime.py", "train/cli.py"}, callers
    assert "kernels/cpu/runtime.py" in callers  # the scan saw the definition: it reads the files
    layer_files = {str(p.relative_to(PACKAGE)) for p in (PACKAGE / "nn").glob("*.py")}
    assert "nn/conv.py" in layer_files and not callers & layer_files


def test_importing_minialex_leaves_malloc_alone():
    code = ("import ctypes, minialex, minialex.models, minialex.kernels.cpu.runtime as r\n"
            "calls = []\n"
            "r.retain_freed_memory = lambda: calls.append(1)\n"
            "import minialex.train\n"
            "print(len(calls))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "0"


def test_threads_follow_the_environment(monkeypatch):
    for var in ("MINIALEX_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        monkeypatch.delenv(var, raising=False)
    assert runtime.threads() == (os.cpu_count() or 1)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert runtime.threads() == 3
    monkeypatch.setenv("MINIALEX_NUM_THREADS", "5")  # minialex's own variable wins
    assert runtime.threads() == 5


def test_parallel_covers_every_item_once(monkeypatch):
    monkeypatch.setenv("MINIALEX_NUM_THREADS", "3")
    seen = []
    runtime.parallel(lambda a, b, t: seen.extend(range(a, b)), 10)
    assert sorted(seen) == list(range(10))


def test_single_threaded_blas_restores_the_count():
    lib = runtime.blas()
    if lib is None:  # NumPy built against another BLAS: the context is a no-op
        with runtime.single_threaded_blas():
            pass
        return
    before = lib.get_threads()
    with runtime.single_threaded_blas():
        assert lib.get_threads() == 1
    assert lib.get_threads() == before


def test_buffers_are_reused_per_owner_and_freed_with_it():
    class Owner:
        pass

    a, b = Owner(), Owner()
    buf = runtime.buffer(a, "k", (3, 4), np.float32)
    assert runtime.buffer(a, "k", (3, 4), np.float32) is buf
    assert runtime.buffer(b, "k", (3, 4), np.float32) is not buf
    assert runtime.buffer(a, "k", (3, 5), np.float32).shape == (3, 5)  # a new shape, a new array
    assert runtime.buffer(a, "z", (2,), np.float64, zero=True).tolist() == [0.0, 0.0]
    n = len(runtime._buffers)
    del a
    assert len(runtime._buffers) == n - 1


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("trans_a, trans_b", [(False, False), (True, False), (False, True), (True, True)])
@pytest.mark.parametrize("beta", [0.0, 1.0])
@pytest.mark.parametrize("blas", ["openblas", "numpy"])
def test_runtime_gemm_on_windows_of_wider_matrices(trans_a, trans_b, beta, blas, dtype, monkeypatch):
    """runtime.gemm: c = op(a) @ op(b) + beta c on views with row strides wider than their rows
    (what the kernels hand it), through OpenBLAS's cblas_?gemm and through NumPy's fallback."""
    if blas == "numpy":
        monkeypatch.setattr(runtime, "blas", lambda: None)
    rng = np.random.default_rng(11)
    m, k, n = 5, 4, 6
    big_a = rng.standard_normal((9, 9)).astype(dtype)
    big_b = rng.standard_normal((9, 9)).astype(dtype)
    a = big_a[1:1 + k, 2:2 + m] if trans_a else big_a[1:1 + m, 2:2 + k]
    b = big_b[3:3 + n, 1:1 + k] if trans_b else big_b[3:3 + k, 1:1 + n]
    big_c = rng.standard_normal((8, 10)).astype(dtype)
    c0 = big_c.copy()
    c = big_c[1:1 + m, 3:3 + n]
    runtime.gemm(a, b, c, beta=beta, trans_a=trans_a, trans_b=trans_b)
    want = (a.T if trans_a else a) @ (b.T if trans_b else b) + beta * c0[1:1 + m, 3:3 + n]
    np.testing.assert_allclose(c, want, **TOL[dtype])
    outside = np.ones(big_c.shape, bool)
    outside[1:1 + m, 3:3 + n] = False
    np.testing.assert_array_equal(big_c[outside], c0[outside])  # nothing outside the window moved
