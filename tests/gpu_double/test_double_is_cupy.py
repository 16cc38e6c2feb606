"""Each place where the CuPy double used to differ from the real CuPy, one test each: the double
now refuses (or behaves) as CuPy does. Where the real ``cupy`` is importable (it is in CI; it
imports without a GPU), the same fact is also read off CuPy itself.

The differences (issue 24): Event and Stream took any arguments, Event had ``query``; ndarray and
Device were hashable; ``&`` was logical; ``//``, ``%``, ``^``, ``>>`` were missing; ``get`` had
another positional order; ElementwiseKernel had no dtype or output-shape checks and refused
``size=``, ``stream=`` and ``block_size=``; the NCCL stand-in's unique id was a tuple; the current
device and stream were process-wide; and no Ledger counted the streams created.
"""

import importlib
import importlib.util
import inspect
import threading

import numpy as np
import pytest

from . import cupy_double
from .cupy_double import kernels, nccl

cd = cupy_double
REAL = importlib.import_module("cupy") if importlib.util.find_spec("cupy") else None


def test_event_takes_cupys_three_arguments_only():
    with cd.install(1):
        cd.cuda.Event(block=True, disable_timing=True, interprocess=True)
        cd.cuda.Event(False, True)
        with pytest.raises(TypeError):
            cd.cuda.Event(flags=1)  # the old Event(*args, **kwargs) took this
        with pytest.raises(TypeError):
            cd.cuda.Event(False, False, False, None)
        with pytest.raises(ValueError, match="Timing must be disabled"):
            cd.cuda.Event(interprocess=True)
    if REAL is not None:
        assert inspect.signature(REAL.cuda.Event) == inspect.signature(cd.cuda.Event)


def test_stream_takes_cupys_four_arguments_only():
    with cd.install(2):
        s = cd.cuda.Stream(null=False, non_blocking=True, ptds=False, priority=0)
        assert s.is_non_blocking and s.device_id == 0 and isinstance(s.ptr, int) and s.ptr
        assert cd.cuda.Stream(null=True).ptr == 0
        with pytest.raises(TypeError):
            cd.cuda.Stream(device=1)  # the old Stream(**kwargs) took this
        with pytest.raises(TypeError):
            cd.cuda.Stream(False, False, False, None, 0)
    if REAL is not None:
        assert inspect.signature(REAL.cuda.Stream) == inspect.signature(cd.cuda.Stream)


def test_event_has_done_and_no_query():
    with cd.install(1):
        e = cd.cuda.Event()
        e.record()
        assert e.done is True
        assert not hasattr(e, "query")
    if REAL is not None:
        assert isinstance(inspect.getattr_static(REAL.cuda.Event, "done"), property)
        assert not hasattr(REAL.cuda.Event, "query")


def test_arrays_and_devices_are_not_hashable():
    with cd.install(2):
        x = cd.zeros(3)
        with pytest.raises(TypeError, match="unhashable"):
            hash(x)
        with pytest.raises(TypeError, match="unhashable"):
            {cd.cuda.Device(0): 1}
        assert cd.cuda.Device(1) == cd.cuda.Device(1) and cd.cuda.Device(0) != cd.cuda.Device(1)
        assert x.device == cd.cuda.Device(0)
    if REAL is not None:
        assert REAL.ndarray.__hash__ is None
        with pytest.raises(TypeError, match="unhashable"):
            hash(REAL.cuda.Device(0))  # constructing a Device touches no GPU


def test_bitwise_operators_are_bitwise_on_integers_and_logical_on_bools():
    with cd.install(1) as ledger:
        a = cd.asarray(np.array([0b1100, 0b1010, 7], dtype=np.uint32))
        b = cd.asarray(np.array([0b1010, 0b0110, 1], dtype=np.uint32))
        ledger.reset()
        assert (a & b).get().tolist() == [0b1000, 0b0010, 1]  # the old double's & was logical_and: [1, 1, 1]
        assert (a | b).get().tolist() == [0b1110, 0b1110, 7]
        assert (a ^ b).get().tolist() == [0b0110, 0b1100, 6]
        assert (~a).get().tolist() == [(~np.uint32(v)) for v in (0b1100, 0b1010, 7)]
        t, f = cd.asarray(np.array([True, True, False])), cd.asarray(np.array([True, False, False]))
        both = t & f
        assert both.get().tolist() == [True, False, False] and both.dtype == np.bool_
        assert (t | f).get().tolist() == [True, True, False] and (~f).get().tolist() == [False, True, True]
        x = cd.ones(3, dtype=np.float32)
        for op in (lambda: x & x, lambda: x | 1, lambda: x ^ x, lambda: ~x):
            with pytest.raises(TypeError):  # CuPy: "Wrong type ... of arguments for cupy_bitwise_and"
                op()
        assert ledger.launches["bitwise_and"] == 2 and ledger.launches["invert"] == 2


