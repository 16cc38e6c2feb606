"""Tests of the pieces of data parallelism that need no second process (docs/distributed.md):
shares of a global batch, dropout rows by global sample index, the gradient buckets and the
moment each allreduce starts, the loader's shares, and the training script's rules for
devices and for processes started differently. The runs on real processes are in
tests/parallel/test_mpi.py."""

import numpy as np
import pytest

from minialex.data import DataLoader
from minialex.data.cifar10 import ArrayDataset
from minialex.models import AlexNet
from minialex.nn import dropout_mask
from minialex.optim import SGD
from minialex.parallel.data_parallel import DataParallel, batch_share, plan_buckets
from minialex.parallel.world import Solo, launched_by_mpi
from minialex.train import distributed
from minialex.train.options import UsageError


# -- shares and dropout rows ------------------------------------------------------------------
@pytest.mark.parametrize("size", [1, 2, 3, 4])
def test_shares_cover_the_batch_in_order(size):
    for m in range(14):
        shares = [batch_share(m, r, size) for r in range(size)]
        assert shares[0][0] == 0 and shares[-1][1] == m
        assert all(a[1] == b[0] for a, b in zip(shares, shares[1:]))  # contiguous, rank order
        assert max(hi - lo for lo, hi in shares) - min(hi - lo for lo, hi in shares) <= 1


def test_equal_shares_of_a_full_batch():
    assert [batch_share(128, r, 4) for r in range(4)] == [(0, 32), (32, 64), (64, 96), (96, 128)]


@pytest.mark.parametrize("first_row", [0, 3, 7, 1 << 22])  # the last one wraps the 32-bit index
def test_dropout_rows_are_rows_of_the_global_mask(first_row):
    full = dropout_mask(11, 4, (first_row + 5, 40), 0.5, dtype=np.float64) if first_row < 100 else None
    part = dropout_mask(11, 4, (5, 40), 0.5, dtype=np.float64, first_row=first_row)
    if full is not None:
        np.testing.assert_array_equal(part, full[first_row:])
    # a column half of a row block is that block's half (two columns in a data-parallel process)
    half = dropout_mask(11, 4, (5, 20), 0.5, dtype=np.float64, columns=(20, 40), first_row=first_row)
    np.testing.assert_array_equal(half, part[:, 20:])
    assert 0.3 < (part > 0).mean() < 0.7


def test_model_dropout_follows_the_batch_rows():
    """Rows 3..5 of a 6-image batch, alone, with set_batch_rows(3): the same fc7 features."""
    x = np.random.default_rng(0).standard_normal((6, 3, 24, 24))
    whole = AlexNet(4, preset="tiny", dtype=np.float64, init_std=0.2)
    part = AlexNet(4, preset="tiny", dtype=np.float64, init_std=0.2)
    whole.train(), part.train()
    part.set_batch_rows(3)
    np.testing.assert_allclose(part.features(x[3:], "drop7"), whole.features(x, "drop7")[3:], rtol=1e-12)


# -- buckets ----------------------------------------------------------------------------------
def test_paper_buckets_follow_backward():
    buckets, order = plan_buckets(AlexNet(1000).named_parameters())
    assert [b.layers for b in order] == [["fc8"], ["fc7"], ["fc6"], ["conv5", "conv4", "conv3", "conv2", "conv1"]]
    names = [n for b in buckets for n in b.names]
    assert sorted(names) == sorted(n for n, _ in AlexNet(1000).named_parameters())


def test_small_buckets_split_by_size_and_device():
    net = AlexNet(4, preset="tiny", devices=(0, 0))
    buckets, order = plan_buckets(net.named_parameters(), cap_bytes=2000)
    assert len(buckets) > 3
    for b in buckets:  # a layer's weight and bias stay together, per column
        for layer in b.layers:
            assert all(n in b.names for n in (f"{layer}.a.weight", f"{layer}.a.bias")
                       if any(x.startswith(f"{layer}.a.") for x in b.names))
    # the order is the order backward completes them: the last layer of each is later and later
    positions = ["fc8", "fc7", "fc6", "conv5", "conv4", "conv3", "conv2", "conv1"]
    done = [max(positions.index(layer) for layer in b.layers) for b in order]
    assert done == sorted(done)


class Recorder:
    """An engine that sums nothing and notes when each bucket was started."""

    def __init__(self):
        self.started, self.events = [], None

    def begin(self):
        self.started = []

    def start(self, bucket):
        self.started.append(bucket.index)
        self.events.append(("start", bucket.index))

    def wait(self):
        self.events.append(("wait", None))
        return []

    def close(self):
        pass


