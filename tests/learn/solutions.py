"""Learner files for the checker's tests: a right answer per op, written as a learner would fill in
the exercise, and the typical wrong answers made from them by replacing one marked line. Each
wrong answer names the MISTAKES key (minialex/learn/checker.py) its message must be."""

CONV2D = '''
import numpy as np
from minialex.nn.functional import im2col

def col2im(cols, x_shape, kernel_size, stride, padding):
    n, c, h, w = x_shape
    (kh, kw), (sh, sw), (ph, pw) = kernel_size, stride, padding
    oh, ow = cols.shape[4], cols.shape[5]
    out = np.zeros((n, c, h + 2 * ph, w + 2 * pw))
    for i in range(kh):
        for j in range(kw):
            out[:, :, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw] += cols[:, :, i, j]  # COL2IM
    return out[:, :, ph:ph + h, pw:pw + w]

def conv2d_forward(x, w, b, stride, padding, groups):
    n, f = x.shape[0], w.shape[0]
    cols = im2col(x, w.shape[2:], stride, padding)
    oh, ow = cols.shape[4:]
    y = np.matmul(w.reshape(groups, f // groups, -1), cols.reshape(n, groups, -1, oh * ow))
    return y.reshape(n, f, oh, ow) + b.reshape(1, f, 1, 1), (cols, x.shape, w, stride, padding, groups)

def conv2d_backward(dout, cache):
    cols, x_shape, w, stride, padding, g = cache
    n, f, oh, ow = dout.shape
    k = w[0].size
    dout_g = dout.reshape(n, g, f // g, oh * ow)
    cols_g = cols.reshape(n, g, k, oh * ow)
    db = dout.sum(axis=(0, 2, 3))  # DB
    dw = np.einsum("ngfl,ngkl->gfk", dout_g, cols_g).reshape(w.shape)  # DW
    dcols = np.matmul(w.reshape(g, f // g, k).transpose(0, 2, 1), dout_g)  # DCOLS
    dx = col2im(dcols.reshape(cols.shape), x_shape, w.shape[2:], stride, padding)
    return dx, dw, db
'''

MAX_POOL2D = '''
import numpy as np

def max_pool2d_forward(x, kernel_size, stride):
    (kh, kw), (sh, sw) = kernel_size, stride
    n, c, h, w = x.shape
    oh, ow = (h - kh) // sh + 1, (w - kw) // sw + 1
    y = np.full((n, c, oh, ow), -np.inf)
    arg = np.zeros((n, c, oh, ow), dtype=int)
    for i in range(kh):
        for j in range(kw):
            cand = x[:, :, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw]
            better = cand > y  # TIE
            y = np.where(better, cand, y)
            arg = np.where(better, i * kw + j, arg)
    return y, (x, y, arg, kernel_size, stride)

def max_pool2d_backward(dout, cache):
    x, y, arg, (kh, kw), (sh, sw) = cache
    oh, ow = dout.shape[2:]
    dx = np.zeros_like(x)
    for i in range(kh):
        for j in range(kw):
            win = x[:, :, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw]
            dx[:, :, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw] += dout * (arg == i * kw + j)  # ROUTE
    return dx
'''

LRN = '''
import numpy as np
from minialex.nn.functional import channel_window_sum

def lrn_forward(x, size, alpha, beta, k, groups):
    scale = k + alpha * channel_window_sum(x * x, size, groups)
    return x * scale ** -beta, (x, scale, size, alpha, beta, groups)

def lrn_backward(dout, cache):
    x, s, size, alpha, beta, groups = cache
    return dout * s ** -beta - 2 * alpha * beta * x * channel_window_sum(dout * x * s ** (-beta - 1), size, groups)  # BACK
'''

RELU = '''
import numpy as np

def relu_forward(x):
    y = np.maximum(x, 0)
    return y, y

def relu_backward(dout, y):
    return dout * (y > 0)  # BACK
'''

DROPOUT = '''
import numpy as np

def dropout_forward(x, p, key):
    mask = key.draw(x.shape, p, x.dtype, np)
    return x * mask, mask  # FORWARD

def dropout_backward(dout, mask):
    return dout * mask  # BACK
'''

