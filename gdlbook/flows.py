"""Normalizing flows: RealNVP with affine coupling layers (taught in chapter 6).

The pieces, written once in ``keras.ops`` (no TensorFlow Probability, which does not support
Keras 3), so that the flow trains unchanged on TensorFlow, PyTorch and JAX:

- :func:`standard_normal_log_prob`: the log-density of the prior N(0, I), written out;
- :func:`coupling_network`: the scale and translation networks of one coupling layer (dense,
  L2-regularised, ``tanh`` on the scale), as in the book and the Keras RealNVP example;
- :func:`alternating_masks`: the binary masks that decide which coordinates each layer keeps;
- :class:`AffineCoupling`: one affine coupling layer, both directions and its log-determinant;
- :class:`RealNVP`: a stack of coupling layers with a standard normal prior: ``f`` (data →
  latent, with log|det ∂f/∂x|), its inverse ``g``, ``log_prob``, ``sample``, and a
  ``compute_loss`` that is the mean negative log-likelihood, so ``fit()`` trains it.

Conventions: ``g`` is the generative direction, latent → data; in coupling layer k the
coordinates with ``mask == 0`` are transformed as ``x = z · exp(s) + t`` with ``s, t`` computed
from the kept coordinates (``mask == 1``), and ``f`` undoes the layers in reverse order.
"""

from __future__ import annotations

import math
from typing import Sequence

import keras
import numpy as np
from keras import layers, ops


def standard_normal_log_prob(z):
    """log N(z; 0, I) per example: ``-½ Σ_j z_j² − (D/2) log 2π``, summed over the last axis."""
    dim = z.shape[-1]
    return -0.5 * ops.sum(ops.square(z), axis=-1) - 0.5 * dim * math.log(2.0 * math.pi)


def coupling_network(dim: int, units: int = 256, hidden_layers: int = 4, l2: float = 0.01,
                     name: str = "coupling_net") -> keras.Model:
    """The scale and translation networks of one coupling layer: input (D,) → ``[s, t]``.

    Two separate stacks of ``hidden_layers`` ReLU dense layers with ``units`` units each, every
    kernel with an L2 penalty ``l2``. The scale head ends in ``tanh``, so each factor
    ``exp(s)`` stays within [1/e, e]; the translation head is linear.

    The layers are built inside ``keras.name_scope(name)``, so their variables' paths start
    with ``name`` (``coupling_net_0/s_dense_0/kernel``). Without it every network of a flow has
    the same paths, and on PyTorch the model registers its parameters in a dictionary keyed by
    path: all but one network drop out of it, ``fit()``'s ``zero_grad()`` never clears their
    gradients, and they accumulate from step to step.
    """
    with keras.name_scope(name):
        inputs = keras.Input((dim,), name="x_kept")
        outputs = []
        for head, activation in (("s", "tanh"), ("t", None)):
            h = inputs
            for i in range(hidden_layers):
                h = layers.Dense(units, activation="relu",
                                 kernel_regularizer=keras.regularizers.L2(l2),
                                 name=f"{head}_dense_{i}")(h)
            outputs.append(layers.Dense(dim, activation=activation,
                                        kernel_regularizer=keras.regularizers.L2(l2),
                                        name=head)(h))
        return keras.Model(inputs, outputs, name=name)


def alternating_masks(num_layers: int, dim: int) -> np.ndarray:
    """``(num_layers, dim)`` binary masks; layer k keeps the coordinates j with (j + k) odd.

    For D = 2 they alternate ``[0, 1], [1, 0], …``: each layer transforms the coordinate the
    previous one kept fixed.
    """
    j = np.arange(dim)
    return np.stack([(j + k) % 2 for k in range(num_layers)]).astype("float32")


class AffineCoupling(layers.Layer):
    """One affine coupling layer with a fixed binary ``mask`` (1 = kept, 0 = transformed).

    Generative direction (``inverse``): ``x = m ⊙ z + (1 − m) ⊙ (z ⊙ exp(s) + t)`` with
    ``s, t = net(m ⊙ z)``. Normalizing direction (``forward``): ``z = m ⊙ x + (1 − m) ⊙ (x − t)
    ⊙ exp(−s)`` with ``s, t = net(m ⊙ x)``, the same ``s, t`` because the kept part is unchanged.
    The Jacobian of ``forward`` is triangular, so ``log|det ∂z/∂x| = −Σ_j (1 − m_j) s_j``.
    """

    def __init__(self, mask, net: keras.Model, **kwargs):
        super().__init__(**kwargs)
        self.mask = ops.convert_to_tensor(np.asarray(mask, "float32"))
        self.net = net

    def _scale_shift(self, kept):
        s, t = self.net(kept)
        free = 1.0 - self.mask
        return s * free, t * free

    def build(self, input_shape=None):
        self.built = True   # the weights live in ``net``, which is built already

    def forward(self, x):
        """Data side → latent side; returns ``(z, log|det ∂z/∂x|)`` per example."""
        s, t = self._scale_shift(x * self.mask)
        z = x * self.mask + (1.0 - self.mask) * (x - t) * ops.exp(-s)
        return z, -ops.sum(s, axis=-1)

    def inverse(self, z):
        """Latent side → data side (the exact inverse of :meth:`forward`)."""
        s, t = self._scale_shift(z * self.mask)
        return z * self.mask + (1.0 - self.mask) * (z * ops.exp(s) + t)

    def call(self, x):
        return self.forward(x)


