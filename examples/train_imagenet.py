"""Train the paper's AlexNet on ImageNet (or, with no --data, on the embedded dataset).

    python examples/train_imagenet.py                              # embedded dataset, CPU, minutes
    python examples/train_imagenet.py --data /data/imagenet --backend cupy --devices 0,1

The same program as the minialex-train command. All flags: --help. The loop itself
is minialex/train/trainer.py; docs/training.md explains it.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # run from a checkout

from minialex.train.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
