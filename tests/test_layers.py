"""The package's parts import each other in one direction only, lowest first:

    backend, atomic, kernels, nn, gradcheck, optim, parallel, models, data, weights, interop,
    train, __main__

A part is a top-level subpackage (minialex/nn/... is ``nn``) or a top-level module
(minialex/backend.py is ``backend``). A part may import any part below it, never one above it,
and no two parts may import each other through any chain (a cycle). Every module under
minialex/ is read with ``ast``, so nothing is imported to check it; every import counts,
also one inside a function (a lazy import is still a dependency), relative ones resolved
(``from ..x import y``, ``from . import x``), and ``importlib.import_module("minialex....")``
with a literal name.

The package root (minialex/__init__.py) is exempt as an importer: it imports its parts to
re-export them. A part that imports the root itself (``import minialex``, ``from minialex
import get_backend``) is a violation: the root imports parts of its own (backend, gradcheck,
nn, optim), so that is a hidden dependency on them, or a cycle.

``python tests/test_layers.py`` prints the graph between the parts, with one place per edge.
"""

import ast
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = "minialex"

# Lowest first. Parts on one level may import each other (a cycle between them still fails);
# parts on different levels only downward. Measured against the tree, not only intended:
# kernels imports backend alone, so it lies below nn (nn dispatches to it); parallel.two_column
# is the layer pair AlexNet(devices=(a, b)) is built from and imports nothing from models,
# so parallel lies below models (data's loader takes batch_share from parallel.data_parallel).
LAYERS = (
    ("backend",),
    ("atomic",),
    ("kernels",),
    ("nn",),
    ("gradcheck",),
    ("optim",),
    ("parallel",),
    ("models",),
    ("data",),
    ("weights",),
    ("interop",),
    ("train", "learn"),
    ("__main__",),
)
ROOT_PART = "(root)"  # what an import of the package itself maps to


# -- reading the imports ------------------------------------------------------------------------
def modules(package_dir, package=PACKAGE):
    """[(path, dotted module name, is a package's __init__)] of every .py file under ``package_dir``."""
    found = []
    for folder, dirs, files in os.walk(package_dir):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        rel = os.path.relpath(folder, package_dir)
        prefix = [package] + ([] if rel == "." else rel.split(os.sep))
        for name in sorted(files):
            if name.endswith(".py"):
                is_init = name == "__init__.py"
                dotted = ".".join(prefix if is_init else prefix + [name[:-3]])
                found.append((os.path.join(folder, name), dotted, is_init))
    return found