def test_floor_division_remainder_and_shifts_exist():
    with cd.install(1) as ledger:
        n = np.arange(-7, 8, dtype=np.int64)
        a = cd.asarray(n)
        ledger.reset()
        np.testing.assert_array_equal((a // 3).get(), n // 3)
        np.testing.assert_array_equal((a % 3).get(), n % 3)
        np.testing.assert_array_equal((20 // a[8:]).get(), 20 // n[8:])
        np.testing.assert_array_equal((a >> 1).get(), n >> 1)
        np.testing.assert_array_equal((a << 2).get(), n << 2)
        np.testing.assert_array_equal((a ^ 5).get(), n ^ 5)
        h = cd.asarray(np.array([1, 2, 3], dtype=np.uint32))
        h ^= h >> np.uint32(1)  # minialex/nn/masks.py's hash on CuPy
        assert h.get().tolist() == [1, 3, 2] and h.dtype == np.uint32
        assert ledger.launches["floor_divide"] == 2 and ledger.launches["right_shift"] == 2


def test_get_takes_stream_order_out_blocking_in_cupys_order():
    with cd.install(1) as ledger:
        x = cd.arange(6, dtype=np.float32).reshape(2, 3)
        out = np.empty((2, 3), np.float32)
        ledger.reset()
        assert x.get(None, "C", out) is out and out.tolist() == [[0, 1, 2], [3, 4, 5]]
        with pytest.raises(ValueError, match="order"):
            x.get(None, out)  # the old get(stream, out, blocking): out lands on order
        with pytest.raises(TypeError):
            x.get(out=np.empty((2, 3), np.float64))
        with pytest.raises(ValueError, match="Shape"):
            x.get(out=np.empty(6, np.float32))
        assert x.get(order="F").flags.f_contiguous
        s = cd.cuda.Stream()
        x.get(s, "C", out, False)  # blocking=False: queued on s, the host does not wait
        assert len(ledger.syncs) == 2  # the two blocking gets above
        assert cd.asnumpy(x, None, "C", out) is out
    if REAL is not None:
        params = list(inspect.signature(REAL.asnumpy).parameters)
        assert params == list(inspect.signature(cd.asnumpy).parameters) == ["a", "stream", "order", "out", "blocking"]
        doc = REAL.ndarray.get.__doc__.splitlines()[0]
        assert doc.endswith(".get(self, stream=None, order='C', out=None, blocking=True)"), doc


SCALE = ("T x, T alpha", "T y", "y = alpha * x", "minialex_test_scale")
GATHER = ("raw T x, int64 n", "T y", "y = x[i % n]", "minialex_test_gather")
FILL = ("int64 n", "raw T y", "y[i] = (T)n", "minialex_test_fill")
FILL32 = ("int64 n", "raw float32 y", "y[i] = n", "minialex_test_fill32")




def _fill_twin(p):  # the loop runs over y's first _size elements
    p["y"].reshape(-1)[:p["_size"]] = p["n"]


# what the double computes these with where tests/cuda_on_host/host_kernel.py cannot be imported
kernels.EXTRA_TWINS.update({
    SCALE[3]: lambda p: p["y"].__setitem__(..., p["alpha"] * p["x"]),
    GATHER[3]: lambda p: p["y"].__setitem__(..., p["x"].reshape(-1)[np.arange(p["y"].size) % p["n"]]),
    FILL[3]: _fill_twin,
    FILL32[3]: _fill_twin,
})


def test_elementwise_kernel_follows_cupys_type_rules():
    with cd.install(1):
        k = cd.ElementwiseKernel(*SCALE)
        x32, x64 = cd.ones(4, dtype=np.float32), cd.ones(4, dtype=np.float64)
        y = k(x32, 2.5, cd.empty(4, dtype=np.float32))  # a scalar takes T from the arrays
        assert y.dtype == np.float32 and y.get().tolist() == [2.5] * 4
        with pytest.raises(TypeError, match="Type is mismatched"):
            k(x32, 2.0, cd.empty(4, dtype=np.float64))  # T is float64 by the output, float32 by x
        with pytest.raises(TypeError, match="Type is mismatched"):
            cd.ElementwiseKernel(*GATHER)(x64, cd.ones(1, dtype=np.int32), cd.empty(4))  # int64 n, an int32 array
        with pytest.raises(OverflowError):  # a scalar out of its parameter's range (CuPy stores it as NumPy assigns)
            cd.ElementwiseKernel("uint32 k, T s", "T y", "y = s + k", "minialex_test_key")(-1, 1.0, x32)
        assert k._decide_params_type((np.dtype(np.float64), None), (np.dtype(np.float64),))[0] == (np.float64,) * 2
    if REAL is not None:
        real = REAL.ElementwiseKernel(*SCALE)
        for ins, outs in [((np.dtype("f4"), None), (np.dtype("f4"),)), ((None, None), (np.dtype("f8"),))]:
            assert real._decide_params_type(ins, outs)[:2] == k._decide_params_type(ins, outs)
        with pytest.raises(TypeError, match="Type is mismatched"):
            real._decide_params_type((np.dtype("f4"), None), (np.dtype("f8"),))


def test_elementwise_kernel_checks_output_shapes_and_loop_size():
    with cd.install(1) as ledger:
        k = cd.ElementwiseKernel(*SCALE)
        x = cd.ones((2, 3), dtype=np.float32)
        with pytest.raises(ValueError, match="Out shape is mismatched"):
            k(x, 1.0, cd.empty((1, 3), dtype=np.float32))  # broadcasts with x, but is not the loop's shape
        with pytest.raises(ValueError, match="could not be broadcast"):
            k(x, 1.0, cd.empty((3, 2), dtype=np.float32))
        y = k(x, 3.0)  # outputs may be left out: CuPy allocates them in the loop's shape
        assert y.shape == (2, 3) and y.get().tolist() == [[3.0] * 3] * 2
        assert k(cd.ones((1, 3), dtype=np.float32), 1.0, cd.empty((2, 3), dtype=np.float32)).shape == (2, 3)
        fill = cd.ElementwiseKernel(*FILL)
        with pytest.raises(ValueError, match="Loop size is undecided"):
            fill(7, cd.empty(5, dtype=np.float32))  # every array raw: size= is needed
        with pytest.raises(ValueError, match="'size' can be used only"):
            k(x, 1.0, cd.empty((2, 3), dtype=np.float32), size=6)
        fill32 = cd.ElementwiseKernel(*FILL32)
        assert fill32(7, size=2).get().tolist() == [7, 7]  # a raw output left out: size= decides it
        with pytest.raises(KeyError):  # nothing decides T (CuPy's own KeyError)
            fill(7, size=2)
        with pytest.raises(ValueError, match="Output array size is Undecided"):
            cd.ElementwiseKernel("T x", "raw T y", "y[i] = x", "minialex_test_raw_out")(x)
        with pytest.raises(TypeError, match="Wrong number of arguments"):
            k(x)
        empty = cd.ones((0, 3), dtype=np.float32)
        ledger.reset()
        assert k(empty, 1.0).shape == (0, 3)  # nothing to do: no launch
        assert ledger.total_launches == 0


def test_elementwise_kernel_takes_size_block_size_and_stream():
    with cd.install(2) as ledger:
        fill = cd.ElementwiseKernel(*FILL)
        y = cd.zeros(5, dtype=np.float32)
        fill(7, y, size=3, block_size=64)
        assert y.get().tolist() == [7, 7, 7, 0, 0]
        with pytest.raises(ValueError, match="block_size"):
            fill(7, y, size=3, block_size=0)
        with pytest.raises(TypeError, match="Wrong arguments"):
            fill(7, y, size=3, grid=1)
        s, current = cd.cuda.Stream(), cd.cuda.get_current_stream()
        before = (s.ops, current.ops)
        ledger.reset()
        fill(1, y, size=5, stream=s)  # launched on s, not on the current stream
        assert (s.ops, current.ops) == (before[0] + 1, before[1])
        assert ledger.launches["kernel minialex_test_fill"] == 1
        with cd.cuda.Device(1):
            with pytest.raises(cd.CUDARuntimeError):  # a stream of device 0 while device 1 is current
                fill(1, cd.zeros(5, dtype=np.float32), size=5, stream=s)


@pytest.mark.skipif(kernels.HostKernel is None,
                    reason="tests/cuda_on_host/host_kernel.py cannot be imported: the twins compute")
def test_elementwise_kernel_runs_the_cuda_source():
    """The double's ElementwiseKernel computes with the kernel's own CUDA body (HostKernel): a body
    that reads out of bounds is caught, which no twin could show."""
    from ..cuda_on_host.host_kernel import OutOfBoundsError

    assert "HostKernel" in kernels.COMPUTED_BY
    with cd.install(1):
        x = cd.arange(4, dtype=np.float32)
        assert cd.ElementwiseKernel(*GATHER)(x, 3, cd.empty(5, dtype=np.float32)).get().tolist() == [0, 1, 2, 0, 1]
        off_by_one = cd.ElementwiseKernel("raw T x", "T y", "y = x[i + 1]", "minialex_test_off_by_one")
        with pytest.raises(OutOfBoundsError):
            off_by_one(x, cd.empty(4, dtype=np.float32))


def test_nccl_unique_id_is_bytes_as_nccl_makes_it():
    uid = nccl.get_unique_id()
    assert isinstance(uid, bytes) and len(uid) == nccl.NCCL_UNIQUE_ID_BYTES == 128
    with cd.install(1, nccl=True):
        with pytest.raises(TypeError, match="commId"):
            nccl.NcclCommunicator(2, (42,), 0)  # the old stand-in's id
        with pytest.raises(nccl.NcclError):
            nccl.NcclCommunicator(2, bytes(128), 0)  # bytes that no get_unique_id made
        comm = nccl.NcclCommunicator(2, uid, 0)
        assert (comm.size(), comm.rank_id(), comm.device_id()) == (2, 0, 0)
    if REAL is not None:
        real = importlib.import_module("cupy.cuda.nccl")
        if real.available:  # with nvidia-nccl-cu12: the real id, made without a GPU
            real_id = real.get_unique_id()
            assert type(real_id) is bytes and len(real_id) == len(uid)


def test_current_device_and_stream_are_per_thread():
    with cd.install(2):
        seen = {}

        def other_thread():
            seen["device"] = cd.current_device()
            seen["stream"] = cd.cuda.get_current_stream(1)
            with cd.cuda.Device(1):
                seen["inside"] = cd.current_device()

        with cd.cuda.Device(1):
            side = cd.cuda.Stream()
            with side:
                t = threading.Thread(target=other_thread)
                t.start()
                t.join()
                assert cd.current_device() == 1 and cd.cuda.get_current_stream() is side
        assert seen["device"] == 0  # a new thread starts on device 0, whatever another thread made current
        assert seen["stream"] is not side and seen["stream"].ptr == 0  # and on the default stream
        assert seen["inside"] == 1 and cd.current_device() == 0
        with cd.cuda.Device(1):
            stream = cd.cuda.Stream()
        with pytest.raises(RuntimeError, match="does not match"):  # CuPy: a stream is entered on its device
            with stream:
                pass
        with cd.cuda.Device(0):
            event = cd.cuda.Event()
        with pytest.raises(cd.CUDARuntimeError):  # CUDA: an event is recorded on its own device's stream
            event.record(stream)


def test_the_ledger_counts_every_stream_created():
    with cd.install(2) as ledger:
        cd.cuda.get_current_stream()
        cd.cuda.Stream(null=True)
        assert ledger.streams_created == 0  # the default streams are not created
        cd.cuda.Stream()
        with cd.cuda.Device(1):
            cd.cuda.Stream(non_blocking=True)
        assert ledger.streams_created == 2 and "streams created 2" in ledger.summary()
        ledger.reset()
        assert ledger.streams_created == 0


def test_host_arrays_are_not_kernel_operands():
    """CuPy copies nothing from the host implicitly: a NumPy array in an operation is a TypeError."""
    with cd.install(1):
        x = cd.ones(3)
        for op in (lambda: x + np.ones(3), lambda: cd.maximum(x, np.zeros(3)), lambda: cd.where(x > 0, x, np.ones(3))):
            with pytest.raises(TypeError, match="Unsupported type"):
                op()
        assert (x + np.float64(1)).get().tolist() == [2.0] * 3  # NumPy scalars are scalars
