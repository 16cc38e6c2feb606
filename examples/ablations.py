"""The paper's ablations, rerun with the training command: what each part of the recipe is worth.

    python examples/ablations.py                    # the embedded dataset: 12 runs, under an hour on 2 cores
    python examples/ablations.py --seeds 0,1,2 --epochs 8 --out runs/ablations-8
    python examples/ablations.py --data /data/imagenet-256 --epochs 90 -- --backend cupy --devices 0,1 -j 8
    python examples/ablations.py --quick --out /tmp/abl   # seconds; for CI

Each variant is the full recipe with one part changed, trained by ``python -m minialex train``
once per seed, each run in its own folder ``--out/<variant>/seed<S>``:

    full          the preset's recipe as it is (ReLU, LRN, 3/2 pooling, dropout 0.5, PCA lighting)
    tanh          --activation tanh                (paper section 3.1: ReLU trains several times faster)
    no-lrn        --no-lrn                         (section 3.3: LRN cuts top-1/top-5 by 1.4/1.2 points)
    pool-2/2      --pool 2/2                       (section 3.4: overlapping 3/2 pools cut them by 0.4/0.3)
    no-dropout    --dropout 0                      (section 4.2: without it, "substantial overfitting")
    no-lighting   --no-lighting                    (section 4.1: PCA lighting cuts top-1 by over 1 point)
    ten-crop      the full runs' checkpoints evaluated with --test-only --ten-crop against
                  --test-only on the centre crop (footnote 5: 39.0/18.3 -> 37.5/17.0, ILSVRC-2010 test)

A folder that already holds a finished run of the same settings is reused (its metrics.csv
read, nothing trained); one whose run was interrupted is continued with --resume; a folder
holding a run of other settings stops the script with one line. Nothing is overwritten: the
training command's own rule (docs/training.md, "Output folders") applies to every run, and
the evaluations are cached beside the runs (``--out/full/seed<S>-eval.json``). A variant whose
flag the installed training command does not have is skipped with a note.

The table (printed, ``ablations.csv``, ``ablations.png``) gives, per variant, the mean and
the spread (sample standard deviation over seeds) of the final epoch's validation top-1 and
top-5 error, the difference from the full recipe (variant minus full: positive means the
removed part helped), and the paper's reported difference beside it. Measured results and
what this small dataset can and cannot show: docs/experiments.md.
"""

import csv
import io
import json
import math
import os
import re
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # run from a checkout

from PIL import Image, ImageDraw  # noqa: E402

from minialex.atomic import WriteFailed, atomic_write, write_text  # noqa: E402
from minialex.train.options import HelpFormatter, Parser, int_at_least  # noqa: E402
from minialex.train.plots import _font, nice_step  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# (name, training flags, what args.json then holds, the paper's reported difference in words)
VARIANTS = [
    ("full", [], {"activation": "relu", "lrn": True, "pool": "3/2", "lighting": True}, "reference"),
    ("tanh", ["--activation", "tanh"], {"activation": "tanh"},
     "no error given; 6x slower to 25% train error (CIFAR-10, Fig. 1)"),
    ("no-lrn", ["--no-lrn"], {"lrn": False}, "+1.4 / +1.2"),
    ("pool-2/2", ["--pool", "2/2"], {"pool": "2/2"}, "+0.4 / +0.3"),
    ("no-dropout", ["--dropout", "0"], {"dropout": 0.0}, "no number; 'substantial overfitting'"),
    ("no-lighting", ["--no-lighting"], {"lighting": False}, "top-1 over +1"),
]
TEN_CROP = ("ten-crop", "-1.5 / -1.3 (39.0/18.3 -> 37.5/17.0)")



def folder_name(variant):
    return variant.replace("/", "-")


# -- the training command -------------------------------------------------------------------

def train_command(*args):
    return [sys.executable, "-m", "minialex", "train", *map(str, args)]


def run_command(cmd, log):
    """Run one training-command call, its output appended to ``log``; returns (exit code, that output).
    On Ctrl-C the child, which got the same signal, is waited for: it saves its checkpoint and
    prints how to continue, and the next call of this script resumes it."""
    with open(log, "a", encoding="utf-8") as f:
        f.write("$ " + " ".join(cmd[1:]) + "\n")
        f.flush()
        start = f.tell()
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, text=True,
                                env=dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")))
        try:
            rc = proc.wait()
        except KeyboardInterrupt:
            proc.wait()
            raise
    with open(log, encoding="utf-8") as f:
        f.seek(start)
        return rc, f.read()