class World(Solo):
    size = 2  # what DataParallel needs of a world here: nothing is exchanged with a Recorder


@pytest.mark.parametrize("devices", [None, (0, 0)], ids=["one-device", "two-columns"])
def test_buckets_start_during_backward_in_plan_order(devices):
    net = AlexNet(4, preset="tiny", dtype=np.float64, init_std=0.2, devices=devices)
    engine = Recorder()
    dp = DataParallel(net, World(), engine, cap_bytes=2000)
    for p in net.parameters():  # every gradient is a view of its bucket
        assert any(np.shares_memory(p.grad, b.flat) for b in dp.buckets)
    events = engine.events = []
    real_ready = dp.grads_ready
    dp.grads_ready = lambda name: (events.append(("layer", name)), real_ready(name))
    x = np.random.default_rng(1).standard_normal((3, 3, 24, 24))
    dp.begin_step()
    net.train()
    net.backward(np.ones((3, 4)) - net.forward(x) * 0, grads_ready=dp.grads_ready)
    dp.finish()
    starts = [i for kind, i in events if kind == "start"]
    assert starts == [b.index for b in dp.order]
    # each bucket started right after its last layer finished, before the layers below it
    first_start = events.index(("start", dp.order[0].index))
    assert ("layer", "conv1") in events[first_start:]
    assert events[-1] == ("wait", None)


def test_an_empty_share_still_starts_every_bucket():
    net = AlexNet(4, preset="tiny")
    engine = Recorder()
    engine.events = []
    dp = DataParallel(net, World(), engine)
    dp.begin_step()
    dp.finish()
    assert engine.started == [b.index for b in dp.order]


def test_sgd_reads_the_bucket_views():
    net = AlexNet(4, preset="tiny", dtype=np.float64)
    dp = DataParallel(net, World(), Recorder())
    opt = SGD(list(net.named_parameters()), lr=0.1, momentum=0.0, weight_decay=0.0)
    before = {k: v.copy() for k, v in net.state_dict().items()}
    for b in dp.buckets:
        b.flat[...] = 1.0  # as an allreduce would write the sums
    opt.step()
    for k, v in net.state_dict().items():
        np.testing.assert_allclose(v, before[k] - 0.1)


# -- the loader's shares ----------------------------------------------------------------------
class Plain:
    """A transform without the in-place fast path: the image as floats, plus the random draw."""

    def __call__(self, img, rng):
        return img.astype(np.float32).transpose(2, 0, 1) + rng.random()


def test_loader_shares_join_into_the_global_batches():
    rng = np.random.default_rng(2)
    ds = ArrayDataset(rng.integers(0, 255, (11, 4, 4, 3), dtype=np.uint8), rng.integers(0, 3, 11), ["a", "b", "c"])
    one = list(DataLoader(ds, Plain(), batch_size=4, seed=5, workers=1).epoch_iter(1))
    parts = [list(DataLoader(ds, Plain(), batch_size=4, seed=5, workers=1, share=(r, 3)).epoch_iter(1))
             for r in range(3)]
    assert all(len(p) == len(one) for p in parts)  # every process takes every step
    for k, (images, labels) in enumerate(one):
        np.testing.assert_array_equal(np.concatenate([p[k][0] for p in parts]), images)
        np.testing.assert_array_equal(np.concatenate([p[k][1] for p in parts]), labels)
    assert [len(p[-1][1]) for p in parts] == [1, 1, 1]  # 11 = 4 + 4 + 3: the last global batch is 3


def test_an_empty_share_is_an_empty_batch():
    ds = ArrayDataset(np.zeros((5, 4, 4, 3), np.uint8), np.zeros(5), ["a"])
    last = list(DataLoader(ds, Plain(), batch_size=4, seed=0, workers=1, share=(0, 2)).epoch_iter(0))[-1]
    assert len(last[1]) == 0  # the last batch has 1 image, process 1's


# -- the training script's rules --------------------------------------------------------------
class Node(Solo):
    def __init__(self, local_rank, local_size):
        self.local_rank, self.local_size = local_rank, local_size


def test_devices_shift_by_local_rank():
    assert distributed.local_devices((0,), Node(3, 8)) == (3,)
    assert distributed.local_devices((0, 1), Node(3, 4)) == (6, 7)
    assert distributed.local_devices((0, 0), Node(2, 4)) == (2, 2)  # both columns on one GPU per process


