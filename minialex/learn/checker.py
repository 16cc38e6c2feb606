"""The grader of the learner's exercises: ``check(op, path)`` loads the pair the learner wrote in
``path`` (by path, without adding it to sys.modules), runs it in float64 on small inputs chosen
so that every term of the mathematics matters, and compares each output and gradient with the
naive loops of minialex/nn/naive.py or the readable references of minialex/nn/functional/ and,
for gradients, with centred finite differences (minialex/gradcheck.py).

A wrong answer is also compared with the known wrong variants of that answer (a transposed
weight gradient, col2im by assignment, ...); when it matches one, the report names the mistake
and the section of the derivation that explains it (docs/layers/, docs/optim.md).
"""

import importlib.util
import itertools
import os

import numpy as np

from ..gradcheck import numerical_gradient, rel_error
from ..nn import functional as F
from ..nn import naive
from ..nn.masks import MaskKey
from ..optim.functional import sgd_update as reference_sgd_update

OPS = ("conv2d", "max_pool2d", "lrn", "relu", "dropout", "linear", "softmax_cross_entropy",
       "sgd_update")
TOL = 1e-6  # against the naive loop or the reference: both in float64, they agree to ~1e-12
FD_TOL = 1e-5  # against centred finite differences (h = 1e-5): correct layers land below 1e-7
SAME = 1e-6  # a wrong answer "is" a known wrong variant when it agrees with it this closely

# The diagnosed mistakes: one message each, naming the mistake and where the derivation says why.
MISTAKES = {
    "transposed_dw": "the weight gradient is transposed: dw must have w's layout, (F, C/G, KH, KW) "
                     "for conv2d, (out, in) for linear: dw = dout^T x, not x^T dout "
                     "(conv2d.md section 4 'Weights'; linear.md 'Backward')",
    "missing_db": "the bias gradient is missing (zero or None): db is dout summed over every axis "
                  "but the filter/output axis (conv2d.md section 4 'Bias'; linear.md 'Backward')",
    "col2im_assign": "col2im assigns instead of adding: where windows overlap (stride < kernel) a "
                     "pixel must receive the SUM of every window's contribution, and '=' keeps only "
                     "the last one (conv2d.md section 3: col2im is the adjoint of im2col)",
    "conv_groups": "the conv backward ignores groups: filter f sees only the C/G channels of its "
                   "own group g = f // (F/G), so dw[f] takes only that group's columns and dx of a "
                   "group's channels gets only its own filters' gradient (conv2d.md sections 2 and 4)",
    "pool_ties": "the pool backward routes the gradient to every maximum of a window on a tie: only "
                 "the one that won (the first in row-major order, as the forward's tie rule says) "
                 "receives it, or the gradient is counted several times (maxpool2d.md sections 2-3)",
    "pool_last_tie": "on a tie the gradient goes to the last maximum of the window: the tie rule is "
                     "the first in row-major order, so replace the winner only on a strictly "
                     "greater value (maxpool2d.md section 1)",
    "pool_assign": "overlapping windows overwrite each other: an input that won several windows must "
                   "receive the SUM of their gradients (maxpool2d.md section 3)",
    "lrn_cross": "the LRN backward lacks the cross-channel term: x_c is also in the denominator of "
                 "every output c' whose window holds c, so dx_c needs -2 alpha beta x_c times the "
                 "window sum over c' of dout_c' x_c' scale_c'^(-beta-1), not only c' = c "
                 "(lrn.md sections 2-3)",
    "lrn_no_denominator": "the LRN backward keeps only dout * scale^-beta: it drops the derivative of "
                          "the denominator entirely (lrn.md section 2)",
    "lrn_groups": "the LRN window crosses the group boundary: with groups, the window of c holds only "
                  "channels of c's group (lrn.md section 5)",
    "dropout_scale": "the dropout backward forgets the 1/(1-p) scale: y = x * m / (1 - p), so "
                     "dx = dout * m / (1 - p), the same scaled mask as the forward "
                     "(dropout.md 'Backward')",
    "dropout_forward_scale": "the dropout forward forgets the 1/(1-p) scale of inverted dropout: "
                             "kept units must be divided by 1 - p (dropout.md 'Forward')",
    "softmax_shift": "the softmax has no max shift: exp of a logit of 1000 overflows to inf and "
                     "inf/inf is NaN; subtract max_k z_k from every row first, which leaves softmax "
                     "unchanged (softmax-cross-entropy.md 'The log-sum-exp shift, and why it is exact')",
    "softmax_log_underflow": "the loss takes the log of a softmax that underflowed to 0 (a logit 2000 "
                             "below the largest gives exp(-2000) = 0 and -log 0 = inf): compute log "
                             "softmax directly as (z - max) - log sum exp(z - max) "
                             "(softmax-cross-entropy.md 'The log-sum-exp shift, and why it is exact')",
    "softmax_no_mean": "the loss or its gradient is not divided by N: the loss is the MEAN over the "
                       "batch (softmax-cross-entropy.md 'Forward', 'Gradient: softmax minus one-hot')",
    "softmax_dloss": "the backward ignores dloss: the gradient arriving from above multiplies dz "
                     "(chain rule; softmax-cross-entropy.md 'Gradient: softmax minus one-hot')",
    "relu_at_zero": "the ReLU backward passes the gradient where x = 0: its derivative there is "
                    "taken to be 0, so use y > 0, not y >= 0 (relu.md 'Derivative')",
    "relu_all": "the ReLU backward passes every gradient through: y = max(0, x) is never negative, so "
                "a test y >= 0 is always true; the mask is y > 0 (relu.md 'Derivative', 'Backward "
                "needs only the output')",
    "sgd_decay_after": "the SGD applies weight decay after the momentum step (or outside the "
                       "velocity): the paper's order is v <- momentum v - wd lr w - lr g, then "
                       "w <- w + v, the decay inside the velocity (docs/optim.md 'The paper's rule')",
    "sgd_pytorch": "the SGD follows PyTorch's order (v <- momentum v + g + wd w; w <- w - lr v), "
                   "not the paper's (v <- momentum v - wd lr w - lr g; w <- w + v): "
                   "docs/optim.md 'How it differs from PyTorch's SGD'",
    "sgd_decay_lr": "the weight decay is not multiplied by the learning rate: the paper's term is "
                    "-wd * lr * w, the gradient of (wd/2)||w||^2 times lr (docs/optim.md 'The "
                    "paper's rule')",
    "sgd_not_in_place": "the weights or velocities were not changed in place: 'w = w + v' only "
                        "rebinds a local name; write w += v (the caller keeps the arrays)",
}

