"""The paper's Figure 4 (right): for each test image, the six training images whose last hidden
layer (fc7, after its ReLU) answers most like it, by Euclidean distance between the feature vectors.

    python examples/neighbours.py --checkpoint runs/alexnet-embedded \\
        --queries ~/.cache/minialex/synthetic/val/s0000001/s0000001_00000.JPEG ... --out neighbours.png

--data is an ImageNet-style root (its train/ class folders are searched); without it, the
embedded dataset. The training set's features are computed once, with a progress bar, and
cached beside the checkpoint in a .npz keyed by the checkpoint's bytes and the data's file list,
so a second figure from the same checkpoint and data costs only the queries. docs/interop.md.
"""

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # run from a checkout

import numpy as np  # noqa: E402

from minialex.data import DataError, DataLoader, ImageFolder, dataset_fingerprint, ensure_synthetic_dataset  # noqa: E402
from minialex.data.stats import subset_indices  # noqa: E402
from minialex.interop.figure4 import draw_neighbours, features_key, nearest, training_features  # noqa: E402
from minialex.models.architecture import fc7_activation, forward_order  # noqa: E402
from minialex.weights.checkpoint import CheckpointError  # noqa: E402
from minialex.train.options import EXIT_USAGE, HelpFormatter, Parser, int_at_least, run_main  # noqa: E402
from minialex.train.predict import Predictor  # noqa: E402


def build_parser():
    p = Parser(prog="examples/neighbours.py", formatter_class=HelpFormatter,
               description="Figure 4 (right) of the AlexNet paper: each query image next to the training images "
                           "whose fc7 feature vectors are nearest to its own (Euclidean distance).",
               epilog="The queries should be images the network was not trained on (validation or test "
                      "images): a training image finds itself first, at distance 0.")
    p.add_argument("--checkpoint", required=True, metavar="CKPT",
                   help="a checkpoint or run folder (its checkpoint_best.npz), or a .safetensors/.onnx file")
    p.add_argument("--data", metavar="DIR",
                   help="ImageNet-style root whose train/<class>/ images are searched (default: the embedded "
                        "dataset, generated on first use)")
    p.add_argument("--queries", nargs="+", required=True, metavar="IMAGE", help="the test images, one row each")
    p.add_argument("--out", required=True, metavar="OUT.png", help="the picture to write")
    p.add_argument("-k", "--neighbours", type=int_at_least(1), default=6, metavar="K",
                   help="training images per query (default 6, as in the paper)")
    p.add_argument("--max-images", type=int_at_least(1), metavar="N",
                   help="search only N evenly spaced training images (every class stays); the features of "
                        "ImageNet's 1.28 M images would take 21 GB (default: all)")
    p.add_argument("--layer", default=None, metavar="NAME",
                   help="the layer whose output is compared (default fc7's activations, relu7 in the paper's "
                        "net and tanh7 with --activation tanh: the paper's choice; pool5 or relu6 show what "
                        "earlier layers find alike)")
    p.add_argument("-b", "--batch-size", type=int_at_least(1), default=64, metavar="N",
                   help="images per forward pass while computing the features (default 64)")
    p.add_argument("-j", "--workers", type=int_at_least(1, 256), default=min(4, os.cpu_count() or 1), metavar="N",
                   help="image-decoding threads")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def cache_file(predictor, key, layer, out):
    """Beside the checkpoint (``<checkpoint>.<layer>-<key>.npz``), or beside --out when that folder
    is not writable."""
    stem = os.path.splitext(os.path.basename(predictor.path))[0]
    name = f"{stem}.{layer}-{key[:12]}.npz"
    folder = os.path.dirname(os.path.abspath(predictor.path))
    if not os.access(folder, os.W_OK):
        folder = os.path.dirname(os.path.abspath(out))
    return os.path.join(folder, name)


def run(argv):
    args = build_parser().parse_args(argv)
    if not args.out.lower().endswith(".png"):
        raise DataError(f"argument --out: must name a .png file, got {args.out}")
    missing = [q for q in args.queries if not os.path.isfile(q)]
    if missing:
        raise DataError(f"query image not found: {missing[0]}" + (f" (and {len(missing) - 1} more)"
                                                                  if len(missing) > 1 else ""))
    predictor = Predictor(args.checkpoint)
    fc7 = fc7_activation(predictor.model.cfg)
    args.layer = args.layer or fc7
    layers = forward_order(predictor.model.cfg)
    if args.layer not in layers:
        raise DataError(f"argument --layer: {args.layer!r} is no layer of this network; choose one of "
                        f"{', '.join(layers)}")
    root = args.data if args.data is not None else ensure_synthetic_dataset()
    train = ImageFolder(root, "train")
    index = subset_indices(len(train), args.max_images)  # feature row j is training image index[j]
    if args.neighbours > len(index):
        raise DataError(f"argument -k: {args.neighbours} neighbours asked for, {len(index)} training images "
                        "to search")
    queries = np.stack([predictor.preprocess(q) for q in args.queries])  # bad files stop us before the work

    loader = DataLoader(train, predictor.transform, batch_size=args.batch_size, shuffle=False, seed=0,
                        workers=args.workers, on_error="raise", max_images=args.max_images)
    key = features_key(predictor.path, dataset_fingerprint(train, predictor.transform.size_resize, args.max_images),
                       args.layer, predictor.transform)
    cache = cache_file(predictor, key, args.layer, args.out)
    t0 = time.perf_counter()
    features, labels, cached = training_features(predictor.model, loader, cache, key, args.layer,
                                                 progress=not args.no_progress)
    print(f"checkpoint: {predictor.description}")
    if cached:
        print(f"{args.layer} features of {len(features)} training images in {root}: read from {cache}")
    else:
        print(f"{args.layer} features of {len(features)} training images in {root}: computed in "
              f"{time.perf_counter() - t0:.0f} s, cached in {cache}")

    found = predictor.model.features(queries, upto=args.layer).reshape(len(queries), -1)
    order, dist = nearest(features, found, args.neighbours)
    rows = []
    for q, idx, d in zip(args.queries, order, dist):
        folder = os.path.basename(os.path.dirname(os.path.abspath(q)))
        truth = train.classes.index(folder) if folder in train.classes else None
        neighbours = [(predictor.seen(train.path(index[i])), train.names[labels[i]], float(di),
                       truth is not None and int(labels[i]) == truth) for i, di in zip(idx, d)]
        rows.append(dict(image=predictor.seen(q), truth=None if truth is None else train.names[truth],
                         neighbours=neighbours))
        same = sum(n[3] for n in neighbours)
        print(f"{q}: " + ", ".join(f"{n[1]} ({n[2]:.3g})" for n in neighbours)
              + (f"  [{same} of {len(neighbours)} of its class]" if truth is not None else ""))
    space = "fc7" if args.layer == fc7 else args.layer
    draw_neighbours(rows, args.out, space=space,
                    title=f"Figure 4 (right), {os.path.basename(predictor.path)}: the nearest training images "
                          f"in {space} space")
    print(f"wrote {args.out}")
    return 0


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    try:
        return run_main(run, argv)
    except (DataError, CheckpointError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