def test_too_many_gpus_is_refused_in_one_line():
    distributed.check_gpu_count((0, 1), "0,1", Node(0, 4), available=8)  # 4 x 2 on an 8-GPU node: fine
    with pytest.raises(UsageError) as e:
        distributed.check_gpu_count((0, 1), "0,1", Node(0, 4), available=4)
    assert "needs GPUs up to 7, but this node has 4" in str(e.value) and "\n" not in str(e.value)


def test_two_processes_on_one_gpu_are_named():
    owns = [{"host": "n1", "gpus": ["0000:01:00.0"]}, {"host": "n1", "gpus": ["0000:01:00.0"]}]
    assert distributed.shared_gpus(owns) == "processes 0 and 1 would both use GPU 0000:01:00.0 on n1"
    owns[1]["host"] = "n2"
    assert distributed.shared_gpus(owns) is None


def test_differences_name_the_option_or_the_data():
    a = {"args": {"seed": 0, "lr": 0.01}, "data": {"train": {"images": 10, "digest": "x"}}}
    b = {"args": {"seed": 0, "lr": 0.02}, "data": {"train": {"images": 10, "digest": "x"}}}
    assert distributed.differences([a, a]) is None
    assert distributed.differences([a, b]) == "process 1 was started with --lr 0.02, process 0 with --lr 0.01"
    c = {"args": a["args"], "data": {"train": {"images": 9, "digest": "y"}}}
    assert "process 1 sees 9 train images" in distributed.differences([a, a, c]).replace("process 2", "process 1")


def test_launcher_detection_and_rank():
    assert not launched_by_mpi({})
    assert launched_by_mpi({"PMI_SIZE": "2"}) and launched_by_mpi({"OMPI_COMM_WORLD_SIZE": "4"})
    assert distributed.launcher_rank({"PMI_RANK": "3"}) == 3 and distributed.launcher_rank({}) == 0
    assert distributed.distributed_flag(["--no-distributed", "--distributed"]) is True
    assert distributed.distributed_flag(["-b", "8"]) is None


def test_a_quiet_process_keeps_its_last_line():
    tail = distributed.Tail(keep=64)
    tail.write("x" * 100 + "\nerror: the last\n")
    assert tail.last_line() == "error: the last" and len(tail.text) <= 64


def test_help_says_how_batch_and_devices_read_with_several_processes():
    from minialex.train.cli import build_parser
    text = " ".join(build_parser("imagenet").format_help().split())
    assert "images per SGD step in each process: with mpiexec -n P the global batch is P x N" in text
    assert "the process of local rank r takes it shifted by r GPUs per GPU it names" in text
    assert "--distributed, --no-distributed" in text and "data-parallel training over the processes of mpiexec" in text


# -- on a real GPU (skipped without one): CuPy's NCCL bindings, one rank -----------------------
@pytest.mark.gpu
@pytest.mark.parametrize("devices", [None, (0, 0)], ids=["one-device", "two-columns-0,0"])
def test_nccl_engine_on_a_gpu_leaves_one_process_gradients(devices):
    """NcclAllreduce over a communicator of one rank (the sum is the gradient itself): the
    bindings, the events and streams, and no host sync during backward and the sums."""
    from minialex import backend
    from minialex.parallel.data_parallel import NcclAllreduce, nccl_module
    cp = backend.get_backend("cupy")
    if nccl_module(cp) is None:
        pytest.skip("this CuPy has no NCCL")
    import cupyx

    def grads(parallel):
        net = AlexNet(4, preset="tiny", init_std=0.2, devices=devices)
        net.to(cp) if devices else net.to(cp, device_id=0)
        dp = DataParallel(net, Solo(), NcclAllreduce(Solo(), [0])) if parallel else None
        x = cp.asarray(np.random.default_rng(3).standard_normal((4, 3, 24, 24)).astype(np.float32))
        dl = cp.asarray(np.random.default_rng(4).standard_normal((4, 4)).astype(np.float32))
        net.train()
        with cupyx.allow_synchronize(False):
            logits = net.forward(x)
            if dp is None:
                net.backward(dl + 0 * logits)
            else:
                dp.begin_step()
                net.backward(dl + 0 * logits, grads_ready=dp.grads_ready)
                dp.finish()
        return net.full_grads()

    want, got = grads(False), grads(True)
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-6, atol=1e-7, err_msg=k)
