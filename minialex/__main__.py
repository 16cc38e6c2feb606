"""``python -m minialex <command>`` (and the ``minialex`` console command): train, train-cifar10,
predict or prepare, the same programs as minialex-train, minialex-train-cifar10, minialex-predict
and minialex-prepare, and learn, the learner's exercises (minialex/learn/)."""

import os
import sys

USAGE = """\
usage: {prog} <command> [options]

commands:
  train          train AlexNet on an ImageNet-style image folder, or on the embedded dataset
  train-cifar10  train the CIFAR-10 network on the python batches of CIFAR-10
  predict        print the most probable classes of images under a checkpoint
  prepare        prepare an image folder or shards once at 256 x 256, as JPEG tar shards
  learn          the exercises: 'learn start DIR' copies them out, 'learn check OP FILE' grades one

'{prog} <command> --help' describes each command's options (docs/training.md).
"""


def _commands():
    from .data.prepare import main as prepare_main
    from .learn import cli as learn_cli
    from .train import cli, predict
    return {"train": cli.main, "train-cifar10": cli.main_cifar10, "predict": predict.main,
            "prepare": prepare_main, "learn": learn_cli.main}


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    prog = "minialex" if os.path.basename(sys.argv[0] or "") == "minialex" else "python -m minialex"
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE.format(prog=prog), end="", file=sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    commands = _commands()
    if argv[0] not in commands:
        print(f"error: unknown command {argv[0]!r}; choose one of {', '.join(commands)} "
              f"(see {prog} --help)", file=sys.stderr)
        return 2
    return commands[argv[0]](argv[1:], prog=f"{prog} {argv[0]}")


if __name__ == "__main__":
    sys.exit(main())
