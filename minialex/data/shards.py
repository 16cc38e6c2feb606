"""Write an ImageFolder as WebDataset tar shards:

    python -m minialex.data.shards FOLDER OUT --shard-size 1000

FOLDER holds train/ and/or val/ (class folders of images) or class folders
directly; OUT receives train-000000.tar ..., val-000000.tar ..., classes.txt,
synset_words.txt (when FOLDER has one) and the sample-count index. Bad input
ends with one line on stderr and exit code 2, and nothing is left behind.
The library side is tarshards.py; the layout is described in docs/data.md.
"""

import argparse
import sys

from .errors import DataError
from .tarshards import write_shards

EXIT_USAGE, EXIT_INTERRUPTED = 2, 130


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m minialex.data.shards",
                                description="Write an ImageFolder as tar shards in the WebDataset layout.")
    p.add_argument("folder", help="image root: train/ and/or val/ with class folders, or class folders")
    p.add_argument("out", help="output folder (must not exist or be empty, unless --overwrite)")
    p.add_argument("--shard-size", type=int, default=1000, help="samples per shard")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty output folder")
    p.add_argument("--seed", type=int, default=0, help="seed of the order the samples are written in")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    try:
        summary = write_shards(args.folder, args.out, shard_size=args.shard_size, overwrite=args.overwrite,
                               seed=args.seed, progress=not args.quiet)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted; nothing was written", file=sys.stderr)
        return EXIT_INTERRUPTED
    parts = ", ".join(f"{name}: {n} samples in {k} shard{'s' if k != 1 else ''}"
                      for name, (n, k) in summary.items())
    print(f"wrote {args.out} ({parts})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
