"""minialex.parallel: running one network on several devices and several processes.

``two_column``: the paper's model parallelism (section 3.2), each of AlexNet's two columns on
its own device, exchanging activations only where the table in minialex/models/architecture.py
says a layer reads both columns. ``AlexNet(devices=(a, b))`` uses it. Explained in
docs/two-gpu.md.

``world``: the processes of a run started by ``mpiexec`` (mpi4py), and ``data_parallel``: each
process trains on its share of every batch and the gradients are averaged by an allreduce
(MPI, or NCCL on GPUs) while backward still runs. Explained in docs/distributed.md.
"""
