"""The backend switch: names, CuPy being optional, copies, RNG."""

import subprocess
import sys

import numpy as np
import pytest

from minialex import backend


def test_numpy_by_name():
    assert backend.get_backend("numpy") is np
    assert backend.get_array_module(np.zeros(2)) is np


def test_unknown_backend_is_named():
    with pytest.raises(ValueError, match="unknown backend 'tpu'"):
        backend.get_backend("tpu")


def test_import_does_not_import_cupy():
    code = "import sys, minialex; print('cupy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_importing_kernels_does_not_import_cupy():
    """Every module of the package, the CUDA kernels and their twins included, imports without
    CuPy (a kernel imports it on its first launch)."""
    code = ("import sys, minialex, minialex.nn, minialex.nn.functional, minialex.nn.naive, minialex.models, "
            "minialex.optim, minialex.kernels.cuda.conv, minialex.kernels.cuda.pool, minialex.kernels.cuda.lrn, "
            "minialex.kernels.cuda.im2col, minialex.kernels.cuda.sgd, minialex.kernels.cuda.dropout, "
            "minialex.kernels.cuda.relu, minialex.kernels.cuda.tanh, minialex.kernels.cuda.sigmoid, "
            "minialex.kernels.cuda.elementwise; "
            "assert 'cupy' not in sys.modules, 'cupy imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


@pytest.mark.skipif(backend.cupy_available(), reason="this machine has a working CuPy")
def test_cupy_without_gpu_says_what_to_install():
    with pytest.raises(backend.BackendError) as err:
        backend.get_backend("cupy")
    assert "minialex[cuda12]" in str(err.value) or "GPU" in str(err.value)


def test_numpy_device_context_is_a_no_op():
    with backend.device(np, 3):
        assert backend.to_backend([1, 2], np).tolist() == [1, 2]


def test_copy_true_never_aliases():
    a = np.arange(4.0)
    b = backend.to_backend(a, np, device_id=0, copy=True)
    assert b is not a and not np.shares_memory(a, b)


def test_seeded_rng_repeats(xp):
    a = backend.to_numpy(backend.default_rng(xp, 5).random(4))
    b = backend.to_numpy(backend.default_rng(xp, 5).random(4))
    np.testing.assert_array_equal(a, b)


def test_check_device():
    backend.check_device(np, 0)
    backend.check_device(np, 1)  # the second column's label
    with pytest.raises(backend.BackendError, match="non-negative"):
        backend.check_device(np, -1)
    with pytest.raises(backend.BackendError, match="device 7 does not exist"):
        backend.check_device(np, 7)


@pytest.mark.gpu
def test_missing_gpu_id_is_named():
    import cupy
    n = cupy.cuda.runtime.getDeviceCount()
    with pytest.raises(backend.BackendError, match=f"GPU {n} does not exist"):
        backend.check_device(cupy, n)


# --- the CuPy check, on stand-ins: what each missing piece says (docs/gpu.md, "Compile checks and install")
class FakeCupy:
    """A stand-in for the cupy module with just what backend's check calls; each step can fail."""

    __version__ = "0.0-fake"

    def __init__(self, count=1, count_error=None, compile_error=None, runtime=12080, result=None):
        fake = self
        self.kernels_built = 0
        self.float32 = np.float32

        class Runtime:
            @staticmethod
            def getDeviceCount():
                if count_error is not None:
                    raise count_error
                return count

            @staticmethod
            def runtimeGetVersion():
                return runtime

        class Cuda:
            runtime = Runtime

        self.cuda = Cuda

        class Array:
            def __init__(self, values):
                self.values = np.asarray(values)

            def get(self):
                return self.values

        def elementwise_kernel(in_params, out_params, body, name):
            fake.kernels_built += 1
            if compile_error is not None:
                raise compile_error
            return lambda x: Array(result if result is not None else x.values * 2 + 1)

        self.ElementwiseKernel = elementwise_kernel
        self.arange = lambda n, dtype=None: Array(np.arange(n, dtype=dtype))


@pytest.fixture
def fresh_check(monkeypatch):
    """The backend's CuPy check as if it had never run in this process; ``install(fake)`` puts a
    stand-in (or None: not installed) where ``import cupy`` finds it."""
    monkeypatch.setattr(backend, "_cupy", None)
    monkeypatch.setattr(backend, "_cupy_error", None)

    def install(module):
        monkeypatch.setitem(sys.modules, "cupy", module)
        return module

    return install


def backend_error():
    with pytest.raises(backend.BackendError) as err:
        backend.get_backend("cupy")
    text = str(err.value)
    assert "\n" not in text, f"the BackendError is not one line: {text!r}"
    return text


def test_cupy_not_installed_says_what_to_install(fresh_check):
    fresh_check(None)  # a None entry in sys.modules makes `import cupy` raise ImportError
    text = backend_error()
    assert "not installed" in text and 'pip install "minialex[cuda12]"' in text
    assert not backend.cupy_available()
    assert backend.cupy_unavailable_reason() == text


def test_no_device_is_one_line(fresh_check, monkeypatch):
    monkeypatch.setattr(backend, "nvidia_driver_present", lambda: True)
    fresh_check(FakeCupy(count_error=RuntimeError("cudaErrorNoDevice: no CUDA-capable device\nis detected")))
    text = backend_error()
    assert "cannot reach a CUDA GPU" in text and "no CUDA-capable device" in text and "driver" in text


def test_old_driver_names_the_fix(fresh_check, monkeypatch):
    monkeypatch.setattr(backend, "nvidia_driver_present", lambda: True)
    fresh_check(FakeCupy(count_error=RuntimeError(
        "cudaErrorInsufficientDriver: CUDA driver version is insufficient for CUDA runtime version")))
    text = backend_error()
    assert "update the NVIDIA driver" in text


def test_no_driver_at_all_says_so(fresh_check, monkeypatch):
    """Without any NVIDIA driver CuPy also reports an insufficient driver; the message must not send
    the user to update a driver that is not there."""
    monkeypatch.setattr(backend, "nvidia_driver_present", lambda: False)
    fresh_check(FakeCupy(count_error=RuntimeError(
        "cudaErrorInsufficientDriver: CUDA driver version is insufficient for CUDA runtime version")))
    text = backend_error()
    assert "no NVIDIA driver was found" in text and "update the NVIDIA driver" not in text
    assert "--backend numpy" in text


def test_the_driver_probe_answers_on_this_machine():
    assert isinstance(backend.nvidia_driver_present(), bool)


def test_no_gpu(fresh_check):
    fresh_check(FakeCupy(count=0))
    assert "no CUDA GPU" in backend_error()


@pytest.mark.parametrize("runtime,extra", [(12080, "cuda12"), (13000, "cuda13")])
def test_missing_toolkit_says_what_to_install(fresh_check, runtime, extra):
    """A driver and a GPU but no CUDA headers: the first kernel fails to compile; the check sees it
    and names the extra of CuPy's CUDA version, in one line, with the compiler's first line."""
    error = RuntimeError('catastrophic error: cannot open source file "cuda_fp16.h"\n\n1 catastrophic error\n'
                         "extern \"C\" __global__ void minialex_backend_check(...)")
    fake = fresh_check(FakeCupy(compile_error=error, runtime=runtime))
    text = backend_error()
    assert "cannot compile and run a CUDA kernel" in text and "cuda_fp16.h" in text
    assert f'pip install "minialex[{extra}]"' in text and "NVRTC" in text
    # the failure is kept: asking again raises the same error without compiling again
    assert backend_error() == text and fake.kernels_built == 1


def test_missing_nvrtc_says_what_to_install(fresh_check):
    fresh_check(FakeCupy(compile_error=OSError("CuPy failed to load libnvrtc.so.12: cannot open shared object")))
    text = backend_error()
    assert "libnvrtc.so.12" in text and 'minialex[cuda12]' in text


def test_wrong_kernel_result_is_refused(fresh_check):
    fresh_check(FakeCupy(result=[0.0, 0.0, 0.0, 0.0]))
    assert "returned [0.0, 0.0, 0.0, 0.0]" in backend_error()


def test_working_cupy_passes_the_check_once(fresh_check):
    fake = fresh_check(FakeCupy())
    assert backend.get_backend("cupy") is fake
    assert backend.get_backend("cuda") is fake and fake.kernels_built == 1
    assert backend.cupy_available() and backend.cupy_unavailable_reason() is None
