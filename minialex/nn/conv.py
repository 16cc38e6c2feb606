"""Conv2d: 2-D convolution (cross-correlation, as in every deep-learning library) by im2col,
with stride, zero padding and groups. Backward pass derived in docs/layers/conv2d.md;
checked in tests/nn/test_conv.py against finite differences and a naive loop.
Fast versions: minialex/kernels/cpu/conv.py, minialex/kernels/cuda/conv.py."""

import numpy as np

from .. import backend
from ..kernels.cpu import conv as cpu_conv
from ..kernels.cuda import conv as cuda_conv
from .checks import check_float_input, check_same_dtype, pair
from .dispatch import REFERENCE, fast_implementation
from .im2col import col2im, conv_output_size, im2col
from .module import Module, Parameter, describe


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
        """x (N, C, H, W) -> y (N, F, OH, OW). Reference: im2col of the whole batch, then the GEMMs."""
        self._check(x)
        if (fast := fast_implementation(x, cpu=cpu_conv, cuda=cuda_conv)) is not None:
            return self.run_fast(fast, x)  # dispatch (minialex/nn/dispatch.py): a kernel unless reference()
        cols = im2col(x, self.kernel_size, self.stride, self.padding)  # (N, C, KH, KW, OH, OW)
        self.save_for_backward(REFERENCE, cols=cols, x_shape=x.shape)
        return self.columns_forward(cols)

    def backward(self, dout):
        """dout (N, F, OH, OW) -> dx (N, C, H, W), or None without input_grad; adds into the grads."""
        saved = self.saved_for_backward()
        if saved.by is not REFERENCE:
            return saved.by.backward(self, saved, dout)  # the kernel that made the forward
        dcols = self.columns_backward(saved.cols, dout)  # (N, C, KH, KW, OH, OW), or None
        if dcols is None:
            return None
        return col2im(dcols, saved.x_shape, self.kernel_size, self.stride, self.padding)

    # -- the GEMM halves of the reference -------------------------------------------------------
    def columns_forward(self, cols):
        """y = W @ cols + b per group: cols (N, C, KH, KW, OH, OW) -> y (N, F, OH, OW)."""
        xp = backend.get_array_module(cols)
        n, c, kh, kw, oh, ow = cols.shape
        g, f = self.groups, self.out_channels
        # Channels are the slowest axis inside a sample, so cutting C into G blocks
        # keeps each group's (C/G)*KH*KW rows contiguous.
        cols_g = cols.reshape(n, g, (c // g) * kh * kw, oh * ow)  # (N, G, K, L), K=C/G*KH*KW, L=OH*OW
        w_g = self.weight.data.reshape(g, f // g, -1)  # (G, F/G, K)
        y = xp.matmul(w_g, cols_g)  # (G, F/G, K) @ (N, G, K, L) -> (N, G, F/G, L)
        y = y.reshape(n, f, oh, ow)  # (N, F, OH, OW): groups are consecutive blocks of filters
        y += self.bias.data.reshape(1, f, 1, 1)
        return y

    def columns_backward(self, cols, dout):
        """Adds db and dW into the grads; returns dcols (the shape of cols), or None without
        input_grad."""
        xp = backend.get_array_module(dout)
        n, f, oh, ow = dout.shape
        g = self.groups
        k = cols.shape[1] // g * cols.shape[2] * cols.shape[3]
        dout_g = dout.reshape(n, g, f // g, oh * ow)  # (N, G, F/G, L)
        cols_g = cols.reshape(n, g, k, oh * ow)  # (N, G, K, L)

        # y = b + W x_cols, so db sums dout over everything but the filter axis ...
        self.bias.grad += dout.sum(axis=(0, 2, 3))
        # ... dW[g] = sum_n dout[n, g] @ cols[n, g]^T  (contract over samples and pixels) ...
        dw = self.weight.grad.reshape(g, f // g, k)  # (G, F/G, K), a view of the grad buffer
        for gi in range(g):
            dw[gi] += xp.tensordot(dout_g[:, gi], cols_g[:, gi], axes=([0, 2], [0, 2]))
        if not self.input_grad:
            return None
        # ... and dcols = W^T @ dout, which col2im scatters back onto the input pixels.
        w_g = self.weight.data.reshape(g, f // g, k)  # (G, F/G, K)
        dcols = xp.matmul(w_g.transpose(0, 2, 1), dout_g)  # (G, K, F/G) @ (N, G, F/G, L) -> (N, G, K, L)
        return dcols.reshape(cols.shape)  # (N, C, KH, KW, OH, OW)
