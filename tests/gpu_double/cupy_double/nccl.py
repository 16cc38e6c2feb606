"""The double's NCCL (``cupy.cuda.nccl``), present only when ``install(..., nccl=True)``: the names
minialex's NcclAllreduce uses, with the types real NCCL takes.

The world it stands for is ``ndev`` identical processes holding the same data as this one, so
``allReduce`` with ``NCCL_SUM`` multiplies the buffer by ``ndev``. As cupy.cuda.nccl:
``get_unique_id()`` returns ``bytes`` of NCCL_UNIQUE_ID_BYTES (128), and
``NcclCommunicator(ndev, commId, rank)`` takes exactly such bytes (a tuple is a TypeError) made by
``get_unique_id``; the communicator belongs to the device current when it is made, and
``allReduce(sendbuf, recvbuf, count, datatype, op, stream)`` takes integer pointers (``.data.ptr``,
``stream.ptr``) of that device. Each allreduce is one launch on its stream, checked to run after
the last write of its buffer (else counted as unordered), and listed in ``Ledger.allreduces``
(device, stream, ordered, the stream's count after it, in place, count, the buffer's size).
"""

import collections
import os

import numpy as np

from . import ledger, streams
from .ndarray import array_from_ptr

available = True
NCCL_UNIQUE_ID_BYTES = 128
NCCL_SUM, NCCL_PROD, NCCL_MAX, NCCL_MIN = 0, 1, 2, 3
NCCL_INT8, NCCL_UINT8, NCCL_INT32, NCCL_UINT32, NCCL_INT64, NCCL_UINT64 = 0, 1, 2, 3, 4, 5
NCCL_FLOAT16, NCCL_FLOAT32, NCCL_FLOAT64 = 6, 7, 8
_DTYPES = {NCCL_INT8: np.int8, NCCL_UINT8: np.uint8, NCCL_INT32: np.int32, NCCL_UINT32: np.uint32,
           NCCL_INT64: np.int64, NCCL_UINT64: np.uint64, NCCL_FLOAT16: np.float16, NCCL_FLOAT32: np.float32,
           NCCL_FLOAT64: np.float64}

Allreduce = collections.namedtuple("Allreduce", "device stream ordered ops in_place count size")

_ids = set()  # the unique ids this process made


class NcclError(RuntimeError):
    pass


def get_unique_id():
    uid = os.urandom(NCCL_UNIQUE_ID_BYTES)
    _ids.add(uid)
    return uid


def get_version():
    return 22803


def _integer(name, value):
    try:
        return int(value.__index__())
    except (AttributeError, TypeError):
        raise TypeError(f"an integer is required for {name}, got {type(value).__name__}") from None


class NcclCommunicator:
    _cupy_name = "cupy.cuda.nccl.NcclCommunicator"

    def __init__(self, ndev, commId, rank, config=None):  # noqa: N803 - CuPy's name
        ndev, rank = _integer("ndev", ndev), _integer("rank", rank)
        if not isinstance(commId, bytes):
            raise TypeError(f"Argument 'commId' has incorrect type (expected bytes, got {type(commId).__name__})")
        if len(commId) != NCCL_UNIQUE_ID_BYTES or commId not in _ids:
            raise NcclError("NCCL_ERROR_INVALID_ARGUMENT: invalid argument (not an id from get_unique_id)")
        if not 0 <= rank < ndev:
            raise NcclError(f"NCCL_ERROR_INVALID_ARGUMENT: rank {rank} of {ndev}")
        self._ndev, self._rank, self._device = ndev, rank, streams.current_device()

    def rank_id(self):
        return self._rank

    def size(self):
        return self._ndev

    def device_id(self):
        return self._device

    def allReduce(self, sendbuf, recvbuf, count, datatype, op, stream):  # noqa: N802 - NCCL's name
        sendbuf, recvbuf, count = _integer("sendbuf", sendbuf), _integer("recvbuf", recvbuf), _integer("count", count)
        datatype, op, stream = _integer("datatype", datatype), _integer("op", op), _integer("stream", stream)
        target = streams.stream_from_ptr(stream)
        send, recv = array_from_ptr(sendbuf), array_from_ptr(recvbuf)
        if op != NCCL_SUM:
            raise NotImplementedError("the NCCL stand-in sums only")
        if send._dev != self._device or recv._dev != self._device or target._dev != self._device:
            raise NcclError(f"NCCL_ERROR_INVALID_ARGUMENT: buffers and stream must be on the communicator's "
                            f"device {self._device}")
        if send.dtype != _DTYPES[datatype] or recv.dtype != send.dtype or count > send.size or count > recv.size:
            raise NcclError("NCCL_ERROR_INVALID_ARGUMENT: datatype or count does not match the buffers")
        ordered = ledger.ordered_after_last_write(target, send)
        if not ordered:
            ledger.current().unordered.append(f"allReduce on device {self._device}: its stream has not waited for "
                                              "the buffer's last write")
        recv._a.reshape(-1)[:count] = send._a.reshape(-1)[:count] * self._ndev
        ledger.launch("nccl.allReduce", stream=target)
        ledger.written(recv, stream=target)
        ledger.current().allreduces.append(
            Allreduce(self._device, target, ordered, target.ops, sendbuf == recvbuf, count, send.size))
