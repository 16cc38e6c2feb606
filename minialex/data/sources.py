"""What a ``--data`` argument names: an image folder or a set of tar shards, split into train and val.

Accepted (docs/data.md, "Tar shards"):
* ``root`` with ``train/`` and ``val/``, each holding class folders of images
  (the ILSVRC layout) or ``.tar`` shards;
* a folder of shards, a brace pattern, or ``::``-joined patterns, whose file
  names say the split: ``*train*`` shards for training, ``*val*`` ones
  (``validation`` too) for validation.
"""

import os

from .errors import DataError
from .folder import ImageFolder, check_same_classes
from .tarshards import LIST_SEPARATOR, ShardDataset, shard_paths

SPLITS = ("train", "val")


def _has_tars(folder):
    return any(e.is_file() and e.name.endswith(".tar") for e in os.scandir(folder))


def _split_of(path):
    name = os.path.basename(path).lower()
    if "train" in name:
        return "train"
    return "val" if "val" in name else None


def open_train_val(data, rank=0, world_size=1, buffer_size=1000):
    """(train, val) datasets for ``data``: ImageFolders or ShardDatasets with the same classes.

    ``rank`` and ``world_size`` give each data-parallel process its own shards.
    """
    data = os.fspath(data)
    shard_args = {"rank": rank, "world_size": world_size, "buffer_size": buffer_size}
    if os.path.isdir(data) and all(os.path.isdir(os.path.join(data, s)) for s in SPLITS):
        out = []
        for split in SPLITS:
            folder = os.path.join(data, split)
            if _has_tars(folder):  # classes.txt beside the shards or in data/
                out.append(ShardDataset(folder, **shard_args))
            elif any(e.is_dir() for e in os.scandir(folder)):
                out.append(ImageFolder(data, split, classes=out[0].classes if out else None))
            else:
                raise DataError(f"{folder} has neither class folders nor .tar shards")
        train, val = out
    elif os.path.isdir(data) and not _has_tars(data):
        raise DataError(f"{data} has no train/ and val/ folders and no .tar shards "
                        f"(expected {data}/train/<class>/<image> or *train*.tar and *val*.tar shards)")
    elif os.path.isdir(data) or LIST_SEPARATOR in data or "{" in data or data.endswith(".tar"):
        paths = shard_paths(data)
        by_split = {s: [p for p in paths if _split_of(p) == s] for s in SPLITS}
        for s, found in by_split.items():
            if not found:
                raise DataError(f"none of the {len(paths)} shards in {data} has {s!r} in its name "
                                f"(expected *train*.tar and *val*.tar, or {s}/ folders)")
        train = ShardDataset(by_split["train"], **shard_args)
        val = ShardDataset(by_split["val"], **shard_args)
    else:
        raise DataError(f"data path not found: {data}")
    check_same_classes(train.classes, val.classes, "the validation set")
    return train, val
