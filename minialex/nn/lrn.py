"""LocalResponseNorm: the paper's normalization across neighbouring channels (section 3.3).
Backward derived in docs/layers/lrn.md; checked in tests/nn/test_lrn.py.
Fast versions: minialex/kernels/cpu/lrn.py, minialex/kernels/cuda/lrn.py."""

from .. import backend
from ..kernels.cpu import lrn as cpu_lrn
from ..kernels.cuda import lrn as cuda_lrn
from .checks import check_float_input
from .dispatch import REFERENCE, fast_implementation
from .module import Module


def channel_window_sum(a, size, groups=1):
    """s[:, i] = sum of a[:, j] over |j - i| <= size // 2, clipped at the edges of i's group.

    a: (N, C, H, W) -> s: (N, C, H, W). Done as ``size`` shifted additions of a
    zero-padded copy, so the cost is ``size`` passes over the array whatever C is.
    """
    xp = backend.get_array_module(a)
    n, c, h, w = a.shape
    half = size // 2
    cg = c // groups
    a_g = a.reshape(n, groups, cg, h, w)  # (N, G, C/G, H, W): a window never leaves its group
    padded = xp.zeros((n, groups, cg + 2 * half, h, w), dtype=a.dtype)
    padded[:, :, half:half + cg] = a_g  # zeros beyond the group's edges clip the window
    s = padded[:, :, 0:cg].copy()
    for d in range(1, size):
        s += padded[:, :, d:d + cg]
    return s.reshape(n, c, h, w)


class LocalResponseNorm(Module):
    """b_i = a_i / (k + alpha * sum_{j=max(0, i-n/2)}^{min(N-1, i+n/2)} a_j^2) ** beta

    the formula printed in the paper, with the paper's constants n=5 (``size``),
    k=2, alpha=1e-4, beta=0.75. Note that alpha multiplies the plain sum of
    squares. PyTorch (``nn.LocalResponseNorm``), Caffe and ONNX divide alpha by
    the window size instead, so the same layer there is
    ``torch.nn.LocalResponseNorm(size=5, alpha=5 * 1e-4, beta=0.75, k=2.0)``:
    multiply our alpha by ``size`` when exporting, divide theirs by ``size``
    when importing, and always pass k explicitly (their default is 1).

    ``groups`` cuts the channels into blocks that windows never cross. AlexNet
    uses groups=2: in the paper's two-GPU network each GPU normalizes only its
    own half of the maps, so a window stops at the boundary between halves.

    Shapes: x (N, C, H, W) -> y (N, C, H, W).
    """

    def __init__(self, size=5, alpha=1e-4, beta=0.75, k=2.0, groups=1):
        super().__init__()
        if size < 1 or size % 2 == 0:
            raise ValueError(f"LocalResponseNorm: size must be a positive odd number, got {size}")
        self.size, self.alpha, self.beta, self.k, self.groups = size, alpha, beta, k, groups

    def extra_repr(self):
        return f"size={self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}, groups={self.groups}"

    def forward(self, x):
        """x (N, C, H, W) -> y = x * scale^-beta; saves x, scale and inv = scale^-beta."""
        check_float_input(self, x, 4)
        if x.shape[1] % self.groups:
            raise ValueError(
                f"LocalResponseNorm: {x.shape[1]} channels cannot be cut into groups={self.groups}"
            )
        if (fast := fast_implementation(x, cpu=cpu_lrn, cuda=cuda_lrn)) is not None:
            return self.run_fast(fast, x)  # dispatch (minialex/nn/dispatch.py): a kernel unless reference()
        scale = channel_window_sum(x * x, self.size, self.groups)  # (N, C, H, W)
        scale *= self.alpha
        scale += self.k  # scale = k + alpha * window sum of squares, always >= k > 0
        inv = scale ** (-self.beta)  # the denominator, computed once and reused by backward
        self.save_for_backward(REFERENCE, x=x, scale=scale, inv=inv)
        return x * inv

    def backward(self, dout):
        """dout (N, C, H, W) -> dx (N, C, H, W)."""
        saved = self.saved_for_backward()
        if saved.by is not REFERENCE:
            return saved.by.backward(self, saved, dout)  # the kernel that made the forward
        x, scale, inv = saved.x, saved.scale, saved.inv
        # b_i = a_i * s_i^-beta with s_j = k + alpha * sum_{i in window(j)} a_i^2, so
        # db_j/da_i = [i == j] s_i^-beta - 2 alpha beta a_j s_j^(-beta-1) a_i [i in window(j)],
        # and since "i in window(j)" is symmetric:
        # da_i = dout_i s_i^-beta - 2 alpha beta a_i * sum_{j in window(i)} dout_j a_j s_j^(-beta-1).
        t = dout * x
        t *= inv
        t /= scale  # dout_j a_j s_j^(-beta-1)
        dx = channel_window_sum(t, self.size, self.groups)
        dx *= x
        dx *= -2.0 * self.alpha * self.beta
        dx += dout * inv
        return dx
