"""Inference from a checkpoint: rebuild the network from the config stored in it, preprocess
images exactly as validation does, and return the top-k classes with probabilities. Also the
command line behind minialex-predict and examples/predict.py, whose --weights also reads
.safetensors and ONNX files (minialex.interop) and whose --card draws the paper's Figure 4 (left)."""

import os
import sys

import numpy as np

from ..data import DataError, read_image, read_synset_words
from ..models import AlexNet
from .build import eval_stats, eval_transform
from ..nn import softmax
from ..weights import CheckpointError, describe_checkpoint, find_checkpoint, load_weights, split_state
from .options import EXIT_USAGE, HelpFormatter, Parser, int_at_least, run_main


class Predictor:
    """``Predictor(path).topk(image_path, k=5) -> [(probability, wnid, name), ...]``.

    ``path`` is a checkpoint file or a run folder (its checkpoint_best.npz, else its
    checkpoint.npz), or an exported .safetensors or an ONNX graph of this network
    (minialex.interop.read_weights); ``self.path`` is the file loaded and ``self.description``
    says which it is. ``synset_words``: a file of "wnid name" lines, one per class in order
    (ImageNet's synset_words.txt), naming the classes of a file that names none.
    """

    def __init__(self, checkpoint_path, synset_words=None):
        from ..interop import read_weights  # .npz, .safetensors, .onnx
        self.path = find_checkpoint(checkpoint_path, prefer="best")
        arrays, meta = read_weights(self.path)
        if "model_config" not in meta or "preprocess" not in meta or "stats/mean_rgb" not in arrays:
            raise CheckpointError(f"{self.path} lacks the model config or preprocessing settings")
        self.description = meta.get("description") or describe_checkpoint(self.path, meta)
        self.notes = list(meta.get("notes") or [])
        self.model = AlexNet.from_config(meta["model_config"]).eval()
        load_weights(self.model, split_state(arrays)[0], self.path)  # one line naming every mismatch
        count = self.model.cfg.num_classes
        self.classes = list(meta.get("classes") or [f"class {i}" for i in range(count)])
        self.names = list(meta.get("names") or self.classes)
        if synset_words is not None:
            words = read_synset_words(synset_words)
            if meta.get("classes") is None:  # a file without classes: the list gives them, in order
                if len(words) != count:
                    raise DataError(f"--synset-words {synset_words} names {len(words)} classes; "
                                    f"{self.path} has {count}")
                self.classes, self.names = list(words), list(words.values())
            else:
                self.names = [words.get(c, n) for c, n in zip(self.classes, self.names)]
        pre = meta["preprocess"]
        mean = pre.get("mean", "image") if "stats/mean_image" in arrays else "channel"
        self.transform = eval_transform(eval_stats(arrays), pre["crop"], pre["resize"], mean=mean)

    @property
    def num_classes(self):
        return len(self.classes)

    def preprocess(self, image_path):
        return self.transform(read_image(image_path))  # (3, S, S) float32

    def seen(self, image_path):
        """The pixels the network sees of an image, before the mean is subtracted: the centre
        crop of the resized image, uint8 (S, S, 3)."""
        r, s = self.transform.size_resize, self.transform.size_crop
        return read_image(image_path, shorter=r, crop=((r - s) // 2, (r - s) // 2, s))

    def label(self, index):
        """``name (wnid)`` of a class, or just the id when it has no other name."""
        wnid, name = self.classes[index], self.names[index]
        return wnid if name == wnid else f"{name} ({wnid})"

    def true_class(self, image_path):
        """The class index of an image inside a class folder (its folder's name is one of the
        classes), else None."""
        folder = os.path.basename(os.path.dirname(os.path.abspath(image_path)))
        return self.classes.index(folder) if folder in self.classes else None

    def probabilities(self, images):
        """Softmax outputs (N, M) for preprocessed images (N, 3, S, S), in batches of 64."""
        out = [softmax(self.model.forward(images[i:i + 64])) for i in range(0, len(images), 64)]
        return np.concatenate(out, axis=0)

    def topk(self, image_path, k=5):
        probs = self.probabilities(self.preprocess(image_path)[None])[0]  # (M,)
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
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", metavar="CKPT",
                        help="a checkpoint file, or a run folder: its checkpoint_best.npz, else its checkpoint.npz")
    source.add_argument("--weights", metavar="FILE",
                        help="a weights file instead: .safetensors or .onnx exported by examples/export.py, "
                             "an ONNX graph of this network such as Caffe's bvlcalexnet-12.onnx, or a .npz "
                             "checkpoint (docs/interop.md)")
    p.add_argument("-k", "--topk", type=int_at_least(1), metavar="K",
                   help="classes listed per image, from 1 to the number of classes (default 5, or all of "
                        "them when there are fewer)")
    p.add_argument("--synset-words", metavar="FILE",
                   help="names for the classes of a file that has none (an ONNX graph from elsewhere): "
                        "'wnid name' lines in class order, as ImageNet's synset_words.txt")
    p.add_argument("--card", metavar="OUT.png",
                   help="also draw the paper's Figure 4 (left): each image with its true label (when it "
                        "lies in a class folder) and its top-5 classes as bars, the true one in red")
    return p


def run(argv, prog=None):
    args = build_parser(prog).parse_args(argv)
    missing = [p for p in args.images if not os.path.isfile(p)]
    if missing:
        raise DataError(f"image not found: {missing[0]}" + (f" (and {len(missing) - 1} more)" if len(missing) > 1
                                                            else ""))
    if args.card is not None and not args.card.lower().endswith(".png"):
        raise DataError(f"argument --card: must name a .png file, got {args.card}")
    predictor = Predictor(args.checkpoint or args.weights, synset_words=args.synset_words)
    k = args.topk if args.topk is not None else min(5, predictor.num_classes)
    if k > predictor.num_classes:
        raise DataError(f"argument -k/--topk: must be an integer from 1 to {predictor.num_classes} "
                        f"(the checkpoint's classes), got {k}")
    results = predictor.predict(args.images, k)
    print(f"checkpoint: {predictor.description}")
    for note in predictor.notes:
        print(f"note: {note}")
    for path, ranked in results:
        print(f"\n{path}")
        print(f"  {'rank':>4}  {'probability':>11}  class")
        for rank, (prob, wnid, name) in enumerate(ranked, 1):
            label = wnid if name == wnid else f"{name} ({wnid})"  # short names repeat: keep the id
            print(f"  {rank:>4}  {100 * prob:>10.2f}%  {label}")
    if args.card is not None:
        write_card(predictor, args.images, args.card)
        print(f"\nwrote {args.card}")
    return 0


def write_card(predictor, image_paths, out, k=5):
    """Figure 4 (left) for ``image_paths`` under ``predictor``, saved as the PNG ``out``."""
    from ..interop.figure4 import draw_card
    k = min(k, predictor.num_classes)
    probs = predictor.probabilities(np.stack([predictor.preprocess(p) for p in image_paths]))
    entries = []
    for path, p in zip(image_paths, probs):
        truth = predictor.true_class(path)
        order = np.argsort(-p, kind="stable")[:k]
        entries.append(dict(image=predictor.seen(path), name=os.path.basename(path),
                            truth=None if truth is None else predictor.label(truth),
                            top=[(float(p[i]), predictor.label(i), int(i) == truth) for i in order]))
    title = (f"Figure 4 (left), {os.path.basename(predictor.path)} in {os.path.dirname(predictor.path) or '.'}: "
             f"top-{k} predictions")
    draw_card(entries, out, title=title)


def main(argv=None, prog=None):
    """minialex-predict: expected failures end in one line on stderr and exit code 2."""
    argv = sys.argv[1:] if argv is None else argv
    try:
        return run_main(lambda a: run(a, prog), argv)
    except (DataError, CheckpointError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE


__all__ = ["Predictor", "DataError", "eval_stats", "main", "write_card"]

if __name__ == "__main__":
    sys.exit(main())
