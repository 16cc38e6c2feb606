"""minialex.optim: the paper's SGD with momentum and weight decay."""

from .sgd import SGD

__all__ = ["SGD"]
