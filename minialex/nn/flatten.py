"""Flatten (derivation in docs/layers/README.md): (N, C, H, W) -> (N, C*H*W) in C-major order, as PyTorch flattens, so that
fc6's weight columns line up one to one with a PyTorch port. Backward is the inverse reshape."""

from .module import Module


class Flatten(Module):
    def __init__(self):
        super().__init__()
        self._shape = None  # saved: the input shape, to undo the reshape

    def forward(self, x):
        self._shape = x.shape
        return x.reshape(x.shape[0], -1)  # (N, C*H*W)

    def backward(self, dout):
        if self._shape is None:
            raise RuntimeError("Flatten.backward called without a forward pass before it")
        return dout.reshape(self._shape)  # (N, C, H, W)
