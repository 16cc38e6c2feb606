"""Export a minialex checkpoint's weights for other frameworks; the suffix of --to picks the format.

    python examples/export.py --checkpoint runs/alexnet-embedded --to alexnet.safetensors
    python examples/export.py --checkpoint runs/alexnet-embedded --to alexnet.onnx

.safetensors: the weights under the state_dict() names (conv1.weight ... fc8.bias), float32, with
the config, class names and preprocessing (mean, crop, the LRN convention) as metadata; PyTorch
loads it into minialex.interop.torch's module. .onnx: the inference graph (opset 17), input
(N, 3, S, S) after mean subtraction, output logits, checked by the ONNX checker. A .safetensors
or .onnx file converts too (Caffe's bvlcalexnet-12.onnx to .safetensors, say). docs/interop.md.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # run from a checkout

from minialex.interop import EXPORT_SUFFIXES, export_checkpoint  # noqa: E402
from minialex.models import AlexNetConfig  # noqa: E402
from minialex.atomic import WriteFailed  # noqa: E402
from minialex.weights.checkpoint import CheckpointError  # noqa: E402
from minialex.train.options import EXIT_USAGE, HelpFormatter, Parser, run_main  # noqa: E402


def build_parser():
    p = Parser(prog="examples/export.py", formatter_class=HelpFormatter,
               description="Write a checkpoint's weights as .safetensors (for PyTorch and any safetensors "
                           "reader) or as an ONNX inference graph.")
    p.add_argument("--checkpoint", required=True, metavar="CKPT",
                   help="a checkpoint file, a run folder (its checkpoint_best.npz), or a .safetensors/.onnx file")
    p.add_argument("--to", required=True, metavar="OUT",
                   help=f"the file to write; its suffix chooses the format: {', '.join(EXPORT_SUFFIXES)}")
    return p


def run(argv):
    args = build_parser().parse_args(argv)
    source, config = export_checkpoint(args.checkpoint, args.to)
    cfg = AlexNetConfig.from_dict(config)
    size = os.path.getsize(args.to)
    what = ("ONNX graph, opset 17, accepted by the ONNX checker; input (N, 3, "
            f"{cfg.input_size}, {cfg.input_size}) RGB minus the mean in its metadata, output logits"
            if args.to.lower().endswith(".onnx") else
            "safetensors, float32 weights under the state_dict() names, config and preprocessing as metadata")
    shown = f"{size / 2**20:.1f} MiB" if size >= 2**20 else f"{size / 2**10:.1f} KiB"
    print(f"wrote {args.to} ({shown}) from {source}: {cfg.num_parameters():,} parameters, "
          f"{cfg.num_classes} classes; {what}")
    return 0


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    try:
        return run_main(run, argv)
    except (CheckpointError, WriteFailed) as exc:  # a file that cannot be read, or written
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
