"""Print the top-5 classes of an image under a trained minialex checkpoint.

    python examples/predict.py photo.jpg --checkpoint runs/alexnet-embedded/checkpoint.npz
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # run from a checkout

from minialex.data import DataError  # noqa: E402
from minialex.train.checkpoint import CheckpointError  # noqa: E402
from minialex.train.predict import Predictor  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description="Top-k classes of one image under a minialex checkpoint.")
    p.add_argument("image")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("-k", "--topk", type=int, default=5)
    args = p.parse_args(argv)
    try:
        if not os.path.isfile(args.image):
            raise DataError(f"image not found: {args.image}")
        results = Predictor(args.checkpoint).topk(args.image, args.topk)
    except (DataError, CheckpointError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{args.image}:")
    for rank, (prob, wnid, name) in enumerate(results, 1):
        print(f"  {rank}. {100 * prob:6.2f}%  {name} ({wnid})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
