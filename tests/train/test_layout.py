"""train/ stays readable: every file at most 350 lines, opening with a docstring that says its job
(docs/training.md, "The module layout of train/")."""

import ast
import os

import minialex.train

FOLDER = os.path.dirname(minialex.train.__file__)


def test_every_train_file_is_short_and_says_what_it_is():
    for name in sorted(os.listdir(FOLDER)):
        if not name.endswith(".py"):
            continue
        with open(os.path.join(FOLDER, name), encoding="utf-8") as f:
            text = f.read()
        assert len(text.splitlines()) <= 350, f"minialex/train/{name} has {len(text.splitlines())} lines (at most 350)"
        doc = ast.get_docstring(ast.parse(text))
        assert doc and len(doc.split()) >= 8, f"minialex/train/{name} does not open with a docstring saying its job"
