"""The CUDA kernels, one file per op, each with its NumPy twin beside it (elementwise.py
explains both). ``conv``, ``pool``, ``lrn``, ``tanh``, ``sigmoid`` and ``sgd`` implement their
ops' reference pairs with the same names and signatures on CuPy arrays; ``dropout`` is dropout's mask in one launch,
``relu`` ReLU's in-place variants, ``im2col`` the column kernels conv uses. The layers call them
through minialex/nn/dispatch.py. Importing this package does not import CuPy. docs/gpu.md."""
