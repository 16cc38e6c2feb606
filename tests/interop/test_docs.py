"""Every ```python block of docs/interop.md runs on its own, as a reader would paste it, in a folder
holding what the page assumes: alexnet.safetensors and alexnet.onnx exported from a trained run,
and photo.jpg, an image of one of its classes."""

import os
import re
import shutil
import subprocess
import sys

import pytest

from ..test_readme import python_blocks
from ..train.conftest import ROOT
from .conftest import TORCH_INSTALL, need

DOC = os.path.join(ROOT, "docs", "interop.md")
BLOCKS = python_blocks(DOC)
NEEDS = {"torch": "torch", "onnxruntime": "onnxruntime"}


@pytest.fixture(scope="module")
def folder(tiny_run, tiny_data, tmp_path_factory):
    need("safetensors")
    need("onnx")
    from minialex.interop import export_checkpoint
    out = tmp_path_factory.mktemp("doc")
    export_checkpoint(tiny_run, out / "alexnet.safetensors")
    export_checkpoint(tiny_run, out / "alexnet.onnx")
    cls = os.path.join(tiny_data, "val", "s0000001")
    shutil.copy(os.path.join(cls, sorted(os.listdir(cls))[0]), out / "photo.jpg")
    return out


def test_the_page_has_its_examples():
    assert len(BLOCKS) == 2


@pytest.mark.parametrize("line,code", BLOCKS, ids=[f"docs/interop.md:{line}" for line, _ in BLOCKS])
def test_block_runs_on_its_own(line, code, folder):
    for word, module in NEEDS.items():
        if f"import {word}" in code or f"from {word}" in code or f"{word}." in code:
            need(module, TORCH_INSTALL if module == "torch" else 'pip install -e ".[interop]"')
    proc = subprocess.run([sys.executable, "-c", code], cwd=folder, capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PYTHONPATH=ROOT))
    assert proc.returncode == 0, f"docs/interop.md block at line {line} failed:\n{proc.stderr[-2000:]}"


@pytest.mark.parametrize("page", ["README.md", os.path.join("docs", "interop.md")])
def test_pytorch_is_installed_from_its_cpu_index(page):
    """The plain PyPI wheel of torch pulls the CUDA libraries (about 2 GB): every PyTorch install
    a page gives is the pinned one from PyTorch's CPU wheel index (.ci/run alone keeps the plain
    pin, which its machine resolves to a local CPU build)."""
    text = open(os.path.join(ROOT, page), encoding="utf-8").read()
    assert TORCH_INSTALL in text, f"{page} does not give PyTorch's CPU install: {TORCH_INSTALL}"
    for match in re.finditer(r"pip install torch[^\s`]*(?: --index-url [^\s`]+)?", text):
        assert match.group(0) == TORCH_INSTALL, f"{page}: {match.group(0)!r} instead of {TORCH_INSTALL!r}"
