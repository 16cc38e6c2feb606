"""How one sample becomes its row of a batch: the same code in a loader thread and in a worker process.

The loader (loader.py) decides which samples form a batch and who works on
them; this file does the work for one sample: its generator from (seed,
epoch, index), the transform's random choices, the decode, and the write
into the batch. Keeping it in one place is what makes threads, processes
and any worker count give the same batches bit for bit (docs/data.md,
"The loader", determinism rule).
"""

import numpy as np

from .transforms import center_crop


def sample_rng(seed, epoch, index):
    """The generator for one sample's augmentation: a function of (seed, epoch, index) only.

    The same generator as ``np.random.default_rng([seed, epoch, index])``, built
    without default_rng's checks of its argument (7 of its 19 microseconds, paid
    once per image)."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, epoch, int(index)])))


class SampleLoader:
    """Loads, transforms and stores single samples of ``dataset`` for a loader.

    Args:
        dataset: ``load(i, shorter=None, crop=None)`` for indexed datasets, or
            ``stream()`` plus ``decode(record, shorter=None, crop=None)`` for
            streaming ones (tar shards); a ref is an index or a record.
        transform: ``transform(img, rng)``; with ``draw``, ``finish`` and
            ``output_shape`` (TrainTransform, EvalTransform) the sample is
            written straight into its row of the batch (``in_place``).
        seed: the loader's seed.
    """

    def __init__(self, dataset, transform, seed):
        self.dataset, self.transform, self.seed = dataset, transform, seed
        self.streaming = hasattr(dataset, "stream")
        self.decode_size = getattr(transform, "decode_size", None)
        # The fast path: random choices first, then one pass into the batch array.
        self.in_place = all(hasattr(transform, a) for a in ("draw", "finish", "output_shape"))
        # ... and a dataset that resamples only the crop window (transforms.resize_crop).
        self.load_crop = self.in_place and getattr(dataset, "supports_crop", False)

    @property
    def output_shape(self):
        """The shape of one row of the batch, or None when samples are stacked afterwards."""
        return tuple(self.transform.output_shape) if self.in_place else None

    def _fetch(self, ref, **kwargs):
        if self.streaming:
            return self.dataset.decode(ref, **kwargs)
        return self.dataset.load(ref, **kwargs)

    def index(self, ref):
        """The sample's index in the whole dataset (what its generator is seeded with)."""
        return ref.index if self.streaming else ref

    def load(self, epoch, ref, out=None):
        """(label, array): the transformed sample ``ref`` of epoch ``epoch``.

        With ``in_place`` the result is written into ``out`` (one row of the
        batch) and the array returned is None; otherwise ``out`` is unused and
        the transform's array is returned, for the loader to stack. Raises
        CorruptImageError for an image that cannot be decoded.
        """
        tf = self.transform
        rng = sample_rng(self.seed, epoch, self.index(ref))
        if not self.in_place:
            if self.decode_size is None:
                img, label = self._fetch(ref)
            else:
                img, label = self._fetch(ref, shorter=self.decode_size)
            return label, tf(img, rng)
        draw = tf.draw(rng)
        if self.load_crop:
            window, label = self._fetch(ref, shorter=self.decode_size, crop=draw.crop)
        else:
            img, label = self._fetch(ref, shorter=self.decode_size)
            top, left, s = draw.crop
            window = center_crop(img, self.decode_size)[top:top + s, left:left + s]
        tf.finish(window, draw, out)
        return label, None
