"""Linear: the layer that holds a fully connected layer's weight and bias and calls the linear
pair, y = x W^T + b. The mathematics: minialex/nn/functional/linear.py (derived in
docs/layers/linear.md); the fast version of the pair: minialex/kernels/cpu/linear.py; tested in
tests/ops/test_linear.py."""

import numpy as np

from ..kernels.cpu import linear as cpu_linear
from . import functional
from .checks import check_float_input, check_same_dtype
from .dispatch import Op
from .module import Module, Parameter

LINEAR = Op("linear", reference=functional.linear, cpu=cpu_linear)


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
        """x (N, in) -> y (N, out): linear_forward."""
        check_float_input(self, x, 2, self.in_features)
        check_same_dtype(self, x, self.weight)
        return self.forward_with(LINEAR, x, self.weight.data, self.bias.data)

    def backward(self, dout):
        """dout (N, out) -> dx (N, in); adds into weight.grad and bias.grad."""
        dx, _, _ = self.backward_with(dout, dw=self.weight.grad, db=self.bias.grad)
        return dx
