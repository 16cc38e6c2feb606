"""``python -m minialex learn``: ``start DIR`` copies the exercise files out, ``check OP FILE``
grades one. Exit codes as the training commands' (minialex/train/errors.py): 0 all correct (or
the files were copied), 1 something in the learner's code is wrong, 2 bad input (unknown op,
missing file, a file that does not import, a file that would be overwritten), always one line on
stderr, never a traceback."""

import argparse
import os
import shutil
import sys

from .checker import OPS, LearnInputError, check

EXIT_DONE, EXIT_WRONG, EXIT_USAGE = 0, 1, 2
EXERCISES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "exercises")


def exercise_files():
    """The exercise file names, one per op, in the order of OPS."""
    return [f"{op}.py" for op in OPS]


def start(directory):
    """Copy the exercise files into ``directory`` (created if needed); refuses, copying nothing,
    when any of them is already there. Returns the paths written."""
    targets = [os.path.join(directory, name) for name in exercise_files()]
    existing = [t for t in targets if os.path.lexists(t)]
    if existing:
        raise LearnInputError(f"{existing[0]} exists; refusing to overwrite it "
                              f"({len(existing)} of the {len(targets)} exercise files are already in {directory})")
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise LearnInputError(f"{directory} exists and is not a directory")
    try:
        os.makedirs(directory, exist_ok=True)
        for name, target in zip(exercise_files(), targets):
            shutil.copyfile(os.path.join(EXERCISES, name), target)
    except OSError as e:
        raise LearnInputError(f"cannot write the exercises to {directory}: {e.strerror or e}") from None
    return targets


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line and exit 2, as the training commands do
        self.exit(EXIT_USAGE, f"error: {message} (see {self.prog} --help)\n")


def build_parser(prog=None):
    parser = _Parser(prog=prog, description="Exercises with a checker: write each op's forward and "
                     "backward yourself, then have them graded (LEARN.md).")
    commands = parser.add_subparsers(dest="command", metavar="{start,check}", parser_class=_Parser)
    commands.required = True
    p_start = commands.add_parser("start", help="copy the exercise files (one per op) into DIR",
                                  description="Copy the exercise files (one per op) into DIR; never "
                                              "overwrites a file.")
    p_start.add_argument("dir", metavar="DIR")
    p_check = commands.add_parser("check", help="grade FILE's forward and backward for OP",
                                  description="Grade FILE's pair for OP against the naive loops, the "
                                              "references and finite differences.")
    p_check.add_argument("op", metavar="OP", choices=OPS, help=f"one of: {', '.join(OPS)}")
    p_check.add_argument("file", metavar="FILE")
    return parser


def main(argv=None, prog="python -m minialex learn"):
    try:
        args = build_parser(prog).parse_args(sys.argv[1:] if argv is None else argv)
    except SystemExit as e:  # --help (0) or a usage error, already printed as one line (2)
        return e.code
    try:
        if args.command == "start":
            written = start(args.dir)
            print(f"copied {len(written)} exercise files into {args.dir}:")
            for path in written:
                print(f"  {path}")
            print(f"fill in the marked blocks, then: {prog} check conv2d {written[0]}")
            return EXIT_DONE
        report = check(args.op, args.file)
    except LearnInputError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    print(report)
    return EXIT_DONE if report.passed else EXIT_WRONG


if __name__ == "__main__":
    sys.exit(main())
