"""The Hard Concrete gate against its closed forms (docs/design.md §2)."""

from __future__ import annotations

import math

import mindspore as ms
import numpy as np
import pytest
from lrp_prune import GateSettings, HardConcreteGate, LRPPruneError
from lrp_prune.network.hard_concrete import eval_gate_values, initial_log_a, prob_closed, prob_open
from mindspore import Tensor, nn

SETTINGS = GateSettings(temperature=0.33, stretch_limits=(-0.1, 1.1), eps=1e-6, l0_penalty=0.02)


def _sigmoid(x):
    return 1.0 / (1.0 + math.exp(-x))


def _logit(p):
    return math.log(p / (1 - p))


def gate_with(log_a: float, n: int, settings: GateSettings = SETTINGS) -> HardConcreteGate:
    gate = HardConcreteGate(n, settings, log_a_init=log_a)
    return gate


@pytest.mark.parametrize("log_a", [-1.0, 0.0, 0.7])
def test_training_samples_hit_0_and_1_with_the_stretch_probabilities(log_a):
    n = 20000
    ms.set_seed(1)
    gate = gate_with(log_a, n)
    gate.set_train(True)
    g = gate().asnumpy()
    assert g.min() >= 0.0 and g.max() <= 1.0
    beta, (gamma, zeta) = SETTINGS.temperature, SETTINGS.stretch_limits
    # g == 0  <=>  s <= -gamma/(zeta-gamma)  <=>  u <= sigmoid(beta*logit(p0) - log_a)
    p_zero = _sigmoid(beta * _logit(-gamma / (zeta - gamma)) - log_a)
    p_one = 1.0 - _sigmoid(beta * _logit((1 - gamma) / (zeta - gamma)) - log_a)
    for observed, expected in (((g == 0).mean(), p_zero), ((g == 1).mean(), p_one)):
        sigma = math.sqrt(expected * (1 - expected) / n)
        assert abs(observed - expected) < 5 * sigma + 1e-4, (observed, expected)
    # and the rest lie strictly inside (0, 1)
    assert 0 < ((g > 0) & (g < 1)).mean() < 1


def test_training_samples_differ_between_calls():
    gate = gate_with(0.0, 64)
    gate.set_train(True)
    assert not np.array_equal(gate().asnumpy(), gate().asnumpy())


def test_eval_is_deterministic_closed_form():
    values = np.array([-4.0, -2.4, -2.3, 0.0, 0.5, 2.4, 3.0], np.float32)
    gate = HardConcreteGate(len(values), SETTINGS, log_a_init=0.0)
    gate.log_a.set_data(Tensor(values))
    gate.set_train(False)
    a, b = gate().asnumpy(), gate().asnumpy()
    assert np.array_equal(a, b)
    sig = 1 / (1 + np.exp(-values.astype(np.float64)))
    expected = np.clip(sig * 1.2 - 0.1, 0, 1)
    np.testing.assert_allclose(a, expected, atol=1e-6)
    np.testing.assert_allclose(eval_gate_values(values), expected, atol=1e-12)
    # exactly 0 at and below -ln 11, exactly 1 above ln 11
    assert a[0] == 0.0 and a[1] == 0.0 and a[2] > 0.0 and a[-1] == 1.0
    assert SETTINGS.log_a_closed == pytest.approx(-math.log(11))


def test_penalty_closed_form():
    values = np.array([-5.0, -1.0, 0.0, 2.0, 30.0], np.float32)
    gate = HardConcreteGate(len(values), SETTINGS)
    gate.log_a.set_data(Tensor(values))
    shift = 0.33 * math.log(0.1 / 1.1)
    terms = [min(max(_sigmoid(v - shift), 1e-6), 1 - 1e-6) for v in values]
    assert float(gate.expected_open()) == pytest.approx(sum(terms), rel=1e-5)
    assert float(gate.penalty()) == pytest.approx(0.02 * sum(terms), rel=1e-5)
    np.testing.assert_allclose(prob_open(values, SETTINGS), [_sigmoid(v - shift) for v in values], rtol=1e-9)
    np.testing.assert_allclose(prob_closed(values, SETTINGS) + prob_open(values, SETTINGS), 1.0)