class RealNVP(keras.Model):
    """A RealNVP flow on ``dim``-dimensional vectors with a standard normal prior.

    ``num_layers`` affine couplings with alternating masks; ``units``, ``hidden_layers`` and
    ``l2`` configure each coupling's networks (:func:`coupling_network`). Calling the model on a
    batch ``x`` returns ``(z, log_det)`` = ``f(x)``. ``fit(x)`` minimises the mean negative
    log-likelihood ``−log p(x)`` in nats, reported as ``loss``. The L2 penalties the networks
    declare are added to the loss only with ``regularize=True``: like the book and the Keras
    example, whose custom ``train_step`` never adds them, the default trains on the likelihood
    alone.
    """

    def __init__(self, dim: int = 2, num_layers: int = 6, units: int = 256,
                 hidden_layers: int = 4, l2: float = 0.01, regularize: bool = False,
                 seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.dim, self.regularize = dim, regularize
        self.couplings = [
            AffineCoupling(mask, coupling_network(dim, units, hidden_layers, l2,
                                                  name=f"coupling_net_{k}"),
                           name=f"coupling_{k}")
            for k, mask in enumerate(alternating_masks(num_layers, dim))]
        self.seed_generator = keras.random.SeedGenerator(seed)
        paths = [v.path for coupling in self.couplings for v in coupling.net.weights]
        if len(set(paths)) != len(paths):
            raise ValueError("the coupling networks' variables must have distinct paths (build "
                             "each network under its own name): on PyTorch, variables that "
                             "share a path are not all registered, and fit() never resets "
                             "their gradients")

    def build(self, input_shape=None):
        for coupling in self.couplings:
            coupling.build()
        self.built = True   # the coupling networks are built Functional models already

    def f(self, x):
        """Data → latent: ``z = f(x)`` and ``log|det ∂f/∂x|`` per example."""
        x = ops.convert_to_tensor(x, dtype=self.compute_dtype)
        log_det = 0.0
        for coupling in reversed(self.couplings):
            x, ld = coupling.forward(x)
            log_det = log_det + ld
        return x, log_det

    def g(self, z):
        """Latent → data: ``x = g(z)``, the inverse of :meth:`f`."""
        z = ops.convert_to_tensor(z, dtype=self.compute_dtype)
        for coupling in self.couplings:
            z = coupling.inverse(z)
        return z

    def log_prob(self, x):
        """``log p(x) = log N(f(x); 0, I) + log|det ∂f/∂x|`` per example, in nats."""
        z, log_det = self.f(x)
        return standard_normal_log_prob(z) + log_det

    def sample(self, n: int):
        """``n`` samples ``g(z)`` with ``z ~ N(0, I)``."""
        z = keras.random.normal((n, self.dim), seed=self.seed_generator)
        return self.g(z)

    def call(self, x):
        return self.f(x)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        z, log_det = y_pred
        nll = -ops.mean(standard_normal_log_prob(z) + log_det)
        if self.regularize and self.losses:
            nll = nll + ops.sum(ops.stack(self.losses))
        return nll


def density_grid(log_prob, xlim: Sequence[float], ylim: Sequence[float], n: int = 200,
                 batch_size: int = 10_000):
    """Evaluate a 2-D density on an ``n × n`` grid for a heat map.

    ``log_prob`` maps an ``(N, 2)`` float32 array to ``(N,)`` log-densities. Returns ``(xs, ys,
    density)`` with ``density[i, j] = exp(log_prob([xs[j], ys[i]]))``.
    """
    xs = np.linspace(*xlim, n, dtype="float32")
    ys = np.linspace(*ylim, n, dtype="float32")
    points = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2)
    logp = np.concatenate([np.asarray(ops.convert_to_numpy(log_prob(points[i:i + batch_size])))
                           for i in range(0, len(points), batch_size)])
    return xs, ys, np.exp(logp).reshape(n, n)
