"""The paper's Figure 1, rebuilt: ReLU against tanh in a four-layer convolutional network.

    python examples/figure1.py                      # the embedded dataset, offline (~10 min on 2 cores)
    python examples/figure1.py --data ~/data/cifar-10-batches-py --epochs 30
    python examples/figure1.py --quick              # seconds; for CI

The paper (section 3.1, Figure 1): "A four-layer convolutional neural network with ReLUs
(solid line) reaches a 25% training error rate on CIFAR-10 six times faster than an
equivalent network with tanh neurons (dashed line). The learning rates for each network
were chosen independently to make training as fast as possible. No regularization of any
kind was employed." The paper does not list the four layers. Here they are the layers of
cuda-convnet's CIFAR-10 example of that time (example-layers/layers-18pct.cfg), without its
3x3 response normalisations and with max-pooling where it averages:

    conv 5x5, 32 maps, pad 2 -> act -> max-pool 3/2        (N, 32, 32, 32) -> (N, 32, 15, 15)
    conv 5x5, 32 maps, pad 2 -> act -> max-pool 3/2        -> (N, 32, 7, 7)
    conv 5x5, 64 maps, pad 2 -> act -> max-pool 3/2        -> (N, 64, 3, 3)
    fully connected 576 -> 10 (one per class), softmax cross-entropy

where act is ReLU or tanh and nothing else differs: the same weights at the start (one seed,
every layer N(0, 1/fan_in), LeCun's scale, chosen because it suits tanh and does not favour
ReLU), the same batches in the same order, SGD with momentum 0.9, no weight decay, no
dropout, no augmentation. Inputs are 32x32 x 3: CIFAR-10 as it is, or the embedded dataset's
72 px drawings resized to 32x32 (docs/experiments.md). Pixels minus the training set's mean
image (the paper's only preprocessing), divided by one number (their standard deviation)
so that one learning-rate grid fits both datasets.

"Training error" is what cuda-convnet printed while it trained: the error on the batches
just trained on, here averaged over each quarter of an epoch. The learning rate of each
activation is picked from --lrs by a short trial (--trial-epochs): the rate that first brings
the training error to 25%, or, if none does within the trial, the one with the lowest
training error at its end; the chosen rate's run is then continued to --epochs (the same
run, so the figure's curve starts with its trial). The ratio of epochs, and of training
seconds, at which each first reaches 25% (--threshold) is printed and written with the figure.
Writes figure1.png, figure1.csv (every point of every run, trials included) and
figure1.json (the choices and the ratios) to --out. Measured results: docs/experiments.md.
"""

import csv
import io
import json
import math
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # run from a checkout

import numpy as np  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

from minialex import nn  # noqa: E402
from minialex.atomic import WriteFailed, atomic_write, write_text  # noqa: E402
from minialex.data import DataError, ImageFolder, ensure_synthetic_dataset, load_cifar10  # noqa: E402
from minialex.optim import SGD  # noqa: E402
from minialex.train.options import HelpFormatter, Parser, int_at_least, number_in  # noqa: E402
from minialex.train.plots import _font, nice_step, value_axis  # noqa: E402

THRESHOLD = 25.0  # % training error, the paper's line (--threshold)
DEFAULT_LRS = (0.003, 0.01, 0.03, 0.1)


def build_net(activation, seed, classes=10, dtype=np.float32):
    """The four-layer net of the docstring; ``activation`` "relu" or "tanh". Same seed -> the same
    initial weights whatever the activation (the layers draw from one generator in one order)."""
    act = nn.ReLU if activation == "relu" else nn.Tanh
    rng = np.random.default_rng(seed)

    def conv(c, f):  # N(0, 1/fan_in), fan_in = C*KH*KW
        return nn.Conv2d(c, f, 5, padding=2, init_std=1 / math.sqrt(c * 25), rng=rng, dtype=dtype,
                         input_grad=c != 3)  # the first layer's input is the images: no dx needed

    return nn.Sequential(conv(3, 32), act(), nn.MaxPool2d(3, 2),
                         conv(32, 32), act(), nn.MaxPool2d(3, 2),
                         conv(32, 64), act(), nn.MaxPool2d(3, 2),
                         nn.Flatten(), nn.Linear(576, classes, init_std=1 / math.sqrt(576), rng=rng, dtype=dtype))


