"""The fast implementations of the layers, apart from their readable references in minialex/nn/.

``minialex.kernels.cpu``: NumPy kernels (threads, cache-sized chunks, BLAS control), one file
per op, and ``cpu.runtime`` for the process-wide settings. ``minialex.kernels.cuda``: CUDA
kernels for CuPy, one file per op, each with a NumPy twin that runs the same index arithmetic
on the CPU. Every implementation is tested against the layer's reference (tests/kernels/).
Which one runs is decided in minialex/nn/dispatch.py. Importing these never imports CuPy.
"""
