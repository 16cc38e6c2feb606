"""minialex.learn: the learner's exercises and their checker (LEARN.md).

    python -m minialex learn start DIR        copy the exercise files (one per op) into DIR
    python -m minialex learn check OP FILE    grade FILE's pair for OP

From Python::

    from minialex.learn import check
    report = check("conv2d", "conv2d.py")
    print(report); report.passed

The exercise files live in minialex/learn/exercises/ (copy them out, never edit them there); the
checker is minialex/learn/checker.py, the commands minialex/learn/cli.py.
"""

from .checker import OPS, LearnInputError, Report, check
from .cli import start

__all__ = ["check", "start", "OPS", "Report", "LearnInputError"]
