"""Conv2d on CuPy: the reference's im2col + GEMM (minialex/nn/conv.py, derived in
docs/layers/conv2d.md) with im2col and col2im as one CUDA launch each (im2col.py here)
instead of one copy per kernel offset. The GEMMs are the layer's own (columns_forward,
columns_backward)."""

from .im2col import col2im, im2col


def forward(layer, x):
    """y (N, F, OH, OW); saves the columns (N, C, KH, KW, OH, OW) and the input's shape."""
    cols = im2col(x, layer.kernel_size, layer.stride, layer.padding)  # one launch
    return layer.columns_forward(cols), {"cols": cols, "x_shape": x.shape}


def backward(layer, saved, dout):
    dcols = layer.columns_backward(saved.cols, dout)
    if dcols is None:  # the layer does not need its input's gradient
        return None
    return col2im(dcols, saved.x_shape, layer.kernel_size, layer.stride, layer.padding)  # one launch
