"""minialex.nn: the layers of AlexNet, each with a hand-derived backward pass.

One file per layer, each its readable reference forward and backward; the derivations are in
docs/layers/. The fast versions live in minialex/kernels/ and run by default; inside
``with minialex.nn.reference():`` every layer runs the code in this folder instead
(minialex/nn/dispatch.py).
"""

from .conv import Conv2d
from .dispatch import reference
from .dropout import Dropout, dropout_mask
from .flatten import Flatten
from .linear import Linear
from .loss import SoftmaxCrossEntropy, log_softmax, softmax
from .lrn import LocalResponseNorm
from .module import Module, Parameter
from .pool import MaxPool2d
from .relu import ReLU
from .sequential import Sequential

__all__ = [
    "Module", "Parameter", "Conv2d", "MaxPool2d", "LocalResponseNorm", "ReLU", "Dropout",
    "Linear", "Flatten", "Sequential", "SoftmaxCrossEntropy", "log_softmax", "softmax", "dropout_mask",
    "reference",
]
