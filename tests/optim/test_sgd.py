"""SGD (minialex/optim/sgd.py), the optimizer: one and two steps against the paper's update worked
by hand, a learning-rate change, decay_biases, state round trips, and which sgd_update it calls.
The update rule itself, every implementation of it, is tested in tests/ops/test_sgd.py; the rule
is explained in docs/optim.md."""

import numpy as np
import pytest

from minialex import backend
from minialex.nn import Parameter
from minialex.optim import SGD


def test_one_and_two_steps_by_hand(xp):
    w = Parameter(backend.to_backend(np.array([1.0, -2.0]), xp))
    opt = SGD([("w", w)], lr=0.1, momentum=0.9, weight_decay=0.01)
    w.grad[...] = backend.to_backend(np.array([0.5, 0.25]), xp)
    opt.step()
    # v1 = 0.9*0 - 0.01*0.1*w0 - 0.1*g = [-0.001 - 0.05, 0.002 - 0.025] = [-0.051, -0.023]
    np.testing.assert_allclose(backend.to_numpy(opt.velocities[0]), [-0.051, -0.023], rtol=1e-13)
    np.testing.assert_allclose(backend.to_numpy(w.data), [0.949, -2.023], rtol=1e-13)
    w.grad[...] = backend.to_backend(np.array([-1.0, 0.0]), xp)
    opt.step()
    # v2 = 0.9*v1 - 0.001*w1 - 0.1*g = [-0.0459 - 0.000949 + 0.1, -0.0207 + 0.002023 - 0]
    v2 = [-0.0459 - 0.000949 + 0.1, -0.0207 + 0.002023]
    np.testing.assert_allclose(backend.to_numpy(opt.velocities[0]), v2, rtol=1e-12)
    np.testing.assert_allclose(backend.to_numpy(w.data), [0.949 + v2[0], -2.023 + v2[1]], rtol=1e-12)


def test_lr_change_keeps_old_momentum_scale():
    # The paper keeps lr inside v: after lr /= 10 the stored velocity is not rescaled.
    w = Parameter(np.array([0.0]))
    opt = SGD([w], lr=1.0, momentum=0.5, weight_decay=0.0)
    w.grad[...] = 1.0
    opt.step()  # v = -1
    opt.lr = 0.1
    opt.step()  # v = 0.5 * -1 - 0.1 * 1 = -0.6  (PyTorch's rule would give 0.1 * -(0.5 + 1) = -0.15)
    assert opt.velocities[0][0] == pytest.approx(-0.6)
    assert w.data[0] == pytest.approx(-1.6)


def test_decay_biases_off_exempts_1d():
    w, b = Parameter(np.ones((2, 2))), Parameter(np.ones(2))
    opt = SGD([w, b], lr=1.0, momentum=0.0, weight_decay=0.1, decay_biases=False)
    opt.step()
    np.testing.assert_allclose(w.data, 0.9)
    np.testing.assert_allclose(b.data, 1.0)


def test_state_dict_round_trip_and_errors():
    w = Parameter(np.ones(3))
    opt = SGD([("w", w)], lr=0.1)
    w.grad[...] = 1.0
    opt.step()
    other = SGD([("w", Parameter(np.ones(3)))], lr=0.1)
    other.load_state_dict(opt.state_dict())
    np.testing.assert_array_equal(other.velocities[0], opt.velocities[0])
    with pytest.raises(ValueError, match="missing: w"):
        other.load_state_dict({})
    with pytest.raises(ValueError, match="empty"):
        SGD([], lr=0.1)


def test_step_calls_the_update_the_switch_picks(monkeypatch):
    """step() hands sgd_update the parameters' arrays, their gradients, its velocities and one
    weight decay per parameter (0 for 1-D ones under decay_biases=False): the CPU kernel by
    default, the reference inside reference()."""
    from minialex.kernels.cpu import sgd as cpu_sgd
    from minialex.nn import reference
    from minialex.optim import functional

    calls = []

    def spy(which, real):
        def update(weights, grads, velocities, lr, momentum, weight_decays):
            calls.append((which, weights, grads, velocities, lr, momentum, list(weight_decays)))
            return real(weights, grads, velocities, lr, momentum, weight_decays)
        return update

    monkeypatch.setattr(cpu_sgd, "sgd_update", spy("cpu", cpu_sgd.sgd_update))
    monkeypatch.setattr(functional, "sgd_update", spy("reference", functional.sgd_update))
    w, b = Parameter(np.ones((2, 2))), Parameter(np.ones(2))
    opt = SGD([w, b], lr=0.5, momentum=0.25, weight_decay=0.1, decay_biases=False)
    opt.step()
    with reference():
        opt.step()
    assert [c[0] for c in calls] == ["cpu", "reference"]
    for which, weights, grads, velocities, lr, momentum, decays in calls:
        assert weights[0] is w.data and weights[1] is b.data
        assert grads[0] is w.grad and grads[1] is b.grad
        assert velocities[0] is opt.velocities[0] and velocities[1] is opt.velocities[1]
        assert (lr, momentum, decays) == (0.5, 0.25, [0.1, 0.0])
    # two steps with g = 0: v1 = -0.05 w0, w1 = 0.95; v2 = 0.25 v1 - 0.05 w1
    np.testing.assert_allclose(w.data, 0.95 + 0.25 * -0.05 - 0.05 * 0.95, rtol=1e-14)
    np.testing.assert_allclose(b.data, 1.0)
