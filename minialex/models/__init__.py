"""minialex.models: the AlexNet network built from minialex.nn layers and the one
table of minialex/models/architecture.py, on one device or split across two as in the paper. Explained in docs/alexnet.md and docs/two-gpu.md.
"""

from .alexnet import AlexNet
from .config import PRESETS, AlexNetConfig, alexnet_config

__all__ = ["AlexNet", "AlexNetConfig", "PRESETS", "alexnet_config"]