def supported_flags():
    """The flags ``python -m minialex train --help`` lists (so a missing switch skips, not crashes)."""
    proc = subprocess.run(train_command("--help"), cwd=ROOT, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=ROOT))
    return set(re.findall(r"(--[a-z][a-z0-9-]*)", proc.stdout))


def read_metrics(folder):
    """The rows of a run's metrics.csv as dicts of floats ([] when there is none)."""
    path = os.path.join(folder, "metrics.csv")
    if not os.path.isfile(path):
        return []
    with open(path, newline="", encoding="utf-8") as f:
        return [{k: float(v) for k, v in row.items() if v not in (None, "")} for row in csv.DictReader(f)]


def read_args(folder):
    path = os.path.join(folder, "args.json")
    if not os.path.isfile(path):
        return {}
    with open(path, encoding="utf-8") as f:
        return json.load(f)


class StudyError(Exception):
    """A run that cannot be reused or trained; the message is the one line the user sees."""


def ensure_run(folder, flags, expect, seed, args, log):
    """Train, resume or reuse the run in ``folder``; returns (last metrics row, what happened)."""
    common = ["--seed", seed, "--epochs", args.epochs, "--no-progress", *args.train_args]
    has_ckpt = os.path.isfile(os.path.join(folder, "checkpoint.npz"))
    if has_ckpt:
        saved = read_args(folder)
        wanted = {"epochs": args.epochs, "seed": seed, "max_images": args.max_images, "model": args.model, **expect}
        # a run of fewer epochs is trained on (the plateau schedule does not depend on the total,
        # so that equals a longer run from the start); any other difference stops the study
        longer = isinstance(saved.get("epochs"), int) and saved["epochs"] < args.epochs
        diff = [f"{k} {saved.get(k)!r}, not {v!r}" for k, v in wanted.items()
                if v is not None and k in saved and saved.get(k) != v and not (k == "epochs" and longer)]
        if diff:
            raise StudyError(f"{folder} holds a run with other settings ({'; '.join(diff)}); "
                             "choose another --out or call with that run's settings")
        rows = read_metrics(folder)
        if rows and int(rows[-1]["epoch"]) >= args.epochs:
            return rows[-1], "reused"
        rc, out = run_command(train_command("--resume", folder, "--no-progress", *args.passed,
                                            *(["--epochs", args.epochs] if longer else [])), log)
        what = "trained on" if longer else "resumed"
    else:
        rc, out = run_command(train_command(*common, "--output-dir", folder, *flags,
                                            *(["--data", args.data] if args.data else [])), log)
        what = "trained"
    rows = read_metrics(folder)
    if rc != 0 or not rows or int(rows[-1]["epoch"]) < args.epochs:
        last = [line for line in out.strip().splitlines() if line.strip()][-1:] or ["(no output)"]
        raise StudyError(f"the run in {folder} failed (exit {rc}): {last[0]} (full output: {log})")
    return rows[-1], what


# the result line of --test-only (not the "(chance val_top1_err 90.0%)" after it)
EVAL_LINE = re.compile(r"^val_loss \S+\s+val_top1_err ([0-9.]+)%(?:\s+val_top5_err ([0-9.]+)%)?", re.M)


def ensure_eval(folder, cache, passed, log):
    """{"centre": (top1, top5), "ten": (top1, top5)} of the run's latest checkpoint, by --test-only,
    cached in ``cache`` (a JSON file beside the run folder, never inside it)."""
    if os.path.isfile(cache):
        with open(cache, encoding="utf-8") as f:
            saved = json.load(f)
        if saved.get("checkpoint_mtime") == os.path.getmtime(os.path.join(folder, "checkpoint.npz")):
            return saved
    result = {"checkpoint_mtime": os.path.getmtime(os.path.join(folder, "checkpoint.npz"))}
    for name, extra in (("centre", []), ("ten", ["--ten-crop"])):
        rc, out = run_command(train_command("--test-only", "--resume", folder, "--no-progress", *passed, *extra), log)
        found = EVAL_LINE.findall(out)
        if rc != 0 or not found:
            raise StudyError(f"evaluating {folder} {'with --ten-crop ' if extra else ''}failed (exit {rc}); "
                             f"see {log}")
        top1, top5 = found[-1]
        result[name] = [float(top1), float(top5) if top5 else None]
    write_text(cache, json.dumps(result, indent=2) + "\n")
    return result


# -- the table ------------------------------------------------------------------------------

