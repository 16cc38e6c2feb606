"""docs/notebooks/walkthrough.ipynb, run top to bottom in a Jupyter kernel (nbclient + ipykernel),
so it never goes stale: every cell must run without error, and the cells that make a claim must
print it (the shapes of every layer, the functional pairs agreeing with the layers, gradient-check
errors below 1e-6, the training loss falling, the filter pictures).

The notebook is stored without outputs (its first cell says so); that is checked without Jupyter.
Executing it needs the notebook extra: pip install -e ".[notebook]". Without it these tests skip,
unless MINIALEX_REQUIRE_NOTEBOOK=1 (as in CI, whose .ci/run installs the extra), where they fail.
"""

import importlib
import json
import os
import re
import time
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "docs" / "notebooks" / "walkthrough.ipynb"
INSTALL = 'pip install -e ".[notebook]"'
CELL_TIMEOUT_S = 120  # per cell; the whole notebook takes a few seconds

# (name, input shape, output shape) for the tiny preset and the notebook's batch of 8 images
SHAPES = [
    ("conv1", (8, 3, 24, 24), (8, 4, 24, 24)), ("relu1", (8, 4, 24, 24), (8, 4, 24, 24)),
    ("lrn1", (8, 4, 24, 24), (8, 4, 24, 24)), ("pool1", (8, 4, 24, 24), (8, 4, 11, 11)),
    ("conv2", (8, 4, 11, 11), (8, 8, 11, 11)), ("relu2", (8, 8, 11, 11), (8, 8, 11, 11)),
    ("lrn2", (8, 8, 11, 11), (8, 8, 11, 11)), ("pool2", (8, 8, 11, 11), (8, 8, 5, 5)),
    ("conv3", (8, 8, 5, 5), (8, 8, 5, 5)), ("relu3", (8, 8, 5, 5), (8, 8, 5, 5)),
    ("conv4", (8, 8, 5, 5), (8, 8, 5, 5)), ("relu4", (8, 8, 5, 5), (8, 8, 5, 5)),
    ("conv5", (8, 8, 5, 5), (8, 8, 5, 5)), ("relu5", (8, 8, 5, 5), (8, 8, 5, 5)),
    ("pool5", (8, 8, 5, 5), (8, 8, 2, 2)), ("flatten", (8, 8, 2, 2), (8, 32)),
    ("fc6", (8, 32), (8, 8)), ("relu6", (8, 8), (8, 8)), ("drop6", (8, 8), (8, 8)),
    ("fc7", (8, 8), (8, 8)), ("relu7", (8, 8), (8, 8)), ("drop7", (8, 8), (8, 8)),
    ("fc8", (8, 8), (8, 4)),
]


def _need(module):
    reason = f"needs {module} to execute the notebook: {INSTALL}"
    if os.environ.get("MINIALEX_REQUIRE_NOTEBOOK") == "1":
        try:
            return importlib.import_module(module)
        except ImportError:
            pytest.fail(f"MINIALEX_REQUIRE_NOTEBOOK=1 but {reason}", pytrace=False)
    return pytest.importorskip(module, reason=reason)


def _stored():
    return json.loads(NOTEBOOK.read_text(encoding="utf-8"))


def _numbers(text, label):
    """Every float printed after ``label`` on a line."""
    return [float(v) for v in re.findall(re.escape(label) + r"\s*([-+0-9.eE]+)", text)]


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """(the executed notebook, its stdout joined, the PNG outputs, seconds it took)."""
    nbformat = _need("nbformat")
    nbclient = _need("nbclient")
    _need("ipykernel")
    nb = nbformat.read(str(NOTEBOOK), as_version=4)
    workdir = tmp_path_factory.mktemp("notebook")  # the kernel's working directory
    start = time.perf_counter()
    client = nbclient.NotebookClient(nb, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                                     resources={"metadata": {"path": str(workdir)}})
    client.execute()  # raises CellExecutionError, with the cell and its traceback, on any error
    seconds = time.perf_counter() - start
    text, pngs = [], []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for out in cell.get("outputs", []):
            assert out.output_type != "error", f"cell failed: {out.get('ename')}: {out.get('evalue')}"
            if out.output_type == "stream" and out.name == "stdout":
                text.append(out.text)
            elif "image/png" in out.get("data", {}):
                pngs.append(out.data["image/png"])
    return nb, "".join(text), pngs, seconds


def test_stored_without_outputs_and_says_so():
    nb = _stored()
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert code, "the notebook has no code cells"
    for i, cell in enumerate(code):
        assert cell.get("outputs") == [] and cell.get("execution_count") is None, (
            f"code cell {i} is stored with outputs; clear them (CI executes the notebook)")
    first = "".join(nb["cells"][0]["source"])
    assert nb["cells"][0]["cell_type"] == "markdown" and "without outputs" in first
    assert nb["metadata"]["kernelspec"]["name"] == "python3"


def test_runs_without_error_in_reasonable_time(executed):
    nb, _, _, seconds = executed
    assert all(c.get("execution_count") for c in nb.cells if c.cell_type == "code")
    assert seconds < 60, f"the notebook took {seconds:.1f} s; keep it under a minute"


def test_prints_every_layer_shape(executed):
    _, text, _, _ = executed
    printed = re.findall(r"^SHAPE (\w+)\s+\w+\s+(\([0-9, ]+\))\s+-> (\([0-9, ]+\))$", text, re.M)
    assert [(n, eval(a), eval(b)) for n, a, b in printed] == SHAPES  # noqa: S307 (tuples of ints)
    grads = re.findall(r"^GRAD (\w+)\s+d\(output\) (\([0-9, ]+\))\s+-> d\(input\) (\([0-9, ]+\))$", text, re.M)
    # the backward walks the same layers in reverse, each gradient the shape of what it differentiates
    assert [(n, eval(b), eval(a)) for n, a, b in reversed(grads)] == SHAPES  # noqa: S307


def test_functional_pairs_agree_with_the_layers(executed):
    _, text, _, _ = executed
    (maxdiff,) = _numbers(text, "MAXDIFF forward functional vs layers:")
    (worst,) = _numbers(text, "RELERR backward functional vs layers, worst parameter:")
    (dx,) = _numbers(text, "RELERR input gradient:")
    assert maxdiff < 1e-12 and worst < 1e-9 and dx < 1e-9, (maxdiff, worst, dx)


def test_gradient_checks_pass_in_float64(executed):
    _, text, _, _ = executed
    errors = _numbers(text, "GRADCHECK worst relative error:") + _numbers(
        text, "GRADCHECK LRN input gradient relative error:")
    assert len(errors) == 2, text
    assert all(0 <= e < 1e-6 for e in errors), errors


def test_loss_falls_and_the_filters_change(executed):
    _, text, pngs, _ = executed
    m = re.search(r"^LOSS first ([0-9.]+) last ([0-9.]+)$", text, re.M)
    assert m, text
    first, last = float(m.group(1)), float(m.group(2))
    assert last < 0.5 * first, (first, last)
    changes = re.findall(r"^FILTER (\d): \|w_before\| ([0-9.]+)\s+\|w_after - w_before\| ([0-9.]+)", text, re.M)
    assert [int(i) for i, _, _ in changes] == [0, 1, 2, 3]
    assert all(float(c) > 0 for _, _, c in changes)
    # the data strip, conv1 before training, and before/after side by side
    assert len(pngs) == 3
