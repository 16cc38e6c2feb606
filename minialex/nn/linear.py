"""Linear: the fully connected layer y = x W^T + b. Backward derived in
docs/layers/linear.md; checked in tests/nn/test_linear.py."""

import numpy as np

from . import fast
from .checks import check_float_input, check_same_dtype
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
        self._x = None  # saved: the input, needed for dW

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}"

    def forward(self, x):
        check_float_input(self, x, 2, self.in_features)
        check_same_dtype(self, x, self.weight)
        self._x = x
        y = x @ self.weight.data.T  # (N, in) @ (in, out) -> (N, out)
        y += self.bias.data
        return y

    def backward(self, dout):
        if self._x is None:
            raise RuntimeError("Linear.backward called without a forward pass before it")
        # y_nk = sum_i x_ni W_ki + b_k, so:
        w = self.weight
        if fast.use_fast(dout) and getattr(w, "grad_is_zero", False) and w.grad.flags.c_contiguous:
            np.matmul(dout.T, self._x, out=w.grad)  # first gradient since zero_grad: no temporary
        else:
            w.grad += dout.T @ self._x  # dW_ki = sum_n dout_nk x_ni   (out, N) @ (N, in)
        w.grad_is_zero = False
        self.bias.grad += dout.sum(axis=0)  # db_k = sum_n dout_nk
        dx = dout @ self.weight.data  # dx_ni = sum_k dout_nk W_ki      (N, out) @ (out, in)
        self._x = None
        return dx
