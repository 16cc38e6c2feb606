"""The optimizer of a data-parallel run: any optimizer (minialex.optim.SGD) wrapped so that the
gradients are averaged over the processes before its update, as ChainerMN's multi-node
optimizer wraps Chainer's. A world of one process makes the wrapper a pass-through, so the
training loop has one step for every case. Why the average is the single-process gradient,
and how the buckets overlap backward: data_parallel.py and docs/distributed.md.

The training step, whatever the number of processes::

    opt.zero_grad()
    opt.begin_step()
    model.backward(dlogits, grads_ready=opt.grads_ready)  # buckets leave as they fill
    opt.step()                                            # wait for the sums, then update
"""

from .data_parallel import DataParallel, make_engine


class AveragingOptimizer:
    """``AveragingOptimizer(optimizer, model, world, xp, devices)``.

    One process (``world.size == 1``): every method is the wrapped optimizer's, ``grads_ready``
    is None (backward calls nothing back) and ``begin_step`` does nothing. Several processes:
    the parameters' gradients become views into DataParallel's buckets, process 0's weights
    are sent to every process, backward starts each bucket's allreduce as soon as its layers
    are done, and ``step`` waits for the last sum before the wrapped update. ``note`` says how
    the gradients travel when that is worth a line (MPI through host copies), else None.
    """

    def __init__(self, optimizer, model, world, xp, devices):
        self.optimizer, self.world = optimizer, world
        self.data_parallel, self.note = None, None
        if world.size > 1:
            engine, self.note = make_engine(world, xp, devices)
            self.data_parallel = DataParallel(model, world, engine)
            self.data_parallel.broadcast_parameters()  # every process starts from process 0's weights

    # -- what the step calls, in order ------------------------------------------------------
    def zero_grad(self):
        if self.data_parallel is None:
            self.optimizer.zero_grad()
        else:
            self.data_parallel.zero_grad()  # one fill per bucket instead of one per parameter

    def begin_step(self):
        if self.data_parallel is not None:
            self.data_parallel.begin_step()

    @property
    def grads_ready(self):
        """The callback backward makes after each layer (None alone: nothing to start)."""
        return None if self.data_parallel is None else self.data_parallel.grads_ready

    def step(self):
        if self.data_parallel is not None:
            self.data_parallel.finish()  # every gradient now the global batch's
        self.optimizer.step()

    # -- the wrapped optimizer's settings and state ----------------------------------------------
    @property
    def engine_name(self):
        """``"MPI"``, ``"NCCL"`` or ``"MPI via host copies"``; None for one process."""
        if self.data_parallel is None:
            return None
        kind = type(self.data_parallel.engine).__name__
        return {"MpiAllreduce": "MPI", "NcclAllreduce": "NCCL", "StagedMpiAllreduce": "MPI via host copies"}.get(
            kind, kind)

    def __getattr__(self, name):  # lr, momentum, weight_decay, names, state_dict, load_state_dict, ...
        if name == "optimizer":  # (not set yet: no recursion)
            raise AttributeError(name)
        return getattr(self.optimizer, name)

    def __setattr__(self, name, value):
        if name in ("lr", "momentum", "weight_decay"):
            setattr(self.optimizer, name, value)
        else:
            object.__setattr__(self, name, value)

    def close(self):
        if self.data_parallel is not None:
            self.data_parallel.close()


__all__ = ["AveragingOptimizer"]