# -- data -----------------------------------------------------------------------------------

def load_images(data, max_images):
    """(images uint8 (N, 32, 32, 3), labels (N,), description). CIFAR-10's training batches when
    ``data`` holds them; the training images of an ImageFolder root (``data/train/<class>/``, the
    embedded dataset's layout) resized to 32x32 otherwise; the embedded dataset without ``data``.
    With ``max_images``, that many evenly spaced images (so every class stays)."""
    if data and not os.path.isdir(os.path.join(data, "train")):
        c = load_cifar10(data)  # (DataError naming both expected places when it is not CIFAR-10 either)
        images, labels = c.train_images, c.train_labels
        if max_images and max_images < len(images):
            keep = np.linspace(0, len(images) - 1, max_images).astype(int)
            images, labels = images[keep], labels[keep]
        return images, labels, f"CIFAR-10 training set ({data})"
    root = data or ensure_synthetic_dataset()
    folder = ImageFolder(root, "train")
    index = np.arange(len(folder))
    if max_images and max_images < len(index):
        index = index[np.linspace(0, len(index) - 1, max_images).astype(int)]
    # resize_crop's centre square at 32 px: the embedded images are square, so nothing is cut off
    pairs = [folder.load(int(i), shorter=32, crop=(0, 0, 32)) for i in index]
    images = np.stack([p[0] for p in pairs])
    labels = np.array([p[1] for p in pairs], dtype=np.int64)
    what = "embedded dataset" if not data else "image folder"
    return images, labels, f"{what} ({root}), training images resized to 32x32"


def normalise(images):
    """uint8 (N, H, W, 3) -> float32 (N, 3, H, W): minus the mean image, over one overall std."""
    x = images.astype(np.float32)
    x -= x.mean(axis=0)  # the mean image, as the paper subtracts
    x /= x.std() + 1e-8
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))  # (N, 3, H, W)


# -- one run --------------------------------------------------------------------------------

class Run:
    """One network at one learning rate, trained step by step; ``points`` holds
    (epoch, train_err %, seconds) at the end of every 1/points_per_epoch of an epoch."""

    def __init__(self, activation, lr, x, y, args):
        self.activation, self.lr = activation, lr
        self.x, self.y, self.args = x, y, args
        self.net = build_net(activation, args.seed, classes=int(y.max()) + 1)
        self.opt = SGD(self.net.named_parameters(), lr=lr, momentum=0.9, weight_decay=0.0)
        self.loss = nn.SoftmaxCrossEntropy()
        self.epochs_done, self.seconds, self.points, self.diverged = 0, 0.0, [], False

    def _order(self, epoch):
        # Seeded by (seed, epoch) only: both activations see the same batches in the same order.
        return np.random.default_rng((self.args.seed, epoch)).permutation(len(self.x))

    def train_to(self, epochs):
        b, n, per = self.args.batch_size, len(self.x), self.args.points_per_epoch
        steps = n // b  # whole batches only, so every step averages over b images
        while self.epochs_done < epochs and not self.diverged:
            order = self._order(self.epochs_done)
            wrong = seen = 0
            for s in range(steps):
                idx = order[s * b:(s + 1) * b]
                t0 = time.perf_counter()
                self.opt.zero_grad()
                logits = self.net.forward(self.x[idx])  # (b, 10)
                loss = float(self.loss.forward(logits, self.y[idx]))
                self.net.backward(self.loss.backward())
                self.opt.step()
                self.seconds += time.perf_counter() - t0
                if not math.isfinite(loss):
                    self.diverged = True
                    break
                wrong += int((logits.argmax(axis=1) != self.y[idx]).sum())
                seen += len(idx)
                # a point at the end of each 1/per of the epoch: the error over the steps since the last
                if (s + 1) * per // steps != s * per // steps or s == steps - 1:
                    if seen:
                        self.points.append((self.epochs_done + (s + 1) / steps, 100.0 * wrong / seen, self.seconds))
                    wrong = seen = 0
            self.epochs_done += 1
        return self

    def first_below(self):
        """(epoch, seconds) of the first point at or below --threshold, or None."""
        return next(((e, t) for e, err, t in self.points if err <= self.args.threshold), None)

    def score(self):
        """Smaller is faster: (epochs to 25%, else inf; then the last error). A diverged run is last."""
        if self.diverged or not self.points:
            return (math.inf, math.inf)
        hit = self.first_below()
        return (hit[0] if hit else math.inf, self.points[-1][1])


