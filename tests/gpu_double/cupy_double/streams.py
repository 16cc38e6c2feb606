"""Devices, streams, events and pinned host memory of the double (``cupy.cuda``), and the state
that ``install`` creates: the pretend GPUs, the Ledger, and each host thread's current device and
current streams.

As in CUDA and CuPy:

* the current device is per host thread (a new thread starts on device 0), and so is the current
  stream of each device (CuPy's thread-local stream stack; every thread starts on the default
  stream, the legacy null stream, whose ``ptr`` is 0);
* ``Stream(null=False, non_blocking=False, ptds=False, priority=None)`` and
  ``Event(block=False, disable_timing=False, interprocess=False)`` take exactly CuPy's arguments;
  an Event has ``done``, ``record`` and ``synchronize`` (no ``query``);
* a Stream is created on the current device; entering it (``with stream:``) or launching a
  kernel on it from another device raises, as CuPy and CUDA do; so does recording an Event on a
  stream of another device than the one the Event was created on (cudaEventRecord);
* a Device is not hashable (CuPy's is not); ``Device(5)`` constructs, and fails where it is used.

Accounting: every stream counts the work queued on it (``ops``); an Event remembers the stream
and count it was recorded at; a stream's ``waited`` maps a device to the highest count it has
waited for there (ledger.ordered_after_last_write reads it).
"""

import itertools
import threading
import weakref

import numpy as np

from . import ledger


class CUDARuntimeError(RuntimeError):
    """What CuPy raises for a failed CUDA runtime call (cupy_backends.cuda.api.runtime)."""


# ---------------------------------------------------------------------------------------
# the installed state
# ---------------------------------------------------------------------------------------


class _ThreadLocal(threading.local):
    """One host thread's view: its current device, and per device its current stream and the
    stack of streams entered with ``with``."""

    def __init__(self, state):
        self.device_stack = []  # devices to go back to on Device.__exit__
        self.device = 0
        self.current = dict(state.null)  # device -> current stream
        self.stream_stack = []  # (device, previous stream) for Stream.__exit__


class _State:
    def __init__(self, n_devices):
        self.n_devices = n_devices
        self.ledger = ledger.Ledger()
        self.ptrs = itertools.count(0x7F5A00000000, 0x200)  # handles of streams and events
        self.by_ptr = weakref.WeakValueDictionary()  # stream ptr -> Stream
        self.by_data_ptr = weakref.WeakValueDictionary()  # data ptr -> the array whose .data was taken last
        self.null = {d: Stream._null(d) for d in range(n_devices)}  # each device's default stream
        self.local = _ThreadLocal(self)


_STATE = None  # the one _State while installed


def install_state(n_devices):
    global _STATE
    if _STATE is not None:
        raise RuntimeError("the CuPy double is already installed (install() does not nest)")
    _STATE = _State(n_devices)
    return _STATE


def uninstall_state():
    global _STATE
    _STATE = None


def state():
    if _STATE is None:
        raise RuntimeError("the CuPy double is not installed: use tests.gpu_double.cupy_double.install()")
    return _STATE


def current_device():
    """This thread's current device."""
    return state().local.device


def current_stream(device=None):
    """This thread's current stream on ``device`` (default: its current device)."""
    s = state()
    return s.local.current[s.local.device if device is None else device]


def resolve(stream):
    """The stream that work given ``stream`` runs on: ``None`` is the current stream, and the null
    stream (ptr 0) is the current device's own."""
    if stream is None:
        return current_stream()
    if not isinstance(stream, Stream):
        raise TypeError(f"a cupy.cuda.Stream was expected, got {type(stream).__name__}")
    if stream.ptr == 0:
        return state().null[current_device()]
    return stream


