"""minialex.models: the AlexNet network built from minialex.nn layers, on one device or split
across two as in the paper. Explained in docs/alexnet.md and docs/two-gpu.md.
"""

from .alexnet import AlexNet
from .config import PRESETS, AlexNetConfig, alexnet_config
from .two_column import TwoColumnAlexNet

__all__ = ["AlexNet", "AlexNetConfig", "PRESETS", "TwoColumnAlexNet", "alexnet_config"]
