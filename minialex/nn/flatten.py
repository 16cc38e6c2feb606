"""Flatten (derivation in docs/layers/README.md): (N, C, H, W) -> (N, C*H*W) in C-major order, as PyTorch flattens, so that
fc6's weight columns line up one to one with a PyTorch port. Backward is the inverse reshape."""

from .module import Module


class Flatten(Module):
    def forward(self, x):
        """x (N, C, H, W) -> (N, C*H*W); saves the input shape, to undo the reshape."""
        self.keep(x.shape)
        return x.reshape(x.shape[0], -1)  # (N, C*H*W)

    def backward(self, dout):
        """dout (N, C*H*W) -> dx (N, C, H, W): the inverse reshape (no arithmetic)."""
        _, x_shape = self.take_cache()
        return dout.reshape(x_shape)  # (N, C, H, W)
