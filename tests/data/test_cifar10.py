import os
import pickle

import numpy as np
import pytest

from minialex.data import (ArrayDataset, DataError, DataLoader, TrainTransform, cifar10_datasets,
                           load_cifar10)


def write_fake_cifar(root, n=4, protocol=2):
    """Batches in the official format: data (n, 3072) channel-planar uint8, labels list."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for b, name in enumerate([f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]):
        planar = np.zeros((n, 3, 32, 32), np.uint8)
        planar[:, 0] = b          # red plane = batch number
        planar[:, 1] = np.arange(n)[:, None, None]  # green plane = image number
        planar[:, 2, 0, 1] = 200  # one blue pixel at row 0, column 1
        d = {"batch_label": name, "data": planar.reshape(n, 3072),
             "labels": [(b + i) % 10 for i in range(n)], "filenames": [f"f{i}.png" for i in range(n)]}
        with open(folder / name, "wb") as f:
            pickle.dump(d, f, protocol=protocol)
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": names, "num_vis": 3072}, f, protocol=protocol)
    return folder


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_reads_batches_as_nhwc(tmp_path, protocol):
    folder = write_fake_cifar(tmp_path, protocol=protocol)
    for root in (tmp_path, folder):  # the parent or the batch folder itself
        c = load_cifar10(root)
        assert c.train_images.shape == (20, 32, 32, 3) and c.train_images.dtype == np.uint8
        assert c.test_images.shape == (4, 32, 32, 3)
        assert c.train_labels.dtype == np.int64 and c.train_labels[:4].tolist() == [0, 1, 2, 3]
        assert c.classes[0] == "airplane" and len(c.classes) == 10
        assert c.train_images[5, 0, 0, 0] == 1 and c.train_images[5, 3, 3, 1] == 1
        assert c.test_images[0, 0, 1, 2] == 200 and c.test_images[0, 1, 0, 2] == 0


def test_missing_and_malicious(tmp_path):
    with pytest.raises(DataError, match="cifar-10-python.tar.gz"):
        load_cifar10(tmp_path)
    folder = write_fake_cifar(tmp_path)
    os.remove(folder / "data_batch_3")
    with pytest.raises(DataError, match="data_batch_3"):
        load_cifar10(tmp_path)

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))
    with open(folder / "data_batch_3", "wb") as f:
        pickle.dump({"data": Evil()}, f)
    with pytest.raises(DataError, match="refusing"):
        load_cifar10(tmp_path)


def test_array_dataset_with_loader(tmp_path):
    write_fake_cifar(tmp_path)
    train, test = cifar10_datasets(tmp_path)
    assert isinstance(train, ArrayDataset) and len(train) == 20 and train.names == train.classes
    img, label = train.load(3)
    assert img.shape == (32, 32, 3) and label == 3
    assert train.load(3, shorter=16)[0].shape == (16, 16, 3)
    loader = DataLoader(train, TrainTransform(None, 28, 32), batch_size=8, workers=2)
    x, y = next(iter(loader))
    assert x.shape == (8, 3, 28, 28) and y.dtype == np.int64
    with pytest.raises(DataError, match="uint8"):
        ArrayDataset(np.zeros((2, 4, 4, 3), np.float32), [0, 1], ["a", "b"])
