"""Shared test fixtures: the array backends to run each test on.

Tests that take the ``xp`` fixture run once on NumPy and once on CuPy; the
CuPy run carries the ``gpu`` marker and is skipped, with the reason, on a
machine without CuPy or without a CUDA GPU.
"""

import numpy as np
import pytest

from minialex import backend

_CUPY_OK = backend.cupy_available()


def pytest_collection_modifyitems(config, items):
    if _CUPY_OK:
        return
    why = getattr(backend, "cupy_unavailable_reason", lambda: None)() or "needs CuPy and a CUDA GPU"
    skip = pytest.mark.skip(reason=why)  # the backend's own line: what is missing and what to install
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(params=["numpy", pytest.param("cupy", marks=pytest.mark.gpu)])
def xp(request):
    """The array module of the backend under test."""
    return backend.get_backend(request.param)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
