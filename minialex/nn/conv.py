"""Conv2d: the layer that holds a 2-D convolution's weight, bias and hyperparameters and calls
the conv2d pair. The mathematics: minialex/nn/functional/conv.py (derived in
docs/layers/conv2d.md); fast versions of the pair: minialex/kernels/cpu/conv.py,
minialex/kernels/cuda/conv.py; all tested in tests/ops/test_conv2d.py."""

import numpy as np

from ..kernels.cpu import conv as cpu_conv
from ..kernels.cuda import conv as cuda_conv
from . import functional
from .checks import check_float_input, check_same_dtype, pair
from .dispatch import Op
from .functional.im2col import conv_output_size
from .module import Module, Parameter, describe

CONV2D = Op("conv2d", reference=functional.conv, cpu=cpu_conv, cuda=cuda_conv)


class Conv2d(Module):
    """y[n, f] = b[f] + sum over the input channels of f's group of W[f, c] (*) x[n, c].

    Shapes (PyTorch's, so weights move over one to one):
        x: (N, C, H, W)          weight: (F, C/G, KH, KW)    bias: (F,)
        y: (N, F, OH, OW)        OH = floor((H + 2*pad - KH) / stride) + 1
    With ``groups=G`` the C input channels and F filters are cut into G equal
    blocks and block g of the filters sees only block g of the channels
    (AlexNet's conv2, conv4 and conv5 use G=2: one block per GPU).

    Weights start as N(0, init_std^2) and biases as ``init_bias``, the paper's
    scheme; pass a NumPy Generator as ``rng`` for reproducible weights.
    ``input_grad=False`` makes backward skip the gradient of the input and return
    None: nothing needs it for a network's first layer, whose input is the images.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, groups=1,
                 init_std=0.01, init_bias=0.0, rng=None, dtype=np.float32, input_grad=True):
        super().__init__()
        if in_channels % groups or out_channels % groups:
            raise ValueError(
                f"Conv2d: in_channels={in_channels} and out_channels={out_channels} "
                f"must both be divisible by groups={groups}"
            )
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size = pair(kernel_size, "kernel_size")
        self.stride = pair(stride, "stride")
        self.padding = pair(padding, "padding")
        self.input_grad = bool(input_grad)
        rng = np.random.default_rng() if rng is None else rng
        kh, kw = self.kernel_size
        w = rng.normal(0.0, init_std, size=(out_channels, in_channels // groups, kh, kw))
        self.weight = Parameter(w.astype(dtype))
        self.bias = Parameter(np.full((out_channels,), init_bias, dtype=dtype))

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, groups={self.groups}"
                + ("" if self.input_grad else ", input_grad=False"))

    def output_shape(self, input_shape):
        n, _, h, w = input_shape
        oh = conv_output_size(h, self.kernel_size[0], self.stride[0], self.padding[0])
        ow = conv_output_size(w, self.kernel_size[1], self.stride[1], self.padding[1])
        return (n, self.out_channels, oh, ow)

    def _check(self, x):
        check_float_input(self, x, 4, self.in_channels)
        check_same_dtype(self, x, self.weight)
        h, w = x.shape[2] + 2 * self.padding[0], x.shape[3] + 2 * self.padding[1]
        if h < self.kernel_size[0] or w < self.kernel_size[1]:
            raise ValueError(
                f"Conv2d: kernel {self.kernel_size} is larger than the padded input "
                f"({h}, {w}) of input {describe(x)} with padding {self.padding}"
            )

    def forward(self, x):
        """x (N, C, H, W) -> y (N, F, OH, OW): conv2d_forward."""
        self._check(x)
        return self.forward_with(CONV2D, x, self.weight.data, self.bias.data, self.stride, self.padding, self.groups)

    def backward(self, dout):
        """dout (N, F, OH, OW) -> dx (N, C, H, W), or None without input_grad; adds into the grads."""
        dx, _, _ = self.backward_with(dout, dw=self.weight.grad, db=self.bias.grad, need_dx=self.input_grad)
        return dx
