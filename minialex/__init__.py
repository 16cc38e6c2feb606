"""minialex: AlexNet (Krizhevsky, Sutskever & Hinton, 2012) from scratch on NumPy and CuPy.

Every layer's backward pass is derived by hand (docs/layers/) and checked
against finite differences (tests/). Start reading at minialex/nn/.
"""

from . import backend, gradcheck, nn, optim
from .backend import BackendError, get_array_module, get_backend, to_backend, to_numpy

__version__ = "0.1.0"

__all__ = ["backend", "gradcheck", "nn", "optim", "BackendError", "get_array_module", "get_backend",
           "to_backend", "to_numpy", "__version__"]
