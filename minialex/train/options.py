"""Argument parsing shared by the command-line scripts: every bad value ends in one line that
names the flag and the allowed range, exit code 2, before anything is read or written."""

import argparse
import math

from .errors import EXIT_USAGE, UsageError  # noqa: F401  (UsageError: re-exported for the scripts)


class Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors are one line on stderr (argparse prints the usage too)."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"error: {message} (see {self.prog} --help)\n")


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the description and epilog as written; wraps option help normally."""

    def __init__(self, prog):
        super().__init__(prog, max_help_position=32, width=100)


def int_at_least(low, high=None):
    """An argparse type: an integer in [low, high] (no upper bound when high is None)."""
    allowed = f"an integer from {low} to {high}" if high is not None else f"an integer >= {low}"

    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {allowed}, got {text!r}") from None
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be {allowed}, got {value}")
        return value

    parse.__name__ = "integer"
    return parse


def number_in(low, high=None, low_open=False, high_open=False):
    """An argparse type: a finite float in the interval from low to high, ends open or closed."""
    left = f"> {low:g}" if low_open else f">= {low:g}"
    if high is None:
        allowed = f"a number {left}"
    else:
        allowed = f"a number in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"

    def parse(text):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {allowed}, got {text!r}") from None
        bad = (not math.isfinite(value) or value < low or (low_open and value == low)
               or (high is not None and (value > high or (high_open and value == high))))
        if bad:
            raise argparse.ArgumentTypeError(f"must be {allowed}, got {text}")
        return value

    parse.__name__ = "number"
    return parse


def run_main(body, argv):
    """Call ``body(argv)``; turn SystemExit from argparse (--help, bad arguments) into its code."""
    try:
        return body(argv)
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else EXIT_USAGE)