LINEAR = '''
import numpy as np

def linear_forward(x, w, b):
    return x @ w.T + b, (x, w)

def linear_backward(dout, cache):
    x, w = cache
    dw = dout.T @ x  # DW
    db = dout.sum(axis=0)  # DB
    return dout @ w, dw, db
'''

SOFTMAX_CROSS_ENTROPY = '''
import numpy as np

def softmax_cross_entropy_forward(z, labels):
    n = z.shape[0]
    shifted = z - z.max(axis=1, keepdims=True)  # SHIFT
    logp = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))  # LOGP
    return -logp[np.arange(n), labels].mean(), (np.exp(logp), labels)

def softmax_cross_entropy_backward(dloss, cache):
    p, labels = cache
    dz = p.copy()
    dz[np.arange(len(labels)), labels] -= 1.0
    return dz * dloss / len(labels)  # BACK
'''

SGD_UPDATE = '''
import numpy as np

def sgd_update(weights, grads, velocities, lr, momentum, weight_decays):
    for w, g, v, wd in zip(weights, grads, velocities, weight_decays):
        v *= momentum
        v -= wd * lr * w  # DECAY
        v -= lr * g
        w += v  # STEP
'''

RIGHT = {"conv2d": CONV2D, "max_pool2d": MAX_POOL2D, "lrn": LRN, "relu": RELU, "dropout": DROPOUT,
         "linear": LINEAR, "softmax_cross_entropy": SOFTMAX_CROSS_ENTROPY, "sgd_update": SGD_UPDATE}

# The reference pairs themselves, imported: they must pass too.
IMPORTED = {
    "conv2d": "from minialex.nn.functional import col2im, conv2d_forward, conv2d_backward\n",
    "max_pool2d": "from minialex.nn.functional import max_pool2d_forward, max_pool2d_backward\n",
    "lrn": "from minialex.nn.functional import lrn_forward, lrn_backward\n",
    "relu": "from minialex.nn.functional import relu_forward, relu_backward\n",
    "dropout": "from minialex.nn.functional import dropout_forward, dropout_backward\n",
    "linear": "from minialex.nn.functional import linear_forward, linear_backward\n",
    "softmax_cross_entropy": "from minialex.nn.functional import softmax_cross_entropy_forward, "
                             "softmax_cross_entropy_backward\n",
    "sgd_update": "from minialex.optim.functional import sgd_update\n",
}


def _replace(source, marker, line):
    """``source`` with the line that ends in ``# marker`` replaced by ``line`` (same indent)."""
    lines = source.splitlines()
    hits = [i for i, text in enumerate(lines) if text.rstrip().endswith(f"# {marker}")]
    assert len(hits) == 1, marker
    indent = lines[hits[0]][:len(lines[hits[0]]) - len(lines[hits[0]].lstrip())]
    lines[hits[0]] = indent + line
    return "\n".join(lines) + "\n"