# Where each op's derivation is, for the hint of a wrong answer that matches no known mistake.
SECTIONS = {
    "conv2d": "docs/layers/conv2d.md, sections 2-4",
    "col2im": "docs/layers/conv2d.md, section 3",
    "max_pool2d": "docs/layers/maxpool2d.md, sections 1-3",
    "lrn": "docs/layers/lrn.md, sections 1-5",
    "relu": "docs/layers/relu.md",
    "dropout": "docs/layers/dropout.md, 'Forward' and 'Backward'",
    "linear": "docs/layers/linear.md, 'Forward' and 'Backward'",
    "softmax_cross_entropy": "docs/layers/softmax-cross-entropy.md",
    "sgd_update": "docs/optim.md, 'The paper's rule'",
}

FUNCTIONS = {
    "conv2d": ("conv2d_forward", "conv2d_backward"),
    "max_pool2d": ("max_pool2d_forward", "max_pool2d_backward"),
    "lrn": ("lrn_forward", "lrn_backward"),
    "relu": ("relu_forward", "relu_backward"),
    "dropout": ("dropout_forward", "dropout_backward"),
    "linear": ("linear_forward", "linear_backward"),
    "softmax_cross_entropy": ("softmax_cross_entropy_forward", "softmax_cross_entropy_backward"),
    "sgd_update": ("sgd_update",),
}


class LearnInputError(ValueError):
    """Bad input to the checker (unknown op, missing file, a file that does not import, a missing
    function): one line, exit code 2 on the command line."""