def summarise(values):
    """(mean, spread) of a list; spread is the sample standard deviation (None for one value)."""
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


def fmt(v, signed=False):
    if v is None:
        return "-"
    return f"{v:+.2f}" if signed else f"{v:.2f}"


def build_table(results, seeds):
    """``results``: {variant: [(top1, top5, train_top1)] per seed}; rows as dicts, in VARIANTS order."""
    full1, full5 = (summarise([r[i] for r in results.get("full", [])])[0] for i in (0, 1))
    rows = []
    for name, paper in [(v[0], v[3]) for v in VARIANTS] + [TEN_CROP]:
        if name not in results:
            continue
        runs = results[name]
        (m1, s1), (m5, s5), (mt, _) = (summarise([r[i] for r in runs]) for i in (0, 1, 2))
        base1, base5 = (full1, full5) if name != "ten-crop" else results["ten-crop-base"]
        rows.append({"variant": name, "seeds": len(runs),
                     "val_top1_err": m1, "val_top1_sd": s1, "val_top5_err": m5, "val_top5_sd": s5,
                     "train_top1_err": mt,
                     "d_top1": None if (m1 is None or base1 is None or name == "full") else m1 - base1,
                     "d_top5": None if (m5 is None or base5 is None or name == "full") else m5 - base5,
                     "paper": paper})
    return rows


COLUMNS = ["variant", "seeds", "val_top1_err", "val_top1_sd", "val_top5_err", "val_top5_sd", "train_top1_err",
           "d_top1", "d_top5", "paper"]


def table_text(rows):
    head = ["variant", "seeds", "top-1 %", "sd", "top-5 %", "sd", "train top-1", "d top-1", "d top-5",
            "paper's d (top-1 / top-5)"]
    body = [[r["variant"], str(r["seeds"]), fmt(r["val_top1_err"]), fmt(r["val_top1_sd"]), fmt(r["val_top5_err"]),
             fmt(r["val_top5_sd"]), fmt(r["train_top1_err"]), fmt(r["d_top1"], True), fmt(r["d_top5"], True),
             r["paper"]] for r in rows]
    widths = [max(len(x[i]) for x in [head] + body) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) if i in (0, 9) else c.rjust(w) for i, (c, w) in enumerate(zip(x, widths)))
             for x in [head] + body]
    return "\n".join(lines)


def table_csv(rows):
    buf = io.StringIO()
    out = csv.writer(buf, lineterminator="\n")
    out.writerow(COLUMNS)
    for r in rows:
        out.writerow([r[c] if isinstance(r[c], (str, int)) else fmt(r[c]) if r[c] is not None else ""
                      for c in COLUMNS])
    return buf.getvalue()


