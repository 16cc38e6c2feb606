"""Inference from a checkpoint: rebuild the network from the config stored in it, preprocess
one image exactly as validation does, and return the top-k classes with probabilities."""

import numpy as np

from ..data import DataError, EvalTransform, Stats, read_image
from ..models import AlexNet
from ..nn import softmax
from .checkpoint import CheckpointError, load_checkpoint


class Predictor:
    """``Predictor(path).topk(image_path, k=5) -> [(probability, wnid, name), ...]``."""

    def __init__(self, checkpoint_path):
        arrays, meta = load_checkpoint(checkpoint_path)
        if "model_config" not in meta or "preprocess" not in meta:
            raise CheckpointError(f"{checkpoint_path} lacks the model config or preprocessing settings")
        self.model = AlexNet.from_config(meta["model_config"]).eval()
        state = {k[len("model/"):]: v for k, v in arrays.items() if k.startswith("model/")}
        try:
            self.model.load_state_dict(state)
        except ValueError as exc:
            raise CheckpointError(f"{checkpoint_path}: {exc}") from None
        self.classes = meta["classes"]
        self.names = meta.get("names") or self.classes
        pre = meta["preprocess"]
        mean_image = arrays.get("stats/mean_image")
        stats = Stats(mean_image=mean_image, mean_rgb=arrays["stats/mean_rgb"], eigvals=np.ones(3, np.float32),
                      eigvecs=np.eye(3, dtype=np.float32), count=0)
        self.transform = EvalTransform(stats, size_crop=pre["crop"], size_resize=pre["resize"],
                                       mean=pre.get("mean", "image"))

    def topk(self, image_path, k=5):
        x = self.transform(read_image(image_path))[None]  # (1, 3, S, S)
        probs = softmax(self.model.forward(x))[0]  # (K,)
        order = np.argsort(-probs)[:k]
        return [(float(probs[i]), self.classes[i], self.names[i]) for i in order]


__all__ = ["Predictor", "DataError"]
