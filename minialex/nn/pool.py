"""MaxPool2d: max over (possibly overlapping) spatial windows; the paper uses 3x3 windows
at stride 2. Backward derived in docs/layers/maxpool2d.md; checked in
tests/nn/test_pool.py against finite differences and a naive loop."""

from .. import backend
from . import fast
from .checks import check_float_input, pair
from .im2col import conv_output_size
from .module import Module, describe


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
        if self.kernel_size[0] * self.kernel_size[1] > 255:
            raise ValueError("MaxPool2d: windows of more than 255 elements are not supported")
        self._argmax = None  # saved: (N, C, OH, OW) uint8, the winning offset i*KW + j of each window
        self._x_shape = None
        self._fast_xy = None  # saved by the fast CPU forward instead: (input, output), see fast.py

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}"

    def output_shape(self, input_shape):
        n, c, h, w = input_shape
        return (n, c, conv_output_size(h, self.kernel_size[0], self.stride[0], 0),
                conv_output_size(w, self.kernel_size[1], self.stride[1], 0))

    def forward(self, x):
        check_float_input(self, x, 4)
        kh, kw = self.kernel_size
        if x.shape[2] < kh or x.shape[3] < kw:
            raise ValueError(f"MaxPool2d: window {self.kernel_size} is larger than input {describe(x)}")
        if fast.use_fast(x):  # NumPy: cache-sized chunks on all cores, no boolean indexing
            y, saved = fast.maxpool_forward(self, x, self.output_shape(x.shape))
            self._argmax, self._x_shape, self._fast_xy = None, x.shape, (x, saved)
            return y
        return self._forward_plain(x)

    def _forward_plain(self, x):
        """The readable reference: one pass per kernel offset over the whole batch."""
        self._fast_xy = None
        kh, kw = self.kernel_size
        xp = backend.get_array_module(x)
        sh, sw = self.stride
        _, _, oh, ow = self.output_shape(x.shape)
        y = None
        argmax = xp.zeros(self.output_shape(x.shape), dtype=xp.uint8)
        # One pass per kernel offset: compare the strided view of all windows'
        # (i, j)-th elements with the running maximum.
        for i in range(kh):
            for j in range(kw):
                view = x[:, :, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw]  # (N, C, OH, OW)
                if y is None:
                    y = view.copy()
                    continue
                better = view > y  # strictly greater: on a tie the earlier offset keeps the win
                xp.copyto(y, view, where=better)
                argmax[better] = i * kw + j
        self._argmax, self._x_shape = argmax, x.shape
        return y

    def backward(self, dout):
        if self._fast_xy is not None:
            (x, y), self._fast_xy = self._fast_xy, None
            return fast.maxpool_backward(self, x, y, dout)
        if self._argmax is None:
            raise RuntimeError("MaxPool2d.backward called without a forward pass before it")
        xp = backend.get_array_module(dout)
        kh, kw = self.kernel_size
        sh, sw = self.stride
        _, _, oh, ow = dout.shape
        dx = xp.zeros(self._x_shape, dtype=dout.dtype)  # (N, C, H, W)
        for i in range(kh):
            for j in range(kw):
                # windows whose maximum sat at offset (i, j) pass their gradient to that pixel
                won = self._argmax == (i * kw + j)  # (N, C, OH, OW)
                dx[:, :, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw] += dout * won
        self._argmax = None
        return dx
