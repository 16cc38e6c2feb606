"""The fast implementations of the ops, apart from their readable references in
minialex/nn/functional/ (SGD's: minialex/optim/functional.py).

Each kernel module implements an op's pair with the same names and signatures as the reference
(``conv2d_forward(x, w, b, stride, padding, groups) -> (y, cache)``, ...), with a cache of its own.
``minialex.kernels.cpu``: NumPy kernels (threads, cache-sized chunks, BLAS control), one file
per op, and ``cpu.runtime`` for the process-wide settings. ``minialex.kernels.cuda``: CUDA
kernels for CuPy, one file per op, each with a NumPy twin that runs the same index arithmetic
on the CPU when asked for by name. Every implementation is tested with the others in
tests/ops/test_<op>.py. Which one runs is decided in minialex/nn/dispatch.py. Importing these
never imports CuPy.
"""
