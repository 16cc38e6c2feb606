"""Input checks shared by the layers, so that bad input fails early with a message
that names the layer and the shapes, not deep inside a matrix product."""

from .module import describe


def check_float_input(layer, x, ndim, channels=None, channel_axis=1):
    """Raise ValueError unless ``x`` is a floating array with ``ndim`` dimensions
    (and ``channels`` entries on ``channel_axis`` when given)."""
    name = type(layer).__name__
    if not hasattr(x, "shape") or not hasattr(x, "dtype"):
        raise ValueError(f"{name} expects an array, got {type(x).__name__}")
    if x.ndim != ndim:
        layout = {4: "(N, C, H, W)", 2: "(N, features)"}.get(ndim, f"{ndim} dimensions")
        raise ValueError(f"{name} expects input of shape {layout}, got {describe(x)}")
    if x.dtype.kind != "f":
        raise ValueError(
            f"{name} expects a floating-point input (float32 or float64), got {describe(x)}; "
            "convert it with x.astype(np.float32)"
        )
    if channels is not None and x.shape[channel_axis] != channels:
        raise ValueError(
            f"{name} was built for {channels} input channels/features, got input {describe(x)}"
        )


def check_same_dtype(layer, x, param):
    """Layers compute in one dtype: a float64 input with float32 weights is a mistake
    (it would silently upcast the whole network), so say so."""
    if x.dtype != param.data.dtype:
        raise ValueError(
            f"{type(layer).__name__}: input dtype {x.dtype} differs from parameter dtype "
            f"{param.data.dtype}; cast the model with model.astype({x.dtype.name}) or the input"
        )


def pair(value, what):
    """``3 -> (3, 3)``; ``(3, 2)`` stays; anything else is a ValueError."""
    if isinstance(value, int):
        value = (value, value)
    value = tuple(value)
    if len(value) != 2 or not all(isinstance(v, int) for v in value):
        raise ValueError(f"{what} must be an int or a pair of ints, got {value!r}")
    return value