def stream_from_ptr(ptr):
    """The Stream whose handle is ``ptr`` (0: the current device's null stream), as a library
    that is handed ``stream.ptr`` (NCCL) finds it."""
    if int(ptr) == 0:
        return state().null[current_device()]
    try:
        return state().by_ptr[int(ptr)]
    except KeyError:
        raise CUDARuntimeError(f"cudaErrorInvalidResourceHandle: no stream has the handle {ptr:#x}") from None


def _check_device_ordinal(device_id):
    if not 0 <= device_id < state().n_devices:
        raise CUDARuntimeError("cudaErrorInvalidDevice: invalid device ordinal")


# ---------------------------------------------------------------------------------------
# streams and events
# ---------------------------------------------------------------------------------------


class Stream:
    """cupy.cuda.Stream: created on the current device; ``ptr`` is its handle (0 for the null
    stream, whose ``device_id`` is -1 as in CuPy)."""

    _cupy_name = "cupy.cuda.Stream"

    def __init__(self, null=False, non_blocking=False, ptds=False, priority=None):
        if priority is not None:
            int(priority)
        if null or ptds:  # the legacy or per-thread default stream: nothing is created
            self._ptr, self._device_id = 0, -1
            self._dev = current_device()
        else:
            s = state()
            self._ptr, self._device_id = next(s.ptrs), current_device()
            self._dev = self._device_id
            s.by_ptr[self._ptr] = self
            s.ledger.streams_created += 1
        self._non_blocking = bool(non_blocking) and not (null or ptds)
        self.ops, self.waited, self.waited_events = 0, {}, []

    @classmethod
    def _null(cls, device):
        """Device ``device``'s null stream (made by the state, not counted as created)."""
        st = cls.__new__(cls)
        st._ptr, st._device_id, st._dev, st._non_blocking = 0, -1, device, False
        st.ops, st.waited, st.waited_events = 0, {}, []
        return st

    @property
    def ptr(self):
        """The stream's handle (an integer, as cudaStream_t in CuPy)."""
        return self._ptr

    @property
    def device_id(self):
        return self._device_id

    def __eq__(self, other):
        return isinstance(other, Stream) and other.ptr == self.ptr

    def __hash__(self):
        return self.ptr

    def __repr__(self):
        return f"<Stream {self.ptr} (device {self.device_id})>"

    def _check_current_device(self, what):
        device = current_device()
        if self.device_id not in (-1, device):
            raise RuntimeError(f"{what}: the device that the stream is created on ({self.device_id}) does not "
                               f"match with the current device ({device})")
        return device

    def __enter__(self):
        device = self._check_current_device("Stream.__enter__")
        local = state().local
        local.stream_stack.append((device, local.current[device]))
        local.current[device] = resolve(self)
        return self

    def __exit__(self, *exc):
        local = state().local
        device, previous = local.stream_stack.pop()
        local.current[device] = previous

    def use(self):
        device = self._check_current_device("Stream.use")
        state().local.current[device] = resolve(self)
        return self

    @property
    def done(self):  # cudaStreamQuery: answers without waiting
        return True

    @property
    def is_non_blocking(self):
        return self._non_blocking

    def wait_event(self, event):
        """cudaStreamWaitEvent: later work on this stream runs after the event (any device's)."""
        target = resolve(self)
        if not isinstance(event, Event):
            raise TypeError(f"a cupy.cuda.Event was expected, got {type(event).__name__}")
        if event._dev is not None:
            target.waited[event._dev] = max(target.waited.get(event._dev, -1), event.ops)
        target.waited_events.append(event)

    def synchronize(self):
        ledger.sync(f"Stream.synchronize on device {resolve(self)._dev}")

    def record(self, event=None):
        event = Event() if event is None else event
        event.record(self)
        return event