# -- outputs --------------------------------------------------------------------------------

STYLE = {"relu": ((31, 119, 180), None), "tanh": ((214, 39, 40), (10, 6))}  # colour, dash (on, off) px


def _dashed(draw, pts, fill, width, dash):
    """A polyline drawn as dashes of dash[0] px every dash[0] + dash[1] px along its length."""
    on, off = dash
    phase = 0.0
    for (xa, ya), (xb, yb) in zip(pts, pts[1:]):
        length = math.hypot(xb - xa, yb - ya)
        pos = 0.0
        while pos < length:
            period_left = (on + off) - phase
            step = min(period_left, length - pos)
            if phase < on:
                seg = min(on - phase, step)
                f0, f1 = pos / length, (pos + seg) / length
                draw.line([(xa + f0 * (xb - xa), ya + f0 * (yb - ya)), (xa + f1 * (xb - xa), ya + f1 * (yb - ya))],
                          fill=fill, width=width)
            pos += step
            phase = (phase + step) % (on + off)


def save_figure(runs, path, title, threshold):
    """Training error (%) against epochs, ReLU solid and tanh dashed, the ``threshold`` line marked."""
    w, h = 900, 560
    x0, y0, x1, y1 = 80, 80, w - 30, h - 60
    img = Image.new("RGB", (w, h), "white")
    draw = ImageDraw.Draw(img)
    small, big = _font(13), _font(16)
    draw.text((x0, 14), title, fill=(0, 0, 0), font=big)
    emax = max(max(e for e, _, _ in r.points) for r in runs.values())
    top, step = value_axis([err for r in runs.values() for _, err, _ in r.points] + [threshold], cap=100.0)

    def xy(e, v):
        return x0 + e / emax * (x1 - x0), y1 - v / top * (y1 - y0)

    for i in range(int(round(top / step)) + 1):
        _, y = xy(0, i * step)
        draw.line([(x0, y), (x1, y)], fill=(225, 225, 225))
        label = f"{i * step:g}%"
        draw.text((x0 - 8 - draw.textlength(label, font=small), y - 8), label, fill=(90, 90, 90), font=small)
    estep = max(1, int(nice_step(emax, 8)))
    for e in range(0, int(emax) + 1, estep):
        x, _ = xy(e, 0)
        draw.line([(x, y0), (x, y1)], fill=(225, 225, 225))
        draw.text((x - draw.textlength(str(e), font=small) / 2, y1 + 6), str(e), fill=(90, 90, 90), font=small)
    draw.text(((x0 + x1) / 2 - 20, y1 + 26), "epochs", fill=(90, 90, 90), font=small)
    draw.text((8, y0 - 22), "training error", fill=(90, 90, 90), font=small)
    _, yt = xy(0, threshold)
    _dashed(draw, [(x0, yt), (x1, yt)], (0, 0, 0), 1, (3, 4))
    draw.text((x1 - 90, yt - 18), f"{threshold:g}% error", fill=(0, 0, 0), font=small)
    draw.rectangle([x0, y0, x1, y1], outline=(0, 0, 0))
    lx, ly = x1 - 400, 50  # the legend above the plot, right-aligned: it never covers a curve
    for act, run in runs.items():
        colour, dash = STYLE[act]
        pts = [xy(e, err) for e, err, _ in run.points]
        if dash:
            _dashed(draw, pts, colour, 3, dash)
        else:
            draw.line(pts, fill=colour, width=3, joint="curve")
        hit = run.first_below()
        if hit:  # where the curve first reaches the line
            x, _ = xy(hit[0], threshold)
            draw.ellipse([x - 5, yt - 5, x + 5, yt + 5], outline=colour, width=2)
        label = f"{'ReLU' if act == 'relu' else 'tanh'} (lr {run.lr:g})"
        if dash:
            _dashed(draw, [(lx, ly), (lx + 40, ly)], colour, 3, dash)
        else:
            draw.line([(lx, ly), (lx + 40, ly)], fill=colour, width=3)
        draw.text((lx + 48, ly - 8), label, fill=(0, 0, 0), font=small)
        lx += 200
    atomic_write(path, lambda f: img.save(f, format="PNG"))


