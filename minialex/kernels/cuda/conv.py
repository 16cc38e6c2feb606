"""Conv2d on CuPy: the reference's im2col + GEMM (minialex/nn/conv.py, derived in
docs/layers/conv2d.md) arranged for a GPU. im2col and col2im are one CUDA launch each
(im2col.py here; the reference copies once per kernel offset), and the columns keep the
batch inside each row, (C*KH*KW, N*OH*OW), so each group is ONE GEMM over the whole batch
(the reference's batched matmul broadcasts the weight over N, which CuPy runs as many small
GEMMs plus helper kernels) and dW needs no transposed copy of the columns: cuBLAS reads
cols_g^T in place. Launches per layer: forward 2 + G, backward 5 + 3G (4 + 2G without dx).
Tested on the CPU through the twins (tests/kernels/test_cuda_twins.py)."""

from ... import backend
from .im2col import col2im_rows, im2col_rows


def forward(layer, x):
    """y (N, F, OH, OW); saves the columns (C, KH, KW, N, OH, OW) and the input's shape."""
    xp = backend.get_array_module(x)
    n = x.shape[0]
    g, f = layer.groups, layer.out_channels
    cols = im2col_rows(x, layer.kernel_size, layer.stride, layer.padding)  # (C, KH, KW, N, OH, OW)
    c, kh, kw, _, oh, ow = cols.shape
    k, nl = (c // g) * kh * kw, n * oh * ow
    cols_g = cols.reshape(g, k, nl)  # (G, K, N*L): a group's rows are contiguous (C is slowest)
    w_g = layer.weight.data.reshape(g, f // g, k)  # (G, F/G, K)
    yt = xp.empty((g, f // g, nl), dtype=x.dtype)  # (G, F/G, N*L) = (F, N, L)
    for gi in range(g):
        xp.matmul(w_g[gi], cols_g[gi], out=yt[gi])  # one GEMM per group
    # (F, N, L) -> (N, F, L) plus the bias: one elementwise launch that writes NCHW
    y = yt.reshape(f, n, oh * ow).transpose(1, 0, 2) + layer.bias.data.reshape(1, f, 1)
    return y.reshape(n, f, oh, ow), {"cols": cols, "x_shape": x.shape}


def backward(layer, saved, dout):
    """dx (N, C, H, W), or None without input_grad; adds into weight.grad and bias.grad."""
    xp = backend.get_array_module(dout)
    cols = saved.cols
    n, f, oh, ow = dout.shape
    g = layer.groups
    c, kh, kw = cols.shape[:3]
    k, nl = (c // g) * kh * kw, n * oh * ow
    dy = xp.ascontiguousarray(dout.reshape(n, f, oh * ow).transpose(1, 0, 2))  # (F, N, L): one copy
    dy_g = dy.reshape(g, f // g, nl)  # (G, F/G, N*L)
    cols_g = cols.reshape(g, k, nl)  # (G, K, N*L)
    layer.bias.grad += dy.sum(axis=(1, 2))  # db: sum over samples and pixels
    dw = layer.weight.grad.reshape(g, f // g, k)  # (G, F/G, K), a view of the gradient
    for gi in range(g):
        dw[gi] += xp.matmul(dy_g[gi], cols_g[gi].T)  # dW_g = dy_g cols_g^T, cols_g^T read in place
    if not layer.input_grad:
        return None
    w_g = layer.weight.data.reshape(g, f // g, k)
    dcols = xp.empty((g, k, nl), dtype=dout.dtype)  # (G, K, N*L) = (C, KH, KW, N, OH, OW)
    for gi in range(g):
        xp.matmul(w_g[gi].T, dy_g[gi], out=dcols[gi])  # dcols_g = W_g^T dy_g
    return col2im_rows(dcols.reshape(cols.shape), saved.x_shape, layer.kernel_size, layer.stride, layer.padding)
