"""The CUDA kernels, one file per op, each with its NumPy twin beside it (elementwise.py
explains both). ``conv``, ``pool`` and ``lrn`` are the layers' CuPy implementations, called
through minialex/nn/dispatch.py; ``im2col`` holds the column kernels conv uses.
Importing this package does not import CuPy. docs/gpu.md."""
