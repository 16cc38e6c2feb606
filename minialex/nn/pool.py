"""MaxPool2d: max over (possibly overlapping) spatial windows; the paper uses 3x3 windows
at stride 2. Backward derived in docs/layers/maxpool2d.md; checked in
tests/nn/test_pool.py against finite differences and a naive loop.
Fast versions: minialex/kernels/cpu/pool.py, minialex/kernels/cuda/pool.py."""

from .. import backend
from ..kernels.cpu import pool as cpu_pool
from ..kernels.cuda import pool as cuda_pool
from .checks import check_float_input, pair
from .dispatch import REFERENCE, fast_implementation
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

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}"

    def output_shape(self, input_shape):
        n, c, h, w = input_shape
        return (n, c, conv_output_size(h, self.kernel_size[0], self.stride[0], 0),
                conv_output_size(w, self.kernel_size[1], self.stride[1], 0))

    def _windows(self, a, i, j, oh, ow):
        """The (i, j)-th element of every window of a: a strided view (N, C, OH, OW)."""
        sh, sw = self.stride
        return a[:, :, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw]

    def forward(self, x):
        """x (N, C, H, W) -> y (N, C, OH, OW); the reference saves the winning offset of each window."""
        check_float_input(self, x, 4)
        kh, kw = self.kernel_size
        if x.shape[2] < kh or x.shape[3] < kw:
            raise ValueError(f"MaxPool2d: window {self.kernel_size} is larger than input {describe(x)}")
        if (fast := fast_implementation(x, cpu=cpu_pool, cuda=cuda_pool)) is not None:
            return self.run_fast(fast, x)  # dispatch (minialex/nn/dispatch.py): a kernel unless reference()
        xp = backend.get_array_module(x)
        _, _, oh, ow = self.output_shape(x.shape)
        y = self._windows(x, 0, 0, oh, ow).copy()  # (N, C, OH, OW): the running maximum
        argmax = xp.zeros(y.shape, dtype=xp.uint8)  # the offset i*KW + j of each window's maximum
        # One pass per kernel offset: compare the strided view of all windows'
        # (i, j)-th elements with the running maximum.
        for i in range(kh):
            for j in range(kw):
                view = self._windows(x, i, j, oh, ow)
                better = view > y  # strictly greater: on a tie the earlier offset keeps the win
                xp.copyto(y, view, where=better)
                # (argmax[better] = ... would say the same, but CuPy reads a boolean mask's count
                # back to the host: a sync per offset)
                xp.copyto(argmax, xp.uint8(i * kw + j), where=better)
        self.save_for_backward(REFERENCE, argmax=argmax, x_shape=x.shape)
        return y

    def backward(self, dout):
        """dout (N, C, OH, OW) -> dx (N, C, H, W): each window's gradient goes to its maximum."""
        saved = self.saved_for_backward()
        if saved.by is not REFERENCE:
            return saved.by.backward(self, saved, dout)  # the kernel that made the forward
        xp = backend.get_array_module(dout)
        kh, kw = self.kernel_size
        _, _, oh, ow = dout.shape
        dx = xp.zeros(saved.x_shape, dtype=dout.dtype)  # (N, C, H, W)
        for i in range(kh):
            for j in range(kw):
                # windows whose maximum sat at offset (i, j) pass their gradient to that pixel
                won = saved.argmax == (i * kw + j)  # (N, C, OH, OW)
                self._windows(dx, i, j, oh, ow)[...] += dout * won
        return dx
