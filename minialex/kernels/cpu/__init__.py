"""The CPU kernels: one file per op, each the fast NumPy version of an op's reference pair
(minialex/nn/functional/<op>.py; SGD's: minialex/optim/functional.py) with the same names and
signatures, tested with every implementation in tests/ops/test_<op>.py. The layers call them
through minialex/nn/dispatch.py. Process-wide settings (threads, BLAS, buffers, malloc) are in
``runtime``.
"""
