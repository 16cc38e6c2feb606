"""LocalResponseNorm: the paper's normalization across neighbouring channels (section 3.3).
Backward derived in docs/layers/lrn.md; checked in tests/nn/test_lrn.py."""

from .. import backend
from . import fast
from .checks import check_float_input
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
        self._x = self._scale = self._inv = None  # saved by forward

    def extra_repr(self):
        return f"size={self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}, groups={self.groups}"

    def forward(self, x):
        check_float_input(self, x, 4)
        if x.shape[1] % self.groups:
            raise ValueError(
                f"LocalResponseNorm: {x.shape[1]} channels cannot be cut into groups={self.groups}"
            )
        if fast.use_fast(x):  # NumPy: cache-sized chunks on all cores, pow by square roots
            y, scale, inv = fast.lrn_forward(self, x)
            self._x, self._scale, self._inv = x, scale, inv
            return y
        return self._forward_plain(x)

    def _forward_plain(self, x):
        """The readable reference, whole batch at once."""
        scale = channel_window_sum(x * x, self.size, self.groups)  # (N, C, H, W)
        scale *= self.alpha
        scale += self.k  # scale = k + alpha * window sum of squares, always >= k > 0
        inv = scale ** (-self.beta)  # the denominator, computed once and reused by backward
        self._x, self._scale, self._inv = x, scale, inv
        return x * inv

    def backward(self, dout):
        if self._x is None:
            raise RuntimeError("LocalResponseNorm.backward called without a forward pass before it")
        x, scale, inv = self._x, self._scale, self._inv
        if fast.use_fast(dout):
            self._x = self._scale = self._inv = None
            return fast.lrn_backward(self, x, scale, inv, dout)
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
        self._x = self._scale = self._inv = None
        return dx
