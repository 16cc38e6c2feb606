"""Whether a checkpoint fits a network, said in one line that names every difference: the
architecture fields, the array shapes (checkpoint vs this run) and the classes. Used before
any file is written, so a run that cannot continue stops at once. The file format itself is
in checkpoint.py beside this file; docs/training.md shows the messages."""

from ..models import AlexNetConfig
from .checkpoint import CheckpointError, split_state


def shape_differences(state, model_state, limit=4):
    """Text like ``fc8.weight (10, 8) vs (3, 8)`` for each array whose shape (or presence) differs;
    past ``limit`` of them, a count (``limit=None``: every one)."""
    diffs = []
    for name in list(model_state) + [n for n in state if n not in model_state]:
        a = tuple(state[name].shape) if name in state else "absent"
        b = tuple(model_state[name].shape) if name in model_state else "absent"
        if a != b:
            diffs.append(f"{name} {a} vs {b}")
    if limit is not None and len(diffs) > limit:
        diffs = diffs[:limit] + [f"and {len(diffs) - limit} more"]
    return diffs


def load_weights(model, state, path, skip_prefixes=()):
    """Copy ``state`` into ``model``, except the layers named in ``skip_prefixes``, which keep
    their fresh initialisation (``("fc8.",)`` for a new classifier). Raises CheckpointError
    naming every name and shape that differs (checkpoint vs this model), all of them in one line."""
    own = model.state_dict()
    keep = {k: v for k, v in state.items() if not k.startswith(tuple(skip_prefixes))}
    # The skipped layers are filled from the model itself, so the public strict load sees a
    # complete state: everything from the checkpoint but the reset layers.
    merged = dict(keep, **{k: v for k, v in own.items() if k.startswith(tuple(skip_prefixes))})
    diffs = shape_differences(merged, own, limit=None)
    if diffs:
        raise CheckpointError(f"{path} does not fit this network (checkpoint vs this run): " + ", ".join(diffs))
    try:
        model.load_state_dict(merged, strict=True)
    except ValueError as exc:
        raise CheckpointError(f"{path}: {' '.join(str(exc).split())}") from None


def config_differences(saved, current):
    """``num_classes 10 vs 3``-style text for each architecture field that differs."""
    saved, current = saved or {}, current or {}
    return [f"{k} {saved.get(k)} vs {current.get(k)}" for k in current if saved.get(k) != current.get(k)] + \
           [f"{k} {saved[k]} vs absent" for k in saved if k not in current]


def class_differences(saved, current):
    only_saved = [c for c in saved if c not in set(current)]
    only_here = [c for c in current if c not in set(saved)]
    if not only_saved and not only_here:
        return "the same classes in another order"
    show = lambda names: ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")  # noqa: E731
    parts = []
    if only_saved:
        parts.append(f"{len(only_saved)} only in the checkpoint ({show(only_saved)})")
    if only_here:
        parts.append(f"{len(only_here)} only in this data ({show(only_here)})")
    return "; ".join(parts)


def check_resumable(model, classes, arrays, meta, path):
    """Raise CheckpointError, in one line, unless the checkpoint continues this very network on
    these classes: the architecture fields and shapes that differ, or the classes that do."""
    model_state, _ = split_state(arrays)
    saved_config = meta.get("model_config")
    try:  # fields added since the checkpoint was written take their defaults, which match its network
        saved_config = AlexNetConfig.from_dict(saved_config).to_dict()
    except (TypeError, ValueError):
        pass  # not a config this version reads: reported as a difference below
    if saved_config != model.config:
        diffs = config_differences(saved_config, model.config)
        shapes = shape_differences(model_state, model.state_dict())
        hint = (f"; to start from its weights with a new classifier, use --weights {path} --reset-classifier"
                if [d.split()[0] for d in diffs] == ["num_classes"]
                else "; leave out --model/--crop-size to use the checkpoint's")
        raise CheckpointError(
            f"{path} holds another network (checkpoint vs this run): {', '.join(diffs)}"
            + (f"; shapes differ: {', '.join(shapes)}" if shapes else "") + hint)
    if meta.get("classes") != list(classes):
        raise CheckpointError(f"{path} was trained on other classes than this dataset's: "
                              f"{class_differences(meta.get('classes') or [], list(classes))}")


def load_start_weights(model, arrays, meta, path, classes, reset_classifier):
    """--weights: copy a checkpoint's weights into the new model (all but fc8 with --reset-classifier)."""
    state, _ = split_state(arrays)
    if reset_classifier:
        load_weights(model, state, path, skip_prefixes=("fc8.",))
        return
    if meta.get("classes") is None:  # a file that names no classes (an ONNX graph from elsewhere)
        shapes = shape_differences(state, model.state_dict(), limit=None)
        if shapes and all(d.startswith("fc8.") for d in shapes):
            raise CheckpointError(f"{path} has another number of classes than this data's {len(classes)} "
                                  f"(file vs this run: {', '.join(shapes)}); add --reset-classifier to start "
                                  "from every layer but fc8")
        load_weights(model, state, path)  # its classes are taken to be the data's, in sorted order
        return
    saved = list(meta.get("classes") or [])
    if len(saved) != len(classes):
        shapes = shape_differences(state, model.state_dict())
        raise CheckpointError(f"{path} was trained for {len(saved)} classes, this data has {len(classes)} "
                              f"(checkpoint vs this run: {', '.join(shapes)}); add --reset-classifier to "
                              "start from every layer but fc8")
    if saved != classes:
        raise CheckpointError(f"{path} was trained on other classes than this data's: "
                              f"{class_differences(saved, classes)}; add --reset-classifier to start from "
                              "every layer but fc8")
    load_weights(model, state, path)


__all__ = ["load_start_weights", "shape_differences", "load_weights", "config_differences", "class_differences",
           "check_resumable"]