# (name, op, source, MISTAKES key, what the WRONG line is about)
WRONG = [
    ("conv transposed dw", "conv2d",
     _replace(CONV2D, "DW", 'dw = np.einsum("ngfl,ngkl->gkf", dout_g, cols_g).reshape(w.shape)'),
     "transposed_dw", "conv2d_backward dw"),
    ("conv missing db", "conv2d", _replace(CONV2D, "DB", "db = np.zeros(f)"), "missing_db", "conv2d_backward db"),
    ("conv col2im by assignment", "conv2d",
     CONV2D.replace("+= cols[:, :, i, j]  # COL2IM", "= cols[:, :, i, j]  # COL2IM"),
     "col2im_assign", "conv2d_backward dx"),
    ("conv dw ignores groups", "conv2d",
     _replace(CONV2D, "DW", 'dw = np.einsum("nfl,nkl->fk", dout.reshape(n, f, -1), cols_g[:, 0]).reshape(w.shape)'),
     "conv_groups", "conv2d_backward dw"),
    ("conv dx ignores groups", "conv2d",
     _replace(CONV2D, "DCOLS", 'dcols = np.broadcast_to(np.einsum("fk,nfl->nkl", w.reshape(f, k), '
                               'dout.reshape(n, f, -1))[:, None], (n, g, k, oh * ow))'),
     "conv_groups", "conv2d_backward dx"),
    ("linear transposed dw", "linear", _replace(LINEAR, "DW", "dw = x.T @ dout"), "transposed_dw", "linear_backward dw"),
    ("linear missing db", "linear", _replace(LINEAR, "DB", "db = None"), "missing_db", "linear_backward db"),
    ("pool routes to every maximum", "max_pool2d",
     _replace(MAX_POOL2D, "ROUTE", "dx[:, :, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw] += dout * (win == y)"),
     "pool_ties", "max_pool2d_backward dx (ties in the windows)"),
    ("pool last maximum wins", "max_pool2d", _replace(MAX_POOL2D, "TIE", "better = cand >= y"),
     "pool_last_tie", "max_pool2d_backward dx (ties in the windows)"),
    ("lrn without the cross-channel term", "lrn",
     _replace(LRN, "BACK", "return dout * s ** -beta - 2 * alpha * beta * x * dout * x * s ** (-beta - 1)"),
     "lrn_cross", "lrn_backward dx"),
    ("lrn without the denominator's derivative", "lrn", _replace(LRN, "BACK", "return dout * s ** -beta"),
     "lrn_no_denominator", "lrn_backward dx"),
    ("dropout backward without the scale", "dropout", _replace(DROPOUT, "BACK", "return dout * (mask != 0)"),
     "dropout_scale", "dropout_backward dx"),
    ("dropout forward without the scale", "dropout",
     _replace(DROPOUT, "FORWARD", "return x * (mask != 0), mask"), "dropout_forward_scale", "dropout_forward y"),
    ("softmax without the max shift", "softmax_cross_entropy", _replace(SOFTMAX_CROSS_ENTROPY, "SHIFT", "shifted = z"),
     "softmax_shift", "softmax_cross_entropy_forward loss (logits of +-1000)"),
    ("softmax log of an underflowed softmax", "softmax_cross_entropy",
     _replace(SOFTMAX_CROSS_ENTROPY, "LOGP", "logp = np.log(np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True))"),
     "softmax_log_underflow", "softmax_cross_entropy_forward loss (logits of +-1000)"),
    ("softmax backward without 1/N", "softmax_cross_entropy",
     _replace(SOFTMAX_CROSS_ENTROPY, "BACK", "return dz * dloss"), "softmax_no_mean",
     "softmax_cross_entropy_backward dz (logits ~ 1)"),
    ("softmax backward ignores dloss", "softmax_cross_entropy",
     _replace(SOFTMAX_CROSS_ENTROPY, "BACK", "return dz / len(labels)"), "softmax_dloss",
     "softmax_cross_entropy_backward dz (logits ~ 1)"),
    ("relu passes the gradient at 0", "relu",
     "import numpy as np\n"
     "def relu_forward(x):\n    return np.maximum(x, 0), x.copy()\n"
     "def relu_backward(dout, x):\n    return dout * (x >= 0)\n", "relu_at_zero", "relu_backward dx (x with zeros)"),
    ("relu passes every gradient", "relu", _replace(RELU, "BACK", "return dout * (y >= 0)"), "relu_all",
     "relu_backward dx (random x)"),
    ("sgd decay after the momentum step", "sgd_update",
     _replace(_replace(SGD_UPDATE, "DECAY", "pass"), "STEP", "w += v; w -= wd * lr * w"),
     "sgd_decay_after", "sgd_update weight 0"),
    ("sgd decay outside the velocity", "sgd_update",
     _replace(_replace(SGD_UPDATE, "DECAY", "pass"), "STEP", "w += v - wd * lr * w"),
     "sgd_decay_after", "sgd_update weight 0"),
    ("sgd in PyTorch's order", "sgd_update",
     "def sgd_update(weights, grads, velocities, lr, momentum, weight_decays):\n"
     "    for w, g, v, wd in zip(weights, grads, velocities, weight_decays):\n"
     "        v *= momentum\n"
     "        v += g + wd * w\n"
     "        w -= lr * v\n",
     "sgd_pytorch", "sgd_update weight 0"),
    ("sgd not in place", "sgd_update", _replace(SGD_UPDATE, "STEP", "w = w + v"), "sgd_not_in_place",
     "sgd_update weight 0"),
]
