"""Every ```python block of docs/interop.md runs on its own, as a reader would paste it, in a folder
holding what the page assumes: alexnet.safetensors and alexnet.onnx exported from a trained run,
and photo.jpg, an image of one of its classes."""

import os
import shutil
import subprocess
import sys

import pytest

from ..test_readme import python_blocks
from ..train.conftest import ROOT
from .conftest import need

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
            need(module, "pip install torch==2.13.0" if module == "torch" else 'pip install -e ".[interop]"')
    proc = subprocess.run([sys.executable, "-c", code], cwd=folder, capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PYTHONPATH=ROOT))
    assert proc.returncode == 0, f"docs/interop.md block at line {line} failed:\n{proc.stderr[-2000:]}"
