"""The CPU kernels: one file per op, each the fast NumPy version of a layer's reference
(minialex/nn/<layer>.py), tested against it in tests/kernels/test_cpu.py.

Each op module has ``forward(layer, x) -> (y, saved)`` and ``backward(layer, saved, dout) -> dx``;
the layers call them through minialex/nn/dispatch.py. Process-wide settings (threads, BLAS,
buffers, malloc) are in ``runtime``.
"""