class Report:
    """What ``check`` found: ``.passed`` (every output and gradient right), ``.lines`` (one per
    output or gradient, OK or WRONG with the relative error, and a hint under each wrong one),
    and ``str(report)``, all the lines and a closing verdict."""

    def __init__(self, op, path):
        self.op, self.path, self.lines, self.passed = op, path, [], True

    def ok(self, what, detail):
        self.lines.append(f"OK     {what}: {detail}")

    def wrong(self, what, detail, hint):
        self.passed = False
        self.lines.append(f"WRONG  {what}: {detail}")
        self.lines.append(f"       hint: {hint}")

    def __str__(self):
        verdict = (f"{self.op}: all correct" if self.passed else
                   f"{self.op}: {sum(line.startswith('WRONG') for line in self.lines)} wrong")
        return "\n".join([f"checking {self.op} in {self.path}", *self.lines, verdict])

    def __repr__(self):
        return f"Report({self.op!r}, passed={self.passed})"


_loaded = itertools.count()


def load(path, op):
    """The learner's module from ``path``, executed under a private name that never enters
    sys.modules; LearnInputError when it cannot be read or lacks the op's functions."""
    if not os.path.isfile(path):
        raise LearnInputError(f"{path}: no such file")
    name = f"_minialex_learner_{op}_{next(_loaded)}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise LearnInputError(f"{path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except SyntaxError as e:
        raise LearnInputError(f"{path} does not import: SyntaxError at line {e.lineno}: {e.msg}") from None
    except BaseException as e:  # noqa: BLE001 - any failure of the learner's top level is bad input
        if isinstance(e, KeyboardInterrupt):
            raise
        raise LearnInputError(f"{path} does not import: {type(e).__name__}: {_one_line(e)}") from None
    missing = [fn for fn in FUNCTIONS[op] if not callable(getattr(module, fn, None))]
    if missing:
        raise LearnInputError(f"{path} has no {', '.join(missing)} (the {op} exercise defines it)")
    return module


def check(op, path):
    """Grade the learner's pair for ``op`` in the file ``path``; returns a Report."""
    if op not in OPS:
        raise LearnInputError(f"unknown op {op!r}; choose one of {', '.join(OPS)}")
    module = load(path, op)
    report = Report(op, path)
    with np.errstate(all="ignore"):  # a learner's overflow is reported, not warned about
        _CHECKS[op](module, report)
    return report


# -- running and grading ------------------------------------------------------------------------
def _one_line(e):
    text = str(e).strip().splitlines()
    return text[0] if text else "(no message)"


class _Failed(Exception):
    """The learner's function raised: already reported."""


def _call(report, name, op, fn, *args):
    try:
        return fn(*args)
    except NotImplementedError:
        report.wrong(name, "not written yet (NotImplementedError)",
                     f"write the body in its marked block; read {SECTIONS[op]}")
    except Exception as e:  # noqa: BLE001 - the learner's error becomes a line of the report
        report.wrong(name, f"raised {type(e).__name__}: {_one_line(e)}",
                     f"read {SECTIONS[op]}; run the function by hand on the shapes its docstring gives")
    raise _Failed


def _array(a):
    if a is None:
        return None
    try:
        return np.asarray(a, dtype=np.float64)
    except (TypeError, ValueError):
        return None


def _same(variant):
    """A predicate: the learner's answer equals ``variant`` (same shape, within SAME)."""
    def matches(got):
        return (got is not None and variant is not None and got.shape == np.shape(variant)
                and np.all(np.isfinite(got)) and rel_error(got, variant) < SAME)
    return matches


def _same_values(variant):
    """A predicate: the learner's answer holds ``variant``'s numbers in order, in any shape."""
    def matches(got):
        return (got is not None and got.size == np.size(variant) and np.all(np.isfinite(got))
                and rel_error(got.reshape(-1), np.reshape(variant, -1)) < SAME)
    return matches


def _zero_or_none(got):
    return got is None or (got.size > 0 and not np.any(got))


def _not_finite(got):
    return got is not None and not np.all(np.isfinite(got))


def _shape(shape):
    return lambda got: got is not None and got.shape == tuple(shape)


def _grade(report, op, what, got, ref, against, fd=None, variants=()):
    """Compare ``got`` with ``ref`` (and with finite differences ``fd``); a WRONG line with the
    first matching variant's message as the hint, or the op's derivation section."""
    got_arr = _array(got)
    ok = got_arr is not None and got_arr.shape == ref.shape and np.all(np.isfinite(got_arr))
    if ok:
        err = rel_error(got_arr, ref)
        detail = f"rel error {err:.1e} vs {against}"
        ok = err < TOL
        if fd is not None:
            err_fd = rel_error(got_arr, fd)
            detail += f", {err_fd:.1e} vs finite differences"
            ok = ok and err_fd < FD_TOL
    elif got_arr is None:
        detail = "is None" if got is None else f"is not an array ({type(got).__name__})"
    elif got_arr.shape != ref.shape:
        detail = f"has shape {got_arr.shape}, expected {ref.shape}"
    else:
        detail = f"holds {int(np.sum(~np.isfinite(got_arr)))} NaN or infinite values"
    if ok:
        report.ok(what, detail)
        return True
    for matches, key in variants:
        if matches(got_arr):
            report.wrong(what, detail, MISTAKES[key])
            return False
    report.wrong(what, detail, f"not one of the usual mistakes; compare it with {SECTIONS[op]}")
    return False


def _fd(forward, x, dout, h=1e-5):
    """Centred differences of sum(dout * forward()) with respect to x (forward reads x)."""
    return numerical_gradient(lambda: np.sum(dout * forward()), x, h)


def _tuple(report, what, out, n):
    if isinstance(out, (tuple, list)) and len(out) == n:
        return out
    report.wrong(what, f"returned {type(out).__name__}, expected a tuple of {n}",
                 f"return {n} values, as the docstring says")
    raise _Failed


# -- conv2d -------------------------------------------------------------------------------------
def col2im_by_assignment(cols, x_shape, kernel_size, stride, padding, per_pixel=False):
    """The wrong col2im: '=' instead of '+=', looping over kernel offsets or over windows."""
    n, c, h, w = x_shape
    (kh, kw), (sh, sw), (ph, pw) = kernel_size, stride, padding
    oh, ow = cols.shape[4], cols.shape[5]
    out = np.zeros((n, c, h + 2 * ph, w + 2 * pw))
    if per_pixel:
        for i, j in itertools.product(range(oh), range(ow)):
            out[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw] = cols[:, :, :, :, i, j]
    else:
        for i, j in itertools.product(range(kh), range(kw)):
            out[:, :, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw] = cols[:, :, i, j]
    return out[:, :, ph:ph + h, pw:pw + w]


def _conv_case(rng):
    # groups=2; 3x3 windows at stride 2 overlap; with no padding in height the last row (7) lies
    # in no window (a border), the width is padded by 1.
    x = rng.standard_normal((2, 4, 8, 7))
    w = rng.standard_normal((6, 2, 3, 3))
    b = rng.standard_normal(6)
    return x, w, b, (2, 2), (0, 1), 2


def _check_col2im(module, report):
    rng = np.random.default_rng(10)
    x, w, _, stride, padding, _ = _conv_case(rng)
    cols = rng.standard_normal(F.im2col(x, w.shape[2:], stride, padding).shape)
    ref = F.col2im(cols, x.shape, w.shape[2:], stride, padding)
    got = _call(report, "col2im", "col2im", module.col2im, cols, x.shape, w.shape[2:], stride, padding)
    variants = [(_same(col2im_by_assignment(cols, x.shape, w.shape[2:], stride, padding, pp)),
                 "col2im_assign") for pp in (False, True)]
    _grade(report, "col2im", "col2im", got, ref, "the reference (im2col's adjoint)", variants=variants)


def _check_conv2d(module, report):
    rng = np.random.default_rng(0)
    if callable(getattr(module, "col2im", None)) and module.col2im is not F.col2im:
        try:
            _check_col2im(module, report)
        except _Failed:
            pass
    x, w, b, stride, padding, groups = _conv_case(rng)
    y_naive = naive.conv2d_forward_naive(x, w, b, stride, padding, groups)
    try:
        out = _call(report, "conv2d_forward", "conv2d", module.conv2d_forward,
                    x, w, b, stride, padding, groups)
        y, cache = _tuple(report, "conv2d_forward", out, 2)
        _grade(report, "conv2d", "conv2d_forward y", y, y_naive, "the naive loop")
    except _Failed:
        return
    dout = rng.standard_normal(y_naive.shape)
    try:
        grads = _tuple(report, "conv2d_backward", _call(report, "conv2d_backward", "conv2d",
                                                        module.conv2d_backward, dout, cache), 3)
    except _Failed:
        return
    ref_y, ref_cache = F.conv2d_forward(x, w, b, stride, padding, groups)
    dx_ref, dw_ref, db_ref = F.conv2d_backward(dout, ref_cache)

    def forward():
        return F.conv2d_forward(x, w, b, stride, padding, groups)[0]

    fds = [_fd(forward, a, dout) for a in (x, w, b)]
    g, fg, k = groups, w.shape[0] // groups, w[0].size
    n, l = x.shape[0], y_naive.shape[2] * y_naive.shape[3]
    cols = ref_cache.cols.reshape(n, g, k, l)
    dout_g = dout.reshape(n, g, fg, l)
    w_g = w.reshape(g, fg, k)
    # the wrong variants: dcols sent back with '=', or from every filter to every group
    dcols = np.matmul(w_g.transpose(0, 2, 1), dout_g).reshape(ref_cache.cols.shape)
    all_filters = np.einsum("fk,nfl->nkl", w.reshape(-1, k), dout.reshape(n, -1, l))  # (N, K, L)
    dcols_nogroups = np.broadcast_to(all_filters[:, None], (n, g, k, l)).reshape(ref_cache.cols.shape)
    dx_variants = [
        (_same(col2im_by_assignment(dcols, x.shape, w.shape[2:], stride, padding)), "col2im_assign"),
        (_same(col2im_by_assignment(dcols, x.shape, w.shape[2:], stride, padding, True)), "col2im_assign"),
        (_same(F.col2im(dcols_nogroups, x.shape, w.shape[2:], stride, padding)), "conv_groups"),
        (_shape((x.shape[0], x.shape[1] // groups) + x.shape[2:]), "conv_groups"),
    ]
    dw_group0 = np.einsum("nfl,nkl->fk", dout.reshape(n, -1, l), cols[:, 0]).reshape(w.shape)
    dw_variants = [
        (_same_values(dw_ref.reshape(g, fg, k).transpose(0, 2, 1)), "transposed_dw"),
        (_same_values(dw_ref.reshape(w.shape[0], k).T), "transposed_dw"),
        (_shape((w.shape[0], x.shape[1]) + w.shape[2:]), "conv_groups"),
        (_same(dw_group0), "conv_groups"),
    ]
    names = ("conv2d_backward dx", "conv2d_backward dw", "conv2d_backward db")
    for what, got, ref, fd, variants in zip(names, grads, (dx_ref, dw_ref, db_ref), fds,
                                            (dx_variants, dw_variants, [(_zero_or_none, "missing_db")])):
        _grade(report, "conv2d", what, got, ref, "the reference", fd, variants)


# -- max_pool2d ---------------------------------------------------------------------------------
def _pool_backward_variant(x, dout, kernel_size, stride, mode):
    """Wrong pool backwards: 'all' routes to every maximum on ties, 'last' to the last one,
    'assign' overwrites where windows overlap."""
    (kh, kw), (sh, sw) = kernel_size, stride
    dx = np.zeros_like(x)
    for ni, ci, i, j in itertools.product(*map(range, dout.shape)):
        window = x[ni, ci, i * sh:i * sh + kh, j * sw:j * sw + kw]
        target = dx[ni, ci, i * sh:i * sh + kh, j * sw:j * sw + kw]
        if mode == "all":
            target += dout[ni, ci, i, j] * (window == window.max())
            continue
        flat = window.reshape(-1)
        pos = (flat.size - 1 - int(np.argmax(flat[::-1]))) if mode == "last" else int(np.argmax(flat))
        if mode == "assign":
            target[divmod(pos, kw)] = dout[ni, ci, i, j]
        else:
            target[divmod(pos, kw)] += dout[ni, ci, i, j]
    return dx


def _check_max_pool2d(module, report):
    rng = np.random.default_rng(1)
    kernel_size, stride = (3, 3), (2, 2)  # the paper's overlapping windows
    distinct = rng.permutation(2 * 2 * 7 * 7).reshape(2, 2, 7, 7) / 7.0  # gaps >> h: a smooth max
    ties = rng.integers(0, 3, size=(2, 2, 7, 7)).astype(np.float64)  # ties in most windows
    for label, x in (("distinct values", distinct), ("ties in the windows", ties)):
        try:
            out = _call(report, f"max_pool2d_forward ({label})", "max_pool2d", module.max_pool2d_forward,
                        x, kernel_size, stride)
            y, cache = _tuple(report, "max_pool2d_forward", out, 2)
            y_naive = naive.max_pool2d_forward_naive(x, kernel_size, stride)
            _grade(report, "max_pool2d", f"max_pool2d_forward y ({label})", y, y_naive, "the naive loop")
            dout = rng.standard_normal(y_naive.shape)
            dx = _call(report, f"max_pool2d_backward ({label})", "max_pool2d", module.max_pool2d_backward,
                       dout, cache)
        except _Failed:
            continue
        ref = naive.max_pool2d_backward_naive(x, dout, kernel_size, stride)
        fd = None
        if x is distinct:
            fd = _fd(lambda: F.max_pool2d_forward(x, kernel_size, stride)[0], x, dout)
        variants = [(_same(_pool_backward_variant(x, dout, kernel_size, stride, "all")), "pool_ties"),
                    (_same(_pool_backward_variant(x, dout, kernel_size, stride, "last")), "pool_last_tie"),
                    (_same(_pool_backward_variant(x, dout, kernel_size, stride, "assign")), "pool_assign")]
        _grade(report, "max_pool2d", f"max_pool2d_backward dx ({label})", dx, ref, "the naive loop", fd,
               variants)


# -- lrn ----------------------------------------------------------------------------------------
def _check_lrn(module, report):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 8, 3, 3))
    size, alpha, beta, k, groups = 5, 0.9, 0.75, 2.0, 2  # alpha near 1: the cross term matters (section 7)
    y_naive = naive.lrn_forward_naive(x, size, alpha, beta, k, groups)
    y_groups1 = naive.lrn_forward_naive(x, size, alpha, beta, k, 1)
    try:
        out = _call(report, "lrn_forward", "lrn", module.lrn_forward, x, size, alpha, beta, k, groups)
        y, cache = _tuple(report, "lrn_forward", out, 2)
        _grade(report, "lrn", "lrn_forward y", y, y_naive, "the naive loop",
               variants=[(_same(y_groups1), "lrn_groups")])
        dout = rng.standard_normal(x.shape)
        dx = _call(report, "lrn_backward", "lrn", module.lrn_backward, dout, cache)
    except _Failed:
        return
    ref = naive.lrn_backward_naive(x, dout, size, alpha, beta, k, groups)
    fd = _fd(lambda: F.lrn_forward(x, size, alpha, beta, k, groups)[0], x, dout)
    scale = k + alpha * F.channel_window_sum(x * x, size, groups)
    diagonal = dout * scale ** -beta - 2 * alpha * beta * x * dout * x * scale ** (-beta - 1)
    variants = [(_same(diagonal), "lrn_cross"), (_same(dout * scale ** -beta), "lrn_no_denominator"),
                (_same(naive.lrn_backward_naive(x, dout, size, alpha, beta, k, 1)), "lrn_groups")]
    _grade(report, "lrn", "lrn_backward dx", dx, ref, "the naive loop", fd, variants)


# -- relu ---------------------------------------------------------------------------------------
def _check_relu(module, report):
    rng = np.random.default_rng(3)
    smooth = rng.standard_normal((3, 4, 5)) + np.sign(rng.standard_normal((3, 4, 5))) * 0.1
    zeros = np.round(rng.standard_normal((3, 4, 5)))  # exact zeros: the derivative at 0
    for label, x in (("random x", smooth), ("x with zeros", zeros)):
        try:
            out = _call(report, f"relu_forward ({label})", "relu", module.relu_forward, x.copy())
            y, cache = _tuple(report, "relu_forward", out, 2)
            _grade(report, "relu", f"relu_forward y ({label})", y, np.maximum(x, 0), "max(0, x)")
            dout = rng.standard_normal(x.shape)
            dx = _call(report, f"relu_backward ({label})", "relu", module.relu_backward, dout, cache)
        except _Failed:
            continue
        fd = _fd(lambda: np.maximum(x, 0), x, dout) if x is smooth else None
        _grade(report, "relu", f"relu_backward dx ({label})", dx, dout * (x > 0), "the reference", fd,
               [(_same(dout * (x >= 0)), "relu_at_zero"), (_same(dout), "relu_all")])


# -- dropout ------------------------------------------------------------------------------------
def _check_dropout(module, report):
    rng = np.random.default_rng(4)
    x, p, key = rng.standard_normal((4, 50)), 0.3, MaskKey(7, 3)
    mask = key.draw(x.shape, p, x.dtype, np)  # m / (1 - p)
    try:
        out = _call(report, "dropout_forward", "dropout", module.dropout_forward, x, p, key)
        y, cache = _tuple(report, "dropout_forward", out, 2)
        _grade(report, "dropout", "dropout_forward y", y, x * mask, "the reference",
               variants=[(_same(x * (mask != 0)), "dropout_forward_scale")])
        dout = rng.standard_normal(x.shape)
        dx = _call(report, "dropout_backward", "dropout", module.dropout_backward, dout, cache)
    except _Failed:
        return
    fd = _fd(lambda: F.dropout_forward(x, p, key)[0], x, dout)
    _grade(report, "dropout", "dropout_backward dx", dx, dout * mask, "the reference", fd,
           [(_same(dout * (mask != 0)), "dropout_scale")])


# -- linear -------------------------------------------------------------------------------------
def _check_linear(module, report):
    rng = np.random.default_rng(5)
    x, w, b = rng.standard_normal((4, 5)), rng.standard_normal((3, 5)), rng.standard_normal(3)
    try:
        out = _call(report, "linear_forward", "linear", module.linear_forward, x, w, b)
        y, cache = _tuple(report, "linear_forward", out, 2)
        _grade(report, "linear", "linear_forward y", y, x @ w.T + b, "the reference")
        dout = rng.standard_normal((4, 3))
        grads = _tuple(report, "linear_backward",
                       _call(report, "linear_backward", "linear", module.linear_backward, dout, cache), 3)
    except _Failed:
        return
    refs = F.linear_backward(dout, F.linear_forward(x, w, b)[1])
    fds = [_fd(lambda: F.linear_forward(x, w, b)[0], a, dout) for a in (x, w, b)]
    variants = ([], [(_same(refs[1].T), "transposed_dw")], [(_zero_or_none, "missing_db")])
    for what, got, ref, fd, var in zip(("dx", "dw", "db"), grads, refs, fds, variants):
        _grade(report, "linear", f"linear_backward {what}", got, ref, "the reference", fd, var)


# -- softmax_cross_entropy ----------------------------------------------------------------------
def _unshifted_loss(z, labels):
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    return -np.log(p[np.arange(len(labels)), labels]).mean()


def _overflows(module):
    """Whether the learner's forward fails on one row whose label has the largest logit, 1000:
    finite with the max shift whether or not log softmax is taken directly, NaN without it."""
    try:
        loss = _array(module.softmax_cross_entropy_forward(np.array([[1000.0, 999.0, -1000.0]]),
                                                           np.array([0]))[0])
    except Exception:  # noqa: BLE001 - any failure here is reported by the main run
        return True
    return loss is None or not np.all(np.isfinite(loss))


def _check_softmax_cross_entropy(module, report):
    rng = np.random.default_rng(6)
    labels = np.array([0, 3, 1, 4, 2, 3])
    small = rng.standard_normal((6, 5)) * 2
    large = np.where(rng.standard_normal((6, 5)) > 0, 1000.0, -1000.0) + rng.standard_normal((6, 5))
    dloss = 1.3  # the gradient from above, not 1: the backward must multiply by it
    unshifted = _overflows(module)
    for label, z in (("logits ~ 1", small), ("logits of +-1000", large)):
        variants_loss = [(lambda got: _not_finite(got) and unshifted, "softmax_shift"),
                         (_not_finite, "softmax_log_underflow"),
                         (_same(np.array(F.softmax_cross_entropy_forward(z, labels)[0] * len(labels))),
                          "softmax_no_mean")]
        try:
            out = _call(report, f"softmax_cross_entropy_forward ({label})", "softmax_cross_entropy",
                        module.softmax_cross_entropy_forward, z.copy(), labels.copy())
            loss, cache = _tuple(report, "softmax_cross_entropy_forward", out, 2)
            ref_loss, ref_cache = F.softmax_cross_entropy_forward(z, labels)
            loss = _array(loss)
            if loss is not None and loss.size == 1:
                loss = loss.reshape(())  # a 0-d array, a float or a (1,) array are all fine
            _grade(report, "softmax_cross_entropy", f"softmax_cross_entropy_forward loss ({label})",
                   loss, np.asarray(ref_loss), "the reference", variants=variants_loss)
            dz = _call(report, f"softmax_cross_entropy_backward ({label})", "softmax_cross_entropy",
                       module.softmax_cross_entropy_backward, dloss, cache)
        except _Failed:
            continue
        ref = F.softmax_cross_entropy_backward(dloss, ref_cache)
        fd = None
        if z is small:
            zc = z.copy()
            fd = numerical_gradient(lambda: dloss * F.softmax_cross_entropy_forward(zc, labels)[0], zc)
        _grade(report, "softmax_cross_entropy", f"softmax_cross_entropy_backward dz ({label})", dz, ref,
               "the reference", fd, [(lambda got: unshifted or _not_finite(got), "softmax_shift"),
                                     (_same(ref * len(labels)), "softmax_no_mean"),
                                     (_same(ref / dloss), "softmax_dloss")])


# -- sgd_update ---------------------------------------------------------------------------------
def _sgd_variant(weights, grads, velocities, lr, momentum, weight_decays, mode):
    for w, g, v, wd in zip(weights, grads, velocities, weight_decays):
        if mode == "decay_after":  # the momentum step first, then the decay applied to the new w
            v *= momentum
            v -= lr * g
            w += v
            w -= wd * lr * w
        elif mode == "decay_outside":  # the decay on w, but not in the velocity
            v *= momentum
            v -= lr * g
            w += v - wd * lr * w
        elif mode == "pytorch":
            v *= momentum
            v += g + wd * w
            w -= lr * v
        elif mode == "decay_lr":
            v *= momentum
            v -= wd * w + lr * g
            w += v


def _check_sgd_update(module, report):
    rng = np.random.default_rng(7)
    shapes = [(3, 4), (4,), (2, 2, 3)]
    weights = [rng.standard_normal(s) for s in shapes]
    velocities = [0.1 * rng.standard_normal(s) for s in shapes]  # as after a few steps
    grads = [[rng.standard_normal(s) for s in shapes] for _ in range(2)]
    lr, momentum, weight_decays = 0.1, 0.9, [0.1, 0.0, 0.05]  # large enough for the decay to show

    def run(update, mode=None):
        w, v = [a.copy() for a in weights], [a.copy() for a in velocities]
        for step in range(2):  # two steps: the second sees the first's velocity
            if mode is None:
                update(w, [g.copy() for g in grads[step]], v, lr, momentum, list(weight_decays))
            else:
                _sgd_variant(w, grads[step], v, lr, momentum, weight_decays, mode)
        return w, v

    try:
        w_got, v_got = run(lambda *args: _call(report, "sgd_update", "sgd_update", module.sgd_update, *args))
    except _Failed:
        return
    w_ref, v_ref = run(reference_sgd_update)
    variants = {mode: run(None, mode) for mode in ("decay_after", "decay_outside", "pytorch", "decay_lr")}
    keys = {"decay_after": "sgd_decay_after", "decay_outside": "sgd_decay_after", "pytorch": "sgd_pytorch",
            "decay_lr": "sgd_decay_lr"}
    for i, wd in enumerate(weight_decays):
        for which, got, ref, start in (("weight", w_got, w_ref, weights), ("velocity", v_got, v_ref, velocities)):
            pick = 0 if which == "weight" else 1
            var = [(_same(start[i]), "sgd_not_in_place")]
            var += [(_same(variants[mode][pick][i]), keys[mode]) for mode in variants]
            _grade(report, "sgd_update", f"sgd_update {which} {i} (weight decay {wd}) after 2 steps",
                   got[i], ref[i], "the reference", variants=var)


_CHECKS = {
    "conv2d": _check_conv2d, "max_pool2d": _check_max_pool2d, "lrn": _check_lrn, "relu": _check_relu,
    "dropout": _check_dropout, "linear": _check_linear,
    "softmax_cross_entropy": _check_softmax_cross_entropy, "sgd_update": _check_sgd_update,
}