def save_bars(rows, path, title):
    """Validation top-1 and top-5 error per variant as bars, +-1 sd error bars over seeds."""
    w, h = 140 + 130 * len(rows), 520
    x0, y0, x1, y1 = 70, 70, w - 20, h - 70
    img = Image.new("RGB", (w, h), "white")
    draw = ImageDraw.Draw(img)
    small, big = _font(13), _font(16)
    draw.text((x0, 14), title, fill=(0, 0, 0), font=big)
    colours = {"val_top1_err": (31, 119, 180), "val_top5_err": (255, 127, 14)}
    tops = [(r[k] or 0) + (r[k.replace("_err", "_sd")] or 0) for r in rows for k in colours]
    vmax = max(tops + [1.0])
    step = nice_step(vmax, 6)
    top = math.ceil(vmax * 1.08 / step) * step
    for i in range(int(round(top / step)) + 1):
        y = y1 - i * step / top * (y1 - y0)
        draw.line([(x0, y), (x1, y)], fill=(225, 225, 225))
        label = f"{i * step:g}%"
        draw.text((x0 - 8 - draw.textlength(label, font=small), y - 8), label, fill=(90, 90, 90), font=small)
    lx = x1
    for key, label in reversed([("val_top1_err", "val top-1 error"), ("val_top5_err", "val top-5 error")]):
        lx -= draw.textlength(label, font=small) + 34
        draw.rectangle([lx, 44, lx + 16, 56], fill=colours[key])
        draw.text((lx + 22, 42), label, fill=(0, 0, 0), font=small)
    slot = (x1 - x0) / len(rows)
    for j, r in enumerate(rows):
        cx = x0 + (j + 0.5) * slot
        for k, (key, colour) in enumerate(colours.items()):
            v, sd = r[key], r[key.replace("_err", "_sd")]
            if v is None:
                continue
            left = cx - 40 + k * 40
            yv = y1 - v / top * (y1 - y0)
            draw.rectangle([left, yv, left + 36, y1], fill=colour)
            if sd:
                ya, yb = y1 - (v + sd) / top * (y1 - y0), y1 - max(v - sd, 0) / top * (y1 - y0)
                mid = left + 18
                draw.line([(mid, ya), (mid, yb)], fill=(0, 0, 0), width=2)
                draw.line([(mid - 6, ya), (mid + 6, ya)], fill=(0, 0, 0), width=2)
                draw.line([(mid - 6, yb), (mid + 6, yb)], fill=(0, 0, 0), width=2)
            text = f"{v:.1f}"  # above the bar and its whisker
            above = y1 - (v + (sd or 0)) / top * (y1 - y0)
            draw.text((left + 18 - draw.textlength(text, font=small) / 2, above - 17), text, fill=(0, 0, 0), font=small)
        label = f"{r['variant']} ({r['seeds']})"
        draw.text((cx - draw.textlength(label, font=small) / 2, y1 + 8), label, fill=(0, 0, 0), font=small)
        if r["d_top1"] is not None:
            d = f"{r['d_top1']:+.1f} / {r['d_top5']:+.1f}" if r["d_top5"] is not None else f"{r['d_top1']:+.1f}"
            draw.text((cx - draw.textlength(d, font=small) / 2, y1 + 26), d, fill=(90, 90, 90), font=small)
    note = ("(seeds) under each variant; below it, the difference from full in points (top-1 / top-5); "
            "bars: mean over seeds, whiskers +-1 sd")
    draw.text((x0, y1 + 46), note, fill=(90, 90, 90), font=small)
    draw.rectangle([x0, y0, x1, y1], outline=(0, 0, 0))
    atomic_write(path, lambda f: img.save(f, format="PNG"))


# -- the command ----------------------------------------------------------------------------

QUICK_ARGS = ["--model", "tiny", "--resize-size", "28", "--crop-size", "24", "-b", "16", "--stats-images", "60",
              "-j", "1"]


