"""Every ```python block of README.md, LEARN.md and every page under docs/ runs on its own, in a
fresh interpreter, as a reader would paste it. Two pages are run elsewhere, with what they need:
docs/notebooks/ in their own CI step (tests/test_notebook.py), and docs/interop.md, whose blocks
read the files its export commands write, by tests/interop/test_docs.py. Blocks that only show the shape of code, or an excerpt of the source, are fenced as plain
``` or ```text with a note saying so; shell commands are fenced ```bash and are not run here."""

import glob
import os
import subprocess
import sys

import pytest

from .test_readme import ROOT, python_blocks

ELSEWHERE = ("notebooks", "interop.md")  # run by tests/test_notebook.py and tests/interop/test_docs.py
PAGES = [os.path.join(ROOT, name) for name in ("README.md", "LEARN.md")] + sorted(
    page for page in glob.glob(os.path.join(ROOT, "docs", "**", "*.md"), recursive=True)
    if os.path.relpath(page, os.path.join(ROOT, "docs")).split(os.sep)[0] not in ELSEWHERE)
BLOCKS = [(os.path.relpath(page, ROOT), line, code) for page in PAGES for line, code in python_blocks(page)]


def test_the_pages_have_examples():
    pages = {page for page, _, _ in BLOCKS}
    assert {"README.md", "LEARN.md", "docs/layers/README.md", "docs/gpu.md", "docs/gradcheck.md"} <= pages
    assert len(BLOCKS) >= 20


@pytest.mark.parametrize("page,line,code", BLOCKS, ids=[f"{page}:{line}" for page, line, _ in BLOCKS])
def test_block_runs_on_its_own(page, line, code, tmp_path):
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300, env=dict(os.environ, PYTHONPATH=ROOT))
    assert proc.returncode == 0, f"{page} block at line {line} failed:\n{proc.stderr[-2000:]}"
