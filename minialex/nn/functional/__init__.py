"""minialex.nn.functional: the mathematics of every layer, as pure functions. Start here.

Each op is a pair, as in CS231n's layers.py:

    y, cache = <op>_forward(x, <parameters>, <hyperparameters>)
    grads = <op>_backward(dout, cache)

forward returns its output and a cache (a namedtuple with named fields) of what the backward
needs; backward takes the gradient of the loss with respect to the output, dout, and that
cache, and returns the gradients with respect to the input (and the parameters). Nothing is
stored anywhere else, so each pair can be called, tested and stepped through on its own.
Shapes use the letters of docs/layers/README.md ("Notation"); each file names the section of
its derivation in docs/layers/.

These are the readable references. The CPU and CUDA kernels in minialex/kernels/ implement
the same pairs with the same signatures, and the layers in minialex/nn/ (Conv2d, ...) hold the
parameters and pick an implementation (minialex/nn/dispatch.py). The naive loop versions, slow
and obviously right, are in minialex/nn/naive.py.
"""

from .conv import Conv2dCache, conv2d_backward, conv2d_forward
from .dropout import DropoutCache, dropout_backward, dropout_forward
from .im2col import col2im, conv_output_size, im2col
from .linear import LinearCache, linear_backward, linear_forward
from .loss import (SoftmaxCrossEntropyCache, log_softmax, softmax, softmax_cross_entropy_backward,
                   softmax_cross_entropy_forward)
from .lrn import LRNCache, channel_window_sum, lrn_backward, lrn_forward
from .pool import MaxPool2dCache, max_pool2d_backward, max_pool2d_forward
from .relu import ReLUCache, relu_backward, relu_forward
from .sigmoid import SigmoidCache, sigmoid_backward, sigmoid_forward
from .tanh import TanhCache, tanh_backward, tanh_forward

__all__ = [
    "conv2d_forward", "conv2d_backward", "max_pool2d_forward", "max_pool2d_backward",
    "lrn_forward", "lrn_backward", "relu_forward", "relu_backward", "dropout_forward",
    "dropout_backward", "linear_forward", "linear_backward", "softmax_cross_entropy_forward",
    "softmax_cross_entropy_backward", "log_softmax", "softmax", "im2col", "col2im",
    "conv_output_size", "channel_window_sum", "Conv2dCache", "MaxPool2dCache", "LRNCache",
    "ReLUCache", "DropoutCache", "LinearCache", "SoftmaxCrossEntropyCache",
    "tanh_forward", "tanh_backward", "sigmoid_forward", "sigmoid_backward", "TanhCache", "SigmoidCache",
]