def parse_args(argv):
    """The study's options; whatever follows a ``--`` goes to every training command as it is
    (``-- --backend cupy --devices 0,1 -j 8``)."""
    argv = list(argv)
    passed = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[:argv.index("--")] if "--" in argv else argv
    p = Parser(prog="ablations.py", formatter_class=HelpFormatter, description=__doc__.split("\n\n")[0],
               usage="%(prog)s [options] [-- training-command options]")
    p.add_argument("--out", metavar="DIR", default=os.path.join("runs", "ablations"),
                   help="one folder per variant and seed under it, and the table (default: %(default)s)")
    p.add_argument("--data", metavar="DIR", help="passed to the training command (default: the embedded dataset)")
    p.add_argument("--seeds", metavar="S,S,...", help="seeds, one run each per variant (default 0,1; 0 with --quick)")
    p.add_argument("--epochs", type=int_at_least(1), metavar="N",
                   help="epochs of every run (default 16, the embedded recipe's; 1 with --quick)")
    p.add_argument("--max-images", type=int_at_least(1), metavar="N",
                   help="training and validation images per run (default: all; 32 with --quick)")
    p.add_argument("--model", metavar="NAME", help="the training command's --model (default: its own choice; "
                   "tiny with --quick)")
    p.add_argument("--variants", metavar="NAME,...", help="only these (default: all: "
                   + ",".join([v[0] for v in VARIANTS] + [TEN_CROP[0]]) + ")")
    p.add_argument("--quick", action="store_true", help="a seconds-long smoke study (CI): the tiny network, "
                   "32 images, 1 epoch (2 steps) per variant, one seed")
    args = p.parse_args(argv)
    try:
        args.seeds = [int(s) for s in (args.seeds or ("0" if args.quick else "0,1")).split(",")]
    except ValueError:
        p.error(f"argument --seeds: must be integers >= 0 separated by commas, got {args.seeds!r}")
    if any(s < 0 for s in args.seeds) or len(set(args.seeds)) != len(args.seeds):
        p.error(f"argument --seeds: must be distinct integers >= 0, got {','.join(map(str, args.seeds))}")
    names = [v[0] for v in VARIANTS] + [TEN_CROP[0]]
    args.variants = names if args.variants is None else args.variants.split(",")
    unknown = [v for v in args.variants if v not in names]
    if unknown:
        p.error(f"argument --variants: unknown {', '.join(unknown)}; choose from {','.join(names)}")
    if ("ten-crop" in args.variants or len(args.variants) > 1) and "full" not in args.variants:
        args.variants.insert(0, "full")  # every difference is taken from the full recipe
    args.epochs = args.epochs or (1 if args.quick else 16)
    args.max_images = args.max_images or (32 if args.quick else None)
    args.train_args = []
    if args.quick:
        args.model = args.model or "tiny"
        args.train_args += QUICK_ARGS[2:]
    if args.model:
        args.train_args += ["--model", args.model]
    if args.max_images:
        args.train_args += ["--max-images", str(args.max_images)]
    owned = {"--seed", "--epochs", "--output-dir", "--resume", "--overwrite", "--test-only", "--data", "--model",
             "--max-images", "--weights", "--ten-crop", "--activation", "--lrn", "--no-lrn", "--pool", "--dropout",
             "--lighting", "--no-lighting"}
    clash = sorted(a.split("=")[0] for a in passed if a.split("=")[0] in owned)
    if clash:
        p.error(f"{', '.join(clash)} after -- : this script sets those itself; use its own options")
    args.train_args += passed
    args.passed = passed  # (also given to --resume and --test-only: the backend, devices, workers)
    if args.data is not None and not os.path.isdir(args.data):
        p.error(f"argument --data: {args.data} is not a folder")
    return args


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    os.makedirs(args.out, exist_ok=True)
    log = os.path.join(args.out, "ablations.log")
    flags_known = supported_flags()
    results, started = {}, time.time()
    try:
        for name, flags, expect, _ in VARIANTS:
            if name not in args.variants:
                continue
            missing = [f for f in flags if f.startswith("--") and f not in flags_known]
            if missing:
                print(f"note: skipping {name}: the training command has no {' '.join(missing)}")
                continue
            results[name] = []
            for seed in args.seeds:
                folder = os.path.join(args.out, folder_name(name), f"seed{seed}")
                t0 = time.time()
                row, what = ensure_run(folder, flags, expect, seed, args, log)
                results[name].append((row.get("val_top1_err"), row.get("val_top5_err"), row.get("train_top1_err")))
                print(f"{name:12s} seed {seed}: {what} ({time.time() - t0:.0f} s): val_top1_err "
                      f"{fmt(row.get('val_top1_err'))}%  val_top5_err {fmt(row.get('val_top5_err'))}%", flush=True)
        if "ten-crop" in args.variants and "full" in results:
            if "--ten-crop" not in flags_known:
                print("note: skipping ten-crop: the training command has no --ten-crop")
            else:
                ten, centre = [], []
                for seed in args.seeds:
                    folder = os.path.join(args.out, "full", f"seed{seed}")
                    ev = ensure_eval(folder, os.path.join(args.out, "full", f"seed{seed}-eval.json"), args.passed, log)
                    centre.append(ev["centre"])
                    ten.append((*ev["ten"], None))
                    print(f"{'ten-crop':12s} seed {seed}: centre {fmt(ev['centre'][0])}% / {fmt(ev['centre'][1])}%, "
                          f"ten crops {fmt(ev['ten'][0])}% / {fmt(ev['ten'][1])}% (top-1 / top-5)", flush=True)
                results["ten-crop"] = ten
                # ten-crop is compared with the same checkpoints on the centre crop alone
                results["ten-crop-base"] = tuple(summarise([c[i] for c in centre])[0] for i in (0, 1))
    except StudyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; finished runs are kept, and the same command continues the interrupted one",
              file=sys.stderr)
        return 130

    rows = build_table(results, args.seeds)
    if not rows:
        print("error: no variant could be run", file=sys.stderr)
        return 2
    print()
    print(table_text(rows))
    print(f"(errors in %, final epoch, mean and sample sd over seeds {','.join(map(str, args.seeds))}; d = variant "
          f"minus full; ten-crop's d is against the same checkpoints' centre crop; {time.time() - started:.0f} s)")
    try:
        write_text(os.path.join(args.out, "ablations.csv"), table_csv(rows))
        what = f"{args.epochs} epochs, seed{'s' if len(args.seeds) > 1 else ''} {','.join(map(str, args.seeds))}" + (
            f", {args.max_images} images" if args.max_images else "")
        save_bars(rows, os.path.join(args.out, "ablations.png"), f"Ablations on {args.data or 'the embedded dataset'} "
                  f"({what})")
    except WriteFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {os.path.join(args.out, 'ablations.csv')} and ablations.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
