"""minialex.data: datasets, the paper's preprocessing, and a threaded loader.

Read docs/data.md for how each piece maps to the AlexNet paper.
"""

from .cifar10 import ArrayDataset, Cifar10, cifar10_datasets, find_cifar10, load_cifar10
from .errors import CorruptImageError, DataError
from .folder import IMG_EXTENSIONS, ImageFolder, check_same_classes, read_image, read_synset_words
from .loader import DataLoader, epoch_order, sample_rng
from .pipeline import EvalTransform, TrainTransform
from .stats import (Stats, compute_stats, dataset_fingerprint, load_or_compute_stats, load_stats,
                    save_stats)
from .synthetic import (SYNTHETIC_CLASSES, default_synthetic_root, ensure_synthetic_dataset,
                        render_sample)
from .transforms import (center_crop, crop, hflip, pca_lighting, random_crop, random_crop_offsets,
                         resize_shorter, ten_crop)

__all__ = [
    "ArrayDataset", "Cifar10", "CorruptImageError", "DataError", "DataLoader", "EvalTransform",
    "IMG_EXTENSIONS", "ImageFolder", "SYNTHETIC_CLASSES", "Stats", "TrainTransform",
    "center_crop", "check_same_classes", "cifar10_datasets", "compute_stats", "crop",
    "dataset_fingerprint", "default_synthetic_root", "ensure_synthetic_dataset", "epoch_order",
    "find_cifar10", "hflip", "load_cifar10", "load_or_compute_stats", "load_stats",
    "pca_lighting", "random_crop", "random_crop_offsets", "read_image", "read_synset_words",
    "render_sample", "resize_shorter", "sample_rng", "save_stats", "ten_crop",
]
