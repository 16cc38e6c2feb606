"""Inference from a checkpoint: rebuild the network from the config stored in it, preprocess
images exactly as validation does, and return the top-k classes with probabilities. Also the
command line behind minialex-predict and examples/predict.py."""

import os
import sys

import numpy as np

from ..data import DataError, EvalTransform, Stats, read_image
from ..models import AlexNet
from ..nn import softmax
from .checkpoint import CheckpointError, describe_checkpoint, find_checkpoint, load_checkpoint, split_state
from .options import EXIT_USAGE, HelpFormatter, Parser, int_at_least, run_main


def eval_stats(arrays):
    """The Stats that evaluation needs from a checkpoint's arrays: the mean image (None if absent)
    and the channel means; the lighting eigenpairs matter only for training augmentation."""
    return Stats(mean_image=arrays.get("stats/mean_image"), mean_rgb=arrays.get("stats/mean_rgb"),
                 eigvals=np.ones(3, np.float32), eigvecs=np.eye(3, dtype=np.float32), count=0)


class Predictor:
    """``Predictor(path).topk(image_path, k=5) -> [(probability, wnid, name), ...]``.

    ``path`` is a checkpoint file or a run folder (its checkpoint_best.npz, else its
    checkpoint.npz); ``self.path`` is the file loaded and ``self.description`` says which it is.
    """

    def __init__(self, checkpoint_path):
        self.path = find_checkpoint(checkpoint_path, prefer="best")
        arrays, meta = load_checkpoint(self.path)
        if "model_config" not in meta or "preprocess" not in meta or "stats/mean_rgb" not in arrays:
            raise CheckpointError(f"{self.path} lacks the model config or preprocessing settings")
        self.description = describe_checkpoint(self.path, meta)
        self.model = AlexNet.from_config(meta["model_config"]).eval()
        state, _ = split_state(arrays)
        try:
            self.model.load_state_dict(state)
        except ValueError as exc:
            raise CheckpointError(f"{self.path}: {' '.join(str(exc).split())}") from None
        self.classes = meta["classes"]
        self.names = meta.get("names") or self.classes
        pre = meta["preprocess"]
        mean = pre.get("mean", "image") if "stats/mean_image" in arrays else "channel"
        self.transform = EvalTransform(eval_stats(arrays), size_crop=pre["crop"], size_resize=pre["resize"],
                                       mean=mean)

    @property
    def num_classes(self):
        return len(self.classes)

    def preprocess(self, image_path):
        return self.transform(read_image(image_path))  # (3, S, S) float32

    def probabilities(self, images):
        """Softmax outputs (N, K) for preprocessed images (N, 3, S, S), in batches of 64."""
        out = [softmax(self.model.forward(images[i:i + 64])) for i in range(0, len(images), 64)]
        return np.concatenate(out, axis=0)

    def topk(self, image_path, k=5):
        probs = self.probabilities(self.preprocess(image_path)[None])[0]  # (K,)
        return self._rank(probs, k)

    def _rank(self, probs, k):
        order = np.argsort(-probs, kind="stable")[:k]
        return [(float(probs[i]), self.classes[i], self.names[i]) for i in order]

    def predict(self, image_paths, k=5):
        """[(image path, [(probability, wnid, name), ...]), ...]: every image is decoded before the
        network runs, so an unreadable one stops the whole call before anything is reported."""
        batch = np.stack([self.preprocess(p) for p in image_paths])  # (N, 3, S, S)
        probs = self.probabilities(batch)
        return [(path, self._rank(p, k)) for path, p in zip(image_paths, probs)]


def build_parser(prog=None):
    p = Parser(prog=prog, formatter_class=HelpFormatter,
               description="The most probable classes of each image under a minialex checkpoint, one table "
                           "per image.\nImages are preprocessed as validation images are (shorter side resized, "
                           "centre crop, mean image subtracted).",
               epilog="example:\n  minialex-predict photo.jpg other.png --checkpoint runs/alexnet-embedded\n"
                      "  (a run folder means its checkpoint_best.npz, the epoch with the lowest val_top1_err)")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files (JPEG, PNG or any format Pillow reads)")
    p.add_argument("--checkpoint", required=True, metavar="CKPT",
                   help="a checkpoint file, or a run folder: its checkpoint_best.npz, else its checkpoint.npz")
    p.add_argument("-k", "--topk", type=int_at_least(1), metavar="K",
                   help="classes listed per image, from 1 to the number of classes (default 5, or all of "
                        "them when there are fewer)")
    return p


def run(argv, prog=None):
    args = build_parser(prog).parse_args(argv)
    missing = [p for p in args.images if not os.path.isfile(p)]
    if missing:
        raise DataError(f"image not found: {missing[0]}" + (f" (and {len(missing) - 1} more)" if len(missing) > 1
                                                            else ""))
    predictor = Predictor(args.checkpoint)
    k = args.topk if args.topk is not None else min(5, predictor.num_classes)
    if k > predictor.num_classes:
        raise DataError(f"argument -k/--topk: must be an integer from 1 to {predictor.num_classes} "
                        f"(the checkpoint's classes), got {k}")
    results = predictor.predict(args.images, k)
    print(f"checkpoint: {predictor.description}")
    for path, ranked in results:
        print(f"\n{path}")
        print(f"  {'rank':>4}  {'probability':>11}  class")
        for rank, (prob, wnid, name) in enumerate(ranked, 1):
            label = wnid if name == wnid else f"{name} ({wnid})"  # short names repeat: keep the id
            print(f"  {rank:>4}  {100 * prob:>10.2f}%  {label}")
    return 0


def main(argv=None, prog=None):
    """minialex-predict: expected failures end in one line on stderr and exit code 2."""
    argv = sys.argv[1:] if argv is None else argv
    try:
        return run_main(lambda a: run(a, prog), argv)
    except (DataError, CheckpointError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE


__all__ = ["Predictor", "DataError", "eval_stats", "main"]

if __name__ == "__main__":
    sys.exit(main())
