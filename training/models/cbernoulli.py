"""The continuous Bernoulli distribution (Loaiza-Ganem & Cunningham 2019), parameterised by logits.

A valid density on [0, 1] for greyscale pixels, where the Bernoulli "likelihood" of a pixel of 0.4
is not one (it is a probability mass on {0, 1}, not normalised over [0, 1]):

    p(x | lam) = C(lam) * lam^x * (1 - lam)^(1 - x),   x in [0, 1]
    C(lam) = 2 artanh(1 - 2 lam) / (1 - 2 lam)   (C(1/2) = 2)

With lam = sigmoid(l): 1 - 2 lam = -tanh(l / 2) and 2 artanh(1 - 2 lam) = -l, so C = l / tanh(l / 2),
and the mean is E[x] = 1/2 + L(l / 2) / 2 with the Langevin function L(y) = coth(y) - 1/y. Both have
removable singularities at l = 0 (lam = 1/2), taken by their Taylor series near it.
"""
from __future__ import annotations

from training.backend import keras

ops = keras.ops

# Below this |logit| the Taylor series are exact to float32 precision (next terms ~ l^5 / 1e5); above it the
# closed forms are (the mean's cancels two terms ~ 1/l: at |l| = 0.1 that costs ~1e-6).
TAYLOR_BELOW = 0.1


def _split(logits):
    """(small, safe): where |l| is below the cut-off, and l with those entries moved off 0 (so the
    closed form's branch never divides by zero, nor produces NaN gradients that `where` would keep)."""
    small = ops.abs(logits) < TAYLOR_BELOW
    return small, ops.where(small, ops.ones_like(logits), logits)


def log_norm(logits):
    """log C(sigmoid(l)) elementwise: log(l / tanh(l / 2)) = log|l| - log tanh(|l| / 2); near 0,
    log 2 + l^2 / 12 - 7 l^4 / 1440 (the series of log(y / tanh y) = y^2/3 - 7 y^4/90 at y = l/2)."""
    small, safe = _split(logits)
    a = ops.abs(safe)
    closed = ops.log(a) - ops.log(ops.tanh(a / 2.0))
    sq = ops.square(logits)
    series = 0.6931471805599453 + sq / 12.0 - ops.square(sq) * (7.0 / 1440.0)
    return ops.where(small, series, closed)


def log_prob(x, logits):
    """log p(x | sigmoid(logits)) elementwise, x in [0, 1]: the Bernoulli cross-entropy term plus log C."""
    return -(x * ops.softplus(-logits) + (1.0 - x) * ops.softplus(logits)) + log_norm(logits)


def mean(logits):
    """E[x] elementwise, in (0, 1): 1/2 + (coth(l/2) - 2/l) / 2; near 0, 1/2 + l/12 - l^3/720."""
    small, safe = _split(logits)
    closed = 0.5 + 0.5 / ops.tanh(safe / 2.0) - 1.0 / safe
    series = 0.5 + logits / 12.0 - ops.power(logits, 3) / 720.0
    return ops.where(small, series, closed)
