"""Shared test fixtures: the array backends to run each test on.

Tests that take the ``xp`` fixture run once on NumPy and once on CuPy; the
CuPy run carries the ``gpu`` marker and is skipped, with the reason, on a
machine without CuPy or without a CUDA GPU.
"""

import os
import shutil

import numpy as np
import pytest

from minialex import backend

_CUPY_OK = backend.cupy_available()


# The CUDA kernels' own source run on the host (tests/cuda_on_host/, the cuda-source cases of
# tests/ops/) needs a C++ compiler. Every machine of this project has g++, and CI sets
# MINIALEX_REQUIRE_HOST_KERNELS=1 so that a missing one fails there; elsewhere those tests skip.
_GXX_OK = shutil.which("g++") is not None or os.environ.get("MINIALEX_REQUIRE_HOST_KERNELS") == "1"


def _uses_host_kernels(item):
    return "cuda_on_host" in item.nodeid or "cuda-source" in item.nodeid


def pytest_collection_modifyitems(config, items):
    if not _GXX_OK:
        skip_host = pytest.mark.skip(reason="running the CUDA kernels' source on the host needs g++ (C++17)")
        for item in items:
            if _uses_host_kernels(item):
                item.add_marker(skip_host)
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