class Event:
    """cupy.cuda.Event: created on the current device, recorded on a stream of that device."""

    _cupy_name = "cupy.cuda.Event"

    def __init__(self, block=False, disable_timing=False, interprocess=False):
        if interprocess and not disable_timing:
            raise ValueError("Timing must be disabled for interprocess events")
        self._ptr = next(state().ptrs)
        self._created_on = current_device()
        self._dev, self.ops, self.stream = None, -1, None  # where and when it was last recorded

    def record(self, stream=None):
        target = resolve(stream)
        if target._dev != self._created_on:  # cudaEventRecord: event and stream on one device
            raise CUDARuntimeError(
                f"cudaErrorInvalidResourceHandle: an event created on device {self._created_on} cannot be "
                f"recorded on a stream of device {target._dev}")
        self._dev, self.ops, self.stream = target._dev, target.ops, target

    @property
    def ptr(self):
        return self._ptr

    @property
    def done(self):  # cudaEventQuery: answers without waiting
        return True

    def synchronize(self):
        ledger.sync("Event.synchronize")


# ---------------------------------------------------------------------------------------
# devices
# ---------------------------------------------------------------------------------------


class Device:
    """cupy.cuda.Device: ``with Device(i):`` makes device i this thread's current device."""

    _cupy_name = "cupy.cuda.Device"

    def __init__(self, device=None):
        self._id = current_device() if device is None else int(device)

    @property
    def id(self):
        return self._id

    def __enter__(self):
        _check_device_ordinal(self._id)
        local = state().local
        local.device_stack.append(local.device)
        local.device = self._id
        return self

    def __exit__(self, *exc):
        local = state().local
        local.device = local.device_stack.pop()

    def use(self):
        _check_device_ordinal(self._id)
        state().local.device = self._id

    def synchronize(self):
        _check_device_ordinal(self._id)
        ledger.sync(f"Device({self._id}).synchronize")

    @property
    def pci_bus_id(self):
        _check_device_ordinal(self._id)
        return f"0000:{self._id + 1:02X}:00.0"

    @property
    def compute_capability(self):
        _check_device_ordinal(self._id)
        return "80"

    def __eq__(self, other):
        if not isinstance(other, Device):
            return NotImplemented
        return other._id == self._id

    def __ne__(self, other):
        if not isinstance(other, Device):
            return NotImplemented
        return other._id != self._id

    __hash__ = None  # CuPy's Device is not hashable

    def __repr__(self):
        return f"<CUDA Device {self._id}>"


def get_current_stream(device_id=-1):
    """This thread's current stream on ``device_id`` (-1: the current device)."""
    device_id = int(device_id)
    if device_id != -1:
        _check_device_ordinal(device_id)
    return current_stream(None if device_id == -1 else device_id)


def get_device_id():
    return current_device()


class _Runtime:
    """cupy.cuda.runtime: the calls minialex makes."""

    _cupy_name = "cupy.cuda.runtime"

    @staticmethod
    def getDeviceCount():  # noqa: N802 - CUDA's name
        return state().n_devices

    @staticmethod
    def runtimeGetVersion():  # noqa: N802 - CUDA's name
        return 12080

    @staticmethod
    def getDevice():  # noqa: N802 - CUDA's name
        return current_device()


runtime = _Runtime()


# ---------------------------------------------------------------------------------------
# pinned host memory
# ---------------------------------------------------------------------------------------


class PinnedMemoryPointer(bytearray):
    """Page-locked host memory (here: a bytearray that says it is pinned), with the buffer
    protocol as CuPy's PinnedMemoryPointer has."""

    _cupy_name = "cupy.cuda.PinnedMemoryPointer"

    def __init__(self, nbytes):
        super().__init__(max(int(nbytes), 1))


def alloc_pinned_memory(size):
    size = int(size)
    if size < 0:
        raise OverflowError("can't convert negative value to size_t")
    return PinnedMemoryPointer(size)


def is_pinned(a):
    """True when the host array ``a`` views pinned memory."""
    base = a
    while isinstance(base, np.ndarray) and base.base is not None:
        base = base.base
    return isinstance(base, PinnedMemoryPointer) or isinstance(getattr(base, "obj", None), PinnedMemoryPointer)
