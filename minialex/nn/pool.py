"""MaxPool2d: the layer that holds max-pooling's window and stride and calls the max_pool2d
pair; the paper uses 3x3 windows at stride 2. The mathematics: minialex/nn/functional/pool.py
(derived in docs/layers/maxpool2d.md); fast versions of the pair: minialex/kernels/cpu/pool.py,
minialex/kernels/cuda/pool.py; all tested in tests/ops/test_max_pool2d.py."""

from ..kernels.cpu import pool as cpu_pool
from ..kernels.cuda import pool as cuda_pool
from . import functional
from .checks import check_float_input, pair
from .dispatch import Op
from .functional.im2col import conv_output_size
from .module import Module, describe

MAX_POOL2D = Op("max_pool2d", reference=functional.pool, cpu=cpu_pool, cuda=cuda_pool)


class MaxPool2d(Module):
    """y[n, c, oh, ow] = max over the window of x[n, c, oh*s : oh*s + k, ow*s : ow*s + k].

    Shapes: x (N, C, H, W) -> y (N, C, OH, OW), OH = floor((H - KH) / stride) + 1.

    Backward sends each output gradient to the one input that was the maximum
    of its window (the max is locally the identity on that input and constant
    in the others). Tie rule: when several inputs share the maximum, the first
    in row-major order inside the window receives the gradient. With
    overlapping windows an input can be the maximum of several windows and then
    receives the sum of their gradients.
    """

    def __init__(self, kernel_size=3, stride=2):
        super().__init__()
        self.kernel_size = pair(kernel_size, "kernel_size")
        self.stride = pair(stride, "stride")
        if self.kernel_size[0] * self.kernel_size[1] > 256:  # argmax is uint8: offsets 0..255
            raise ValueError(f"MaxPool2d: windows of more than 256 elements are not supported (the uint8 argmax "
                             f"holds offsets 0..255), got {self.kernel_size[0]}x{self.kernel_size[1]}")

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}"

    def output_shape(self, input_shape):
        n, c, h, w = input_shape
        return (n, c, conv_output_size(h, self.kernel_size[0], self.stride[0], 0),
                conv_output_size(w, self.kernel_size[1], self.stride[1], 0))

    def forward(self, x):
        """x (N, C, H, W) -> y (N, C, OH, OW): max_pool2d_forward."""
        check_float_input(self, x, 4)
        kh, kw = self.kernel_size
        if x.shape[2] < kh or x.shape[3] < kw:
            raise ValueError(f"MaxPool2d: window {self.kernel_size} is larger than input {describe(x)}")
        return self.forward_with(MAX_POOL2D, x, self.kernel_size, self.stride)

    def backward(self, dout):
        """dout (N, C, OH, OW) -> dx (N, C, H, W): each window's gradient goes to its maximum."""
        return self.backward_with(dout)