class _GateLoss(nn.Cell):
    """A task-like loss through the sampled gate plus the penalty."""

    def __init__(self, gate, use_task: bool, use_penalty: bool):
        super().__init__()
        self.gate = gate
        self.use_task = use_task
        self.use_penalty = use_penalty
        self.target = Tensor(np.linspace(0.2, 0.9, gate.num_heads).astype(np.float32))

    def construct(self):
        loss = Tensor(0.0, ms.float32)
        if self.use_task:
            loss = loss + ((self.gate() - self.target) ** 2).sum()
        if self.use_penalty:
            loss = loss + self.gate.penalty()
        return loss


@pytest.mark.parametrize("task,penalty", [(True, False), (False, True)])
def test_gradients_reach_log_a(task, penalty):
    gate = HardConcreteGate(6, SETTINGS, log_a_init=0.0)
    gate.set_train(True)
    net = _GateLoss(gate, task, penalty)
    grads = ms.grad(net, grad_position=None, weights=net.trainable_params())()
    g = grads[0].asnumpy()
    assert g.shape == (6,) and np.all(np.isfinite(g)) and np.abs(g).sum() > 0
    if penalty:  # d/dlog_a of lambda * sigmoid(log_a - shift)
        shift = 0.33 * math.log(0.1 / 1.1)
        s = _sigmoid(0.0 - shift)
        np.testing.assert_allclose(g, 0.02 * s * (1 - s), rtol=1e-4)


def test_initialisation():
    assert np.all(initial_log_a(5, 3.0) == 3.0)
    x = initial_log_a(12, "xavier_uniform")
    bound = math.sqrt(6 / 13)
    assert x.shape == (12,) and np.all(np.abs(x) <= bound) and x.std() > 0
    with pytest.raises(LRPPruneError, match="log_a_init"):
        initial_log_a(3, "normal")
    with pytest.raises(LRPPruneError, match="log_a_init"):
        initial_log_a(3, float("nan"))


@pytest.mark.parametrize("kwargs,field", [
    ({"temperature": 0.0}, "temperature"),
    ({"temperature": -1}, "temperature"),
    ({"stretch_limits": (0.1, 1.1)}, "stretch_limits"),
    ({"stretch_limits": (-0.1, 0.9)}, "stretch_limits"),
    ({"stretch_limits": (-0.1,)}, "stretch_limits"),
    ({"eps": 0.0}, "eps"),
    ({"l0_penalty": -0.1}, "l0_penalty"),
    ({"l0_penalty": float("inf")}, "l0_penalty"),
])
def test_settings_validation(kwargs, field):
    with pytest.raises(LRPPruneError, match=field):
        GateSettings(**kwargs)


def test_gate_ops_graph_mode_eval_train_switch():
    gate = gate_with(0.0, 16)
    gate.set_train(False)
    e1 = gate().asnumpy()
    gate.set_train(True)
    t = gate().asnumpy()
    gate.set_train(False)
    e2 = gate().asnumpy()
    assert np.array_equal(e1, e2) and np.allclose(e1, 0.5)
    assert not np.allclose(t, 0.5)


# ---------------------------------------------------------------- values from outside
@pytest.mark.parametrize("kwargs,needle", [
    ({"temperature": float("inf")}, "temperature: expected a finite positive number, got inf"),
    ({"stretch_limits": (float("-inf"), 1.1)}, "stretch_limits: expected a pair (gamma, zeta) of finite numbers"),
    ({"stretch_limits": (-0.1, float("inf"))}, "stretch_limits: expected a pair (gamma, zeta) of finite numbers"),
    ({"l0_penalty": 1e39}, "l0_penalty: expected a finite number >= 0 (float32 range), got 1e+39"),
    ({"l0_penalty": True}, "l0_penalty: expected a finite number >= 0, got True"),
])
def test_gate_settings_refuse_non_finite_values(kwargs, needle):
    with pytest.raises(LRPPruneError) as info:
        GateSettings(**kwargs)
    assert str(info.value).startswith(needle)


def test_numpy_integer_head_counts_are_integers():
    import numpy as np

    from lrp_prune.pruning.budget import resolve_target

    gate = HardConcreteGate(np.int64(4), GateSettings())
    assert gate.num_units == 4 and resolve_target(np.int64(32), 72) == 32
