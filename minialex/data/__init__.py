"""minialex.data: datasets, the paper's preprocessing, and a threaded loader.

Read docs/data.md for how each piece maps to the AlexNet paper.
"""

from .cifar10 import ArrayDataset, Cifar10, cifar10_datasets, find_cifar10, load_cifar10
from .errors import CorruptImageError, DataError
from .folder import (IMG_EXTENSIONS, ImageFolder, check_same_classes, decode_image, read_image,
                     read_synset_words)
from .loader import DataLoader, epoch_order, sample_rng
from .pipeline import EvalTransform, TrainTransform
from .skips import SkipLog
from .sources import open_train_val
from .stats import (Stats, compute_stats, dataset_fingerprint, load_or_compute_stats, load_stats,
                    save_stats)
from .synthetic import (SYNTHETIC_CLASSES, default_synthetic_root, ensure_synthetic_dataset,
                        render_sample)
from .tarshards import ShardDataset, ShardRecord, buffer_shuffle, expand_braces, shard_paths, write_shards
from .transforms import (center_crop, crop, hflip, lighting_offset, pca_lighting, random_crop,
                         random_crop_offsets, resize_crop, resize_shorter, ten_crop)

__all__ = [
    "ArrayDataset", "Cifar10", "CorruptImageError", "DataError", "DataLoader", "EvalTransform",
    "IMG_EXTENSIONS", "ImageFolder", "SYNTHETIC_CLASSES", "ShardDataset", "ShardRecord", "SkipLog",
    "Stats", "TrainTransform", "buffer_shuffle", "center_crop", "check_same_classes", "cifar10_datasets",
    "compute_stats", "crop", "dataset_fingerprint", "decode_image", "default_synthetic_root",
    "ensure_synthetic_dataset", "epoch_order", "expand_braces", "find_cifar10", "hflip",
    "lighting_offset", "load_cifar10", "load_or_compute_stats", "load_stats", "open_train_val",
    "pca_lighting", "random_crop", "random_crop_offsets", "read_image", "read_synset_words",
    "render_sample", "resize_crop", "resize_shorter", "sample_rng", "save_stats", "shard_paths",
    "ten_crop", "write_shards",
]
