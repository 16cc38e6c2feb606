"""Print the most probable classes of one or more images under a trained minialex checkpoint.

    python examples/predict.py photo.jpg other.png --checkpoint runs/alexnet-embedded
    python examples/predict.py photo.jpg --weights alexnet.onnx          # or .safetensors
    python examples/predict.py a.jpg b.jpg --checkpoint runs/alexnet-embedded --card card.png

The same program as the minialex-predict command; a run folder means its best checkpoint.
--weights reads exported .safetensors and ONNX files, Caffe's bvlcalexnet-12.onnx among them
(docs/interop.md); --card also draws the paper's Figure 4 (left): each image with its true class
and its top-5 classes as bars, the true one in red.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # run from a checkout

from minialex.train.predict import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