def write_csv(path, grid, chosen):
    buf = io.StringIO()
    out = csv.writer(buf, lineterminator="\n")
    out.writerow(["activation", "lr", "chosen", "epoch", "train_top1_err", "train_seconds"])
    for (act, lr), run in grid.items():
        for e, err, t in run.points:
            out.writerow([act, f"{lr:g}", int(chosen[act] is run), f"{e:.4f}", f"{err:.2f}", f"{t:.2f}"])
    write_text(path, buf.getvalue())


# -- the command ----------------------------------------------------------------------------

def parse_args(argv):
    p = Parser(prog="figure1.py", formatter_class=HelpFormatter, description=__doc__.split("\n\n")[0])
    p.add_argument("--data", metavar="DIR", help="CIFAR-10's python batches (cifar-10-batches-py), or an "
                   "image folder with train/<class>/ (resized to 32x32); default: the embedded dataset")
    p.add_argument("--out", metavar="DIR", default=os.path.join("runs", "figure1"),
                   help="where figure1.png/.csv/.json go; files of an earlier call are replaced (default: %(default)s)")
    p.add_argument("--epochs", type=int_at_least(1), metavar="N", help="epochs of the full run of each chosen rate "
                   "(default 12; 30 with --data; 2 with --quick)")
    p.add_argument("--trial-epochs", type=int_at_least(1), metavar="N",
                   help="epochs of each rate's trial (default 2; 1 with --quick)")
    p.add_argument("--lrs", metavar="LR,LR,...", help=f"the learning rates tried for each activation "
                   f"(default {','.join(f'{v:g}' for v in DEFAULT_LRS)})")
    p.add_argument("-b", "--batch-size", type=int_at_least(1), metavar="N", default=64,
                   help="images per SGD step (default: %(default)s)")
    p.add_argument("--max-images", type=int_at_least(1), metavar="N",
                   help="train on N evenly spaced training images only (default: all; 256 with --quick)")
    p.add_argument("--points-per-epoch", type=int_at_least(1, 100), metavar="N", default=4,
                   help="training-error points per epoch (default: %(default)s)")
    p.add_argument("--threshold", type=number_in(0, 100, low_open=True, high_open=True), metavar="PCT",
                   default=THRESHOLD, help="the training error (%%) whose epochs are compared (default: %(default)g, "
                   "the paper's)")
    p.add_argument("--seed", type=int_at_least(0), metavar="S", default=0, help="(default: %(default)s)")
    p.add_argument("--quick", action="store_true", help="a seconds-long smoke run (CI): 256 images, "
                   "two rates, 1 trial epoch, 2 epochs")
    args = p.parse_args(argv)
    if args.lrs is None:
        args.lrs = (0.01, 0.1) if args.quick else DEFAULT_LRS
    else:
        try:
            args.lrs = tuple(float(v) for v in args.lrs.split(","))
        except ValueError:
            p.error(f"argument --lrs: must be numbers > 0 separated by commas, got {args.lrs!r}")
        if not all(math.isfinite(v) and v > 0 for v in args.lrs):
            p.error(f"argument --lrs: every rate must be a number > 0, got {','.join(map(str, args.lrs))}")
    args.epochs = args.epochs or (2 if args.quick else 30 if args.data else 12)
    args.trial_epochs = args.trial_epochs or (1 if args.quick else 2)
    if args.trial_epochs > args.epochs:
        p.error(f"argument --trial-epochs: must be at most --epochs ({args.epochs}), got {args.trial_epochs}")
    if args.quick and args.max_images is None:
        args.max_images = 256
    if args.data is not None and not os.path.isdir(args.data):
        p.error(f"argument --data: {args.data} is not a folder")
    return args


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        images, labels, what = load_images(args.data, args.max_images)
    except (DataError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if len(images) < args.batch_size:
        print(f"error: -b {args.batch_size} is more than the {len(images)} training images", file=sys.stderr)
        return 2
    x, y = normalise(images), labels
    threshold = args.threshold  # the paper's 25 unless --threshold says otherwise
    print(f"figure1: {len(x)} images from the {what}; batch {args.batch_size}, momentum 0.9, no weight decay, "
          f"no dropout, no augmentation; seed {args.seed}")

    grid, chosen = {}, {}
    for act in ("relu", "tanh"):
        for lr in args.lrs:
            run = grid[(act, lr)] = Run(act, lr, x, y, args).train_to(args.trial_epochs)
            hit = run.first_below()
            state = ("diverged" if run.diverged else f"25% at epoch {hit[0]:.2f}" if hit else
                     f"{run.points[-1][1]:.1f}% after {args.trial_epochs} epochs")
            print(f"  trial {act:4s} lr {lr:<6g} {state}  ({run.seconds:.1f} s)", flush=True)
        best = min((grid[(act, lr)] for lr in args.lrs), key=Run.score)
        if best.diverged or not best.points:
            print(f"error: every --lrs rate diverged for {act}; try smaller rates", file=sys.stderr)
            return 1
        chosen[act] = best
        if len(args.lrs) > 1 and best.lr in (min(args.lrs), max(args.lrs)) and best.first_below() is None:
            print(f"  note: {act}'s best rate {best.lr:g} is at the edge of --lrs; a wider grid may be faster")
        print(f"  {act}: lr {best.lr:g} chosen (fewest epochs to {threshold:g}% training error within the trial, "
              f"else the lowest error at its end); training on to {args.epochs} epochs", flush=True)
        best.train_to(args.epochs)

    summary = {"data": what, "images": len(x), "batch_size": args.batch_size, "seed": args.seed,
               "threshold": threshold,
               "lrs": list(args.lrs), "trial_epochs": args.trial_epochs, "epochs": args.epochs}
    for act, run in chosen.items():
        hit = run.first_below()
        summary[act] = {"lr": run.lr, "epochs_to_threshold": hit and round(hit[0], 4),
                        "seconds_to_threshold": hit and round(hit[1], 2),
                        "final_train_top1_err": round(run.points[-1][1], 2), "diverged": run.diverged}
        print(f"{act}: lr {run.lr:g}: " + (f"{threshold:g}% training error at epoch {hit[0]:.2f}, after {hit[1]:.1f} s "
                                           "of training" if hit else f"did not reach {threshold:g}% in {args.epochs} "
                                           f"epochs (last {run.points[-1][1]:.1f}%)"))
    r, t = chosen["relu"].first_below(), chosen["tanh"].first_below()
    if r and t:
        summary["epoch_ratio"], summary["seconds_ratio"] = round(t[0] / r[0], 3), round(t[1] / r[1], 3)
        print(f"tanh took {t[0] / r[0]:.2f}x the epochs and {t[1] / r[1]:.2f}x the seconds of ReLU to reach "
              f"{threshold:g}% (the paper: about 6x, Figure 1)")
    elif r:
        summary["epoch_ratio"] = f">{args.epochs / r[0]:.3f}"
        print(f"tanh did not reach {threshold:g}% in {args.epochs} epochs: more than {args.epochs / r[0]:.2f}x "
              "ReLU's epochs (raise --epochs to measure it)")
    else:
        summary["epoch_ratio"] = None
        print(f"ReLU did not reach {threshold:g}% in {args.epochs} epochs: no ratio (raise --epochs)")

    try:
        title = f"Training error, four-layer CNN, {len(x)} images ({'CIFAR-10' if args.data else 'embedded, 32x32'})"
        save_figure(chosen, os.path.join(args.out, "figure1.png"), title, threshold)
        write_csv(os.path.join(args.out, "figure1.csv"), grid, chosen)
        write_text(os.path.join(args.out, "figure1.json"), json.dumps(summary, indent=2) + "\n")
    except WriteFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {os.path.join(args.out, 'figure1.png')}, figure1.csv and figure1.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
