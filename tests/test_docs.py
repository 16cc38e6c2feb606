"""Every ```python block of the pages that teach the mathematics and the implementations
(docs/layers/*.md, docs/backend.md, docs/gpu.md, docs/gradcheck.md, docs/optim.md) runs on its
own, in a fresh interpreter, as a reader would paste it. Blocks that only show the shape of code
are fenced without a language."""

import glob
import os
import subprocess
import sys

import pytest

from .test_readme import ROOT, python_blocks

PAGES = sorted(glob.glob(os.path.join(ROOT, "docs", "layers", "*.md"))) + [
    os.path.join(ROOT, "docs", name) for name in ("backend.md", "gpu.md", "gradcheck.md", "optim.md")]
BLOCKS = [(os.path.relpath(page, ROOT), line, code) for page in PAGES for line, code in python_blocks(page)]


def test_the_pages_have_examples():
    pages = {page for page, _, _ in BLOCKS}
    assert "docs/layers/README.md" in pages and "docs/gpu.md" in pages and len(BLOCKS) >= 10


@pytest.mark.parametrize("page,line,code", BLOCKS, ids=[f"{page}:{line}" for page, line, _ in BLOCKS])
def test_block_runs_on_its_own(page, line, code, tmp_path):
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300, env=dict(os.environ, PYTHONPATH=ROOT))
    assert proc.returncode == 0, f"{page} block at line {line} failed:\n{proc.stderr[-2000:]}"
