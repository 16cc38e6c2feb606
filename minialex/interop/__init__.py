"""minialex.interop: weights that leave minialex and come back, and pictures of what a network
learned. A checkpoint becomes a .safetensors file (the weights under the state_dict() names,
readable without torch) or an ONNX inference graph; minialex.interop.torch builds the same
network as a torch.nn.Module from the one table in minialex/models/architecture.py; and
.safetensors and .onnx files (Caffe's bvlc_alexnet among them) load back as --weights. The
paper's Figure 4 is drawn by figure4.py. Explained in docs/interop.md; tested in tests/interop/.

The optional packages (safetensors, onnx, onnxruntime, torch) are imported only by the
function that needs them, so ``import minialex.interop`` works without any of them.
"""

from .formats import EXPORT_SUFFIXES, WEIGHT_SUFFIXES, MissingPackageError, export_checkpoint, read_weights

__all__ = ["EXPORT_SUFFIXES", "WEIGHT_SUFFIXES", "MissingPackageError", "export_checkpoint", "read_weights"]
