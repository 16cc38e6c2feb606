"""Print the most probable classes of one or more images under a trained minialex checkpoint.

    python examples/predict.py photo.jpg other.png --checkpoint runs/alexnet-embedded

The same program as the minialex-predict command; a run folder means its best checkpoint.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # run from a checkout

from minialex.train.predict import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