def imported_names(path, module, is_init):
    """[(dotted name, line)] of every import in the file: the whole tree (imports inside
    functions too), relative imports resolved against ``module``'s package."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    package = module if is_init else module.rpartition(".")[0]
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # from . import x, from ..x import y
                base = package.split(".")
                if node.level - 1 >= len(base):
                    continue  # above the top package: Python refuses it, nothing to map
                base = ".".join(base[:len(base) - (node.level - 1)])
                source = f"{base}.{node.module}" if node.module else base
            else:
                source = node.module
            # source.name for each name: `from minialex import backend` is the part backend, and
            # `from minialex.nn import Conv2d` the part nn; a name that is no part
            # (`from minialex import SGD`) maps to the root
            names += [(source if alias.name == "*" else f"{source}.{alias.name}", node.lineno)
                      for alias in node.names]
        elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)
              and getattr(node.func, "attr", getattr(node.func, "id", None)) in ("import_module", "__import__")):
            names.append((node.args[0].value, node.lineno))
    return names


def part_of(dotted, parts, package=PACKAGE):
    """The part a dotted name belongs to, ROOT_PART for the package itself (or a name its
    __init__ defines), None outside the package."""
    pieces = dotted.split(".")
    if pieces[0] != package:
        return None
    if len(pieces) == 1 or pieces[1] not in parts:
        return ROOT_PART
    return pieces[1]


def import_graph(package_dir=os.path.join(ROOT, PACKAGE), package=PACKAGE):
    """{(importing part, imported part): [(file relative to the package's folder, line, name)]},
    for imports between different parts (the root exempt as an importer)."""
    found = modules(package_dir, package)
    parts = {dotted.split(".")[1] for _, dotted, _ in found if dotted != package}
    base = os.path.dirname(os.path.abspath(package_dir))
    edges = {}
    for path, dotted, is_init in found:
        if dotted == package:
            continue  # the root re-exports its parts
        source = dotted.split(".")[1]
        for name, line in imported_names(path, dotted, is_init):
            target = part_of(name, parts, package)
            if target is None or target == source:
                continue
            place = (os.path.relpath(path, base).replace(os.sep, "/"), line, name)
            places = edges.setdefault((source, target), [])
            if place[:2] not in [p[:2] for p in places]:  # `from x import a, b`: one place per line
                places.append(place)
    return edges


# -- judging the graph --------------------------------------------------------------------------
def find_cycle(edges):
    """A cycle of parts, [a, b, ..., a], or None (a depth-first search for an edge back to a
    part still on the search path)."""
    after = {}
    for source, target in edges:
        after.setdefault(source, []).append(target)
    state, path = {}, []  # state: 1 on the current path, 2 done

    def visit(part):
        state[part] = 1
        path.append(part)
        for nxt in sorted(after.get(part, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        state[part] = 2
        path.pop()
        return None

    for part in sorted(after):
        if part not in state:
            cycle = visit(part)
            if cycle:
                return cycle
    return None


def describe_cycle(cycle, edges):
    """One line: the parts of the cycle and, for each step, the first place that makes it."""
    steps = []
    for a, b in zip(cycle, cycle[1:]):
        file, line, name = edges[(a, b)][0]
        steps.append(f"{a} -> {b} ({file}:{line} imports {name})")
    return f"import cycle between parts {' -> '.join(cycle)}: " + "; ".join(steps)


def level_of(layers=LAYERS):
    return {part: i for i, level in enumerate(layers) for part in level}


def upward_imports(edges, layers=LAYERS, package=PACKAGE):
    """One line per import that flows the wrong way: into a part above the importer, or into the
    package root."""
    level = level_of(layers)
    lines = []
    for (source, target), places in sorted(edges.items()):
        if target == ROOT_PART:
            why = (f"the package root ({package}), which imports parts of its own (a hidden dependency, or a "
                   "cycle); import from the part itself")
        elif target in level and source in level and level[target] > level[source]:
            why = f"{target}, a part above {source} (order: {', '.join(p for lv in layers for p in lv)})"
        else:
            continue
        lines += [f"{file}:{line}: {source} imports {name} from {why}" for file, line, name in places]
    return lines


def describe(edges):
    """The graph, one edge a line with its number of places and the first of them."""
    return "\n".join(f"{a:>10} -> {b:<10} {len(p):3} import(s), e.g. {p[0][0]}:{p[0][1]} {p[0][2]}"
                     for (a, b), p in sorted(edges.items()))


# -- the package ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def graph():
    return import_graph()


def test_every_part_has_a_level():
    parts = {dotted.split(".")[1] for _, dotted, _ in modules(os.path.join(ROOT, PACKAGE)) if dotted != PACKAGE}
    level = level_of()
    missing = sorted(parts - set(level))
    assert not missing, (f"{PACKAGE}/ has parts the layer order does not place: {', '.join(missing)}; "
                         "add each to LAYERS in tests/test_layers.py, above what it imports")


def test_no_import_cycle_between_parts(graph):
    cycle = find_cycle(graph)
    assert cycle is None, describe_cycle(cycle, graph)


def test_imports_flow_downward(graph):
    wrong = upward_imports(graph)
    assert not wrong, f"{len(wrong)} import(s) flow upward:\n" + "\n".join(wrong)


# -- the checker itself: it can fail ---------------------------------------------------------------
def test_the_checker_finds_a_cycle_and_an_upward_import():
    """A synthetic graph a -> b -> c -> a (and c -> d): the cycle is found and named in one line;
    without c -> a there is none; an order that puts the importers lower is refused per import."""
    edges = {(a, b): [(f"pkg/{a}.py", n, f"pkg.{b}")]
             for n, (a, b) in enumerate([("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")], 1)}
    cycle = find_cycle(edges)
    assert cycle == ["a", "b", "c", "a"]
    line = describe_cycle(cycle, edges)
    assert "\n" not in line and line.startswith("import cycle between parts a -> b -> c -> a: ")
    assert "c -> a (pkg/c.py:3 imports pkg.a)" in line
    assert find_cycle({("a", "a"): edges[("a", "b")]}) == ["a", "a"]
    del edges[("c", "a")]
    assert find_cycle(edges) is None
    assert upward_imports(edges, layers=(("d",), ("c",), ("b",), ("a",))) == []
    assert upward_imports(edges, layers=(("c", "d"), ("b",), ("a",))) == []  # one level: either way
    assert upward_imports(edges, layers=(("a",), ("b",), ("d",), ("c",))) == [
        "pkg/a.py:1: a imports pkg.b from b, a part above a (order: a, b, d, c)",
        "pkg/b.py:2: b imports pkg.c from c, a part above b (order: a, b, d, c)"]


def test_the_reader_resolves_relative_lazy_and_dynamic_imports(tmp_path):
    """A small package with every kind of import the real one uses."""
    files = {
        "__init__.py": "from . import low\n",
        "low.py": "import os\n",
        "mid/__init__.py": "from ..low import x\nfrom .inner import y\n",
        "mid/inner.py": "def f():\n    from ... import nothing\n    from .. import low\n",
        "top.py": "import importlib\nimport pkg.mid.inner as m\n\n\ndef g():\n"
                  "    import pkg\n    return importlib.import_module('pkg.low')\n",
        "side/__init__.py": "",
        "side/deep/__init__.py": "",
        "side/deep/leaf.py": "from ...top import g\nfrom pkg import mid, VERSION\n",
    }
    for name, text in files.items():
        path = tmp_path / "pkg" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    edges = import_graph(str(tmp_path / "pkg"), "pkg")
    lines = {edge: [(f, n) for f, n, _ in places] for edge, places in edges.items()}
    assert lines == {
        ("mid", "low"): [("pkg/mid/__init__.py", 1), ("pkg/mid/inner.py", 3)],
        ("top", "mid"): [("pkg/top.py", 2)],
        ("top", ROOT_PART): [("pkg/top.py", 6)],
        ("top", "low"): [("pkg/top.py", 7)],
        ("side", "top"): [("pkg/side/deep/leaf.py", 1)],
        ("side", "mid"): [("pkg/side/deep/leaf.py", 2)],
        ("side", ROOT_PART): [("pkg/side/deep/leaf.py", 2)],
    }
    layers = (("low",), ("mid",), ("top",), ("side",))
    assert find_cycle(edges) is None
    assert upward_imports(edges, layers, package="pkg") == [
        "pkg/side/deep/leaf.py:2: side imports pkg.VERSION from the package root (pkg), which imports parts of "
        "its own (a hidden dependency, or a cycle); import from the part itself",
        "pkg/top.py:6: top imports pkg from the package root (pkg), which imports parts of its own (a hidden "
        "dependency, or a cycle); import from the part itself"]


if __name__ == "__main__":
    found = import_graph()
    print(describe(found))
    cycle = find_cycle(found)
    print(describe_cycle(cycle, found) if cycle else "no cycle between parts")
    print("\n".join(upward_imports(found)) or "no import flows upward")
    sys.exit(1 if cycle or upward_imports(found) else 0)
