"""Train the scaled-down AlexNet on a local copy of CIFAR-10 (the python version).

    python examples/train_cifar10.py --data ~/data/cifar-10-batches-py --epochs 30

The same program as the minialex-train-cifar10 command. Get cifar-10-python.tar.gz
from https://www.cs.toronto.edu/~kriz/cifar.html and unpack it; its batches are
Python pickles, so use a copy from a source you trust.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # run from a checkout

from minialex.train.cli import main_cifar10  # noqa: E402

if __name__ == "__main__":
    sys.exit(main_cifar10())
