"""LocalResponseNorm: the layer that holds the paper's normalization constants (section 3.3) and
calls the lrn pair. The mathematics: minialex/nn/functional/lrn.py (derived in
docs/layers/lrn.md); fast versions of the pair: minialex/kernels/cpu/lrn.py,
minialex/kernels/cuda/lrn.py; all tested in tests/ops/test_lrn.py."""

from ..kernels.cpu import lrn as cpu_lrn
from ..kernels.cuda import lrn as cuda_lrn
from . import functional
from .checks import check_float_input
from .dispatch import Op
from .module import Module

LRN = Op("lrn", reference=functional.lrn, cpu=cpu_lrn, cuda=cuda_lrn)


class LocalResponseNorm(Module):
    """y_i = x_i / (k + alpha * sum_{j=max(0, i-m/2)}^{min(C-1, i+m/2)} x_j^2) ** beta

    for channel i of C at each sample and pixel: the formula printed in the paper (which writes
    a, b, n, N for x, y, m, C), with the paper's constants m=5 (``size``), k=2, alpha=1e-4,
    beta=0.75; k must be > 0. Note that alpha multiplies the plain sum of
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
        if not k > 0:
            raise ValueError(f"LocalResponseNorm: k must be > 0 (it keeps the denominator away from 0 on "
                             f"all-zero channels), got k={k}")
        self.size, self.alpha, self.beta, self.k, self.groups = size, alpha, beta, k, groups

    def extra_repr(self):
        return f"size={self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}, groups={self.groups}"

    def forward(self, x):
        """x (N, C, H, W) -> y (N, C, H, W): lrn_forward."""
        check_float_input(self, x, 4)
        if x.shape[1] % self.groups:
            raise ValueError(
                f"LocalResponseNorm: {x.shape[1]} channels cannot be cut into groups={self.groups}"
            )
        return self.forward_with(LRN, x, self.size, self.alpha, self.beta, self.k, self.groups)

    def backward(self, dout):
        """dout (N, C, H, W) -> dx (N, C, H, W)."""
        return self.backward_with(dout)
