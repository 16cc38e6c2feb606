"""minialex.nn: the layers of AlexNet, each with a hand-derived backward pass.

The mathematics is in ``minialex.nn.functional``: one pure forward/backward pair per op, the
readable reference, derived in docs/layers/; naive loop versions in ``minialex.nn.naive``. The
layers here (one file each) hold parameters and hyperparameters and call a pair. The fast
versions of the pairs live in minialex/kernels/ and run by default; inside
``with minialex.nn.reference():`` every layer runs the readable reference instead
(minialex/nn/dispatch.py).
"""

from . import functional, naive
from .conv import Conv2d
from .dispatch import reference
from .dropout import Dropout
from .flatten import Flatten
from .linear import Linear
from .functional import log_softmax, softmax
from .loss import SoftmaxCrossEntropy
from .lrn import LocalResponseNorm
from .masks import MaskKey, dropout_mask
from .module import Module, Parameter
from .pool import MaxPool2d
from .relu import ReLU
from .sequential import Sequential
from .sigmoid import Sigmoid
from .tanh import Tanh

__all__ = [
    "Module", "Parameter", "Conv2d", "MaxPool2d", "LocalResponseNorm", "ReLU", "Dropout",
    "Linear", "Flatten", "Sequential", "SoftmaxCrossEntropy", "log_softmax", "softmax", "dropout_mask",
    "reference", "functional", "naive", "MaskKey", "Tanh", "Sigmoid",
]
