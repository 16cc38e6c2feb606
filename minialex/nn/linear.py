"""Linear: the fully connected layer y = x W^T + b. Backward derived in
docs/layers/linear.md; checked in tests/nn/test_linear.py.
Fast version: minialex/kernels/cpu/linear.py."""

import numpy as np

from ..kernels.cpu import linear as cpu_linear
from .checks import check_float_input, check_same_dtype
from .dispatch import REFERENCE, fast_implementation
from .module import Module, Parameter


class Linear(Module):
    """y = x @ W.T + b

    Shapes (PyTorch's): x (N, in), weight (out, in), bias (out,), y (N, out).
    Weights start as N(0, init_std^2), biases as ``init_bias`` (the paper's scheme).
    """

    def __init__(self, in_features, out_features, init_std=0.01, init_bias=0.0, rng=None,
                 dtype=np.float32):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        rng = np.random.default_rng() if rng is None else rng
        self.weight = Parameter(rng.normal(0.0, init_std, size=(out_features, in_features)).astype(dtype))
        self.bias = Parameter(np.full((out_features,), init_bias, dtype=dtype))

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}"

    def forward(self, x):
        """x (N, in) -> y (N, out); saves x, which dW needs."""
        check_float_input(self, x, 2, self.in_features)
        check_same_dtype(self, x, self.weight)
        if (fast := fast_implementation(x, cpu=cpu_linear)) is not None:
            return self.run_fast(fast, x)  # dispatch (minialex/nn/dispatch.py): a kernel unless reference()
        y = x @ self.weight.data.T  # (N, in) @ (in, out) -> (N, out)
        y += self.bias.data
        self.save_for_backward(REFERENCE, x=x)
        return y

    def backward(self, dout):
        """dout (N, out) -> dx (N, in); adds into weight.grad and bias.grad."""
        saved = self.saved_for_backward()
        if saved.by is not REFERENCE:
            return saved.by.backward(self, saved, dout)  # the kernel that made the forward
        # y_nk = sum_i x_ni W_ki + b_k, so:
        self.weight.grad += dout.T @ saved.x  # dW_ki = sum_n dout_nk x_ni   (out, N) @ (N, in)
        self.bias.grad += dout.sum(axis=0)  # db_k = sum_n dout_nk
        return dout @ self.weight.data  # dx_ni = sum_k dout_nk W_ki      (N, out) @ (out, in)
