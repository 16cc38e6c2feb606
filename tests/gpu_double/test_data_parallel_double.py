"""The data-parallel step on the CuPy code path, on the CuPy test double
(tests/gpu_double/cupy_double/) with its stand-in for NCCL (cupy_double/nccl.py): what ``Trainer.train_step``
asks of the GPUs (no host syncs, every allreduce ordered after the backward kernels that wrote
its bucket on a stream of its own, the update ordered after the allreduces, one communicator
per device) and that it computes the one-process step. No GPU is needed; docs/distributed.md.

The stand-in world is two identical processes: every process has the same m images, so each
scales its loss gradient by m / 2m and the stand-in allreduce (the sum over two identical
processes) doubles the buckets; the update must then be the one-process update on the same batch.
"""

import numpy as np
import pytest

from minialex import backend
from minialex.models import AlexNet
from minialex.parallel import data_parallel
from minialex.parallel.world import Solo
from minialex.train.trainer import Trainer

from . import cupy_double


class TwinWorld(Solo):
    """Rank 0 of two processes that hold the same data as this one."""

    rank, size, local_size = 0, 2, 2

    def allgather(self, value):
        return [value, value]

    def sum(self, values):
        return [2.0 * float(v) for v in values]


def make_trainer(xp, devices, world):
    model = AlexNet(4, preset="tiny", devices=devices, init_std=0.2, seed=3)
    if devices:
        model.to(xp)
    else:
        model.to(xp, device_id=0)
    return Trainer(model, [], None, classes=list("abcd"), output_dir="unused", xp=xp, device_id=(devices or (0,))[0],
                   lr=0.01, progress=False, world=world)


def batch(step):
    rng = np.random.default_rng(step)
    return rng.standard_normal((4, 3, 24, 24)).astype(np.float32), rng.integers(0, 4, 4)


def reference_weights(devices, steps):
    trainer = make_trainer(np, None, None)
    for s in range(steps):
        trainer.train_step(*batch(s))
    return trainer.model.state_dict()


@pytest.mark.parametrize("devices", [None, (0, 1)], ids=["one-device", "two-columns-0,1"])
def test_nccl_step_is_ordered_and_never_syncs(devices):
    with cupy_double.install(n_devices=2, nccl=True) as ledger:
        xp = backend.get_backend("cupy")
        trainer = make_trainer(xp, devices, TwinWorld())
        dp = trainer.data_parallel
        assert isinstance(dp.engine, data_parallel.NcclAllreduce)
        assert sorted(dp.engine.comms) == sorted(set(devices or (0,)))  # one communicator per device
        for d, comm in dp.engine.comms.items():  # each made on its device, for rank 0 of the 2 processes
            assert (comm.size(), comm.rank_id(), comm.device_id()) == (2, 0, d)
        trainer.train_step(*batch(0))  # warm-up: buffers, kernels
        ledger.reset()
        trainer.train_step(*batch(1))
        calls = ledger.allreduces  # (device, stream, ordered, ops, in_place, count, size)
        print(f"\ndata-parallel step, devices {devices}: {ledger.summary()}, "
              f"{len(calls)} allreduces in {dp.num_buckets} buckets")
        assert ledger.syncs == [], ledger.syncs
        assert ledger.wrong_device == [] and ledger.unordered == []
        assert len(calls) == dp.num_buckets
        assert all(c.in_place and c.count == c.size for c in calls), calls  # each bucket whole, in place
        assert all(c.device == c.stream._dev for c in calls), calls  # on its device's stream
        assert all(ordered for _, _, ordered, *_ in calls), calls
        for d, stream in dp.engine.streams.items():  # the update waited for the last allreduce there
            with xp.cuda.Device(d):
                current = xp.cuda.get_current_stream()
            last = max(ops for dev, s, _, ops, *_ in calls if s is stream)
            assert any(getattr(e, "stream", None) is stream and e.ops >= last
                       for e in getattr(current, "waited_events", [])), f"device {d}: update not ordered"
        got = {k: backend.to_numpy(v).copy() for k, v in trainer.model.state_dict().items()}
    want = reference_weights(devices, 2)
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-5, atol=1e-7, err_msg=k)


class FakeMpi:
    THREAD_SINGLE, THREAD_SERIALIZED = 0, 2
    IN_PLACE, SUM = object(), "sum"

    @staticmethod
    def Query_thread():  # noqa: N802 - MPI's name
        return FakeMpi.THREAD_SINGLE  # the sums then run in wait(), on this thread


class FakeComm:
    def Allreduce(self, sendbuf, recvbuf, op):  # noqa: N802 - MPI's name
        assert sendbuf is FakeMpi.IN_PLACE and op == FakeMpi.SUM
        recvbuf *= 2


class StagedWorld(TwinWorld):
    MPI, comm = FakeMpi, FakeComm()


def test_without_nccl_the_sums_go_through_the_host():
    with cupy_double.install(n_devices=2) as ledger:
        xp = backend.get_backend("cupy")
        engine, note = data_parallel.make_engine(StagedWorld(), xp, [0])
        assert isinstance(engine, data_parallel.StagedMpiAllreduce) and "NCCL" in note
        trainer = make_trainer(xp, None, StagedWorld())
        assert isinstance(trainer.data_parallel.engine, data_parallel.StagedMpiAllreduce)
        trainer.train_step(*batch(0))
        assert ledger.streams_created >= 1  # the side stream of the device, made in the first step
        ledger.reset()
        trainer.train_step(*batch(1))
        print(f"\ndata-parallel step through host copies: {ledger.summary()}")
        assert ledger.host_to_device and all(pinned for _, pinned in ledger.host_to_device)  # pinned staging
        assert ledger.streams_created == 0  # streams are made once, not per bucket and step
        got = {k: backend.to_numpy(v).copy() for k, v in trainer.model.state_dict().items()}
    want = reference_weights(None, 2)
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-5, atol=1e-7, err_msg=k)
