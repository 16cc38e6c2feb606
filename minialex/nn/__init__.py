"""minialex.nn: the layers of AlexNet, each with a hand-derived backward pass.

One file per layer; the derivations are in docs/layers/.
"""

from .conv import Conv2d
from .dropout import Dropout
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
    "Linear", "Flatten", "Sequential", "SoftmaxCrossEntropy", "log_softmax", "softmax",
]
