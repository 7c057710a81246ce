"""Energy-based models: Langevin dynamics, a replay buffer and contrastive divergence (chapter 7).

The recipe is that of Du & Mordatch (2019) as Foster's *Generative Deep Learning* (2nd ed.,
ch. 7) applies it to MNIST: a small convolutional network assigns an *energy* to an image (low
for digits, high for anything else); samples are drawn by :func:`langevin` dynamics, which walks
an image downhill on the energy with a little noise, using the gradient with respect to the
*image* (computed by :func:`gdlbook.gradients.value_and_grad` on every backend); the chains start
from a :class:`ReplayBuffer` of earlier samples with a fraction of fresh uniform noise; and
:class:`EBM` trains the network with the regularised contrastive-divergence loss
``E(real) - E(fake) + alpha * (E(real)^2 + E(fake)^2)``.

:class:`EBM` overrides ``train_step``, so ``fit()`` trains it and
:func:`gdlbook.training.resumable` backs it up (the buffer, a model variable, included). On
TensorFlow and PyTorch the step is compiled as usual; on JAX, where ``fit()`` expects a pure
``train_step(state, data)``, it runs eagerly inside that signature, exactly as the GANs of
chapter 4 do (both derive from :class:`gdlbook.training.StatefulStepModel`).

:class:`RBM` is the older member of the family that the chapter also teaches: a restricted
Boltzmann machine over binary pixels, sampled by block Gibbs sampling and trained by contrastive
divergence (Hinton 2002) or persistent contrastive divergence (Tieleman 2008), written in NumPy
because its conditionals and gradients have closed forms. With a dozen or so hidden units its
partition function, and so its likelihood, can be computed exactly.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Sequence

import keras
import numpy as np
from keras import layers, ops

from gdlbook import progress
from gdlbook.gradients import value_and_grad
from gdlbook.training import StatefulStepModel

__all__ = ["build_energy_network", "langevin", "ReplayBuffer", "EBM", "RBM"]


def build_energy_network(image_size: int = 32, channels: int = 1,
                         filters: Sequence[int] = (16, 32, 64, 64), dense: int = 64,
                         name: str = "energy") -> keras.Model:
    """Image ``(image_size, image_size, channels)`` → one energy per image, shape ``(1,)``.

    Four strided convolutions (stride 2; kernel 5 for the first, 3 for the others) with the
    swish activation, then a dense layer of ``dense`` units (swish) and a linear unit: the
    energy, an unbounded real number. Swish is smooth, so the energy's gradient with respect to
    the image, which Langevin dynamics follows, is smooth too (ReLU's would jump).
    """
    image = keras.Input((image_size, image_size, channels), name="image")
    x = image
    for i, f in enumerate(filters):
        x = layers.Conv2D(f, 5 if i == 0 else 3, strides=2, padding="same",
                          activation="swish")(x)
    x = layers.Flatten()(x)
    x = layers.Dense(dense, activation="swish")(x)
    energy = layers.Dense(1)(x)
    return keras.Model(image, energy, name=name)


def langevin(energy_fn: Callable[[Any], Any], x0: Any, steps: int, step_size: float,
             noise: float, clip: float | None = 0.03,
             value_range: tuple[float, float] | None = (-1.0, 1.0),
             seed: keras.random.SeedGenerator | int | None = None,
             desc: str | None = None) -> Any:
    """Run ``steps`` steps of (clipped) Langevin dynamics on the energy, from ``x0``.

    Each step is ``x <- clip_range(x - step_size * clip_grad(grad_x E(x)) + noise * eps)`` with
    ``eps ~ N(0, I)``: downhill on the energy, plus a little Gaussian noise. ``clip`` bounds each
    component of the gradient (``None``: no clipping), ``value_range`` keeps the images in the
    pixel range (``None``: unbounded). ``energy_fn`` maps a batch to one energy per example; the
    gradient of their sum is each example's own gradient. The noise is drawn up front (the loop
    body draws nothing), so the loop can be a ``keras.ops.fori_loop`` (a graph loop on
    TensorFlow); on JAX, where the book runs these steps eagerly, it is a Python loop. The result
    is not differentiable: a sample, not part of a graph. With ``desc`` the Python loop reports
    its progress (:mod:`gdlbook.progress`); a training step, which samples at every update,
    passes none.
    """
    x0 = ops.convert_to_tensor(x0, dtype="float32")
    eps = noise * keras.random.normal((steps,) + tuple(ops.shape(x0)), seed=seed)

    def step(i, x):
        _, (grad,) = value_and_grad(lambda x: ops.sum(energy_fn(x)), [x])
        if clip is not None:
            grad = ops.clip(grad, -clip, clip)
        x = x - step_size * grad + ops.take(eps, i, axis=0)
        if value_range is not None:
            x = ops.clip(x, value_range[0], value_range[1])
        return ops.stop_gradient(x)

    if keras.backend.backend() == "jax":  # eager on JAX: a Python loop (a lax loop would
        x = x0                             # trace and compile its body at every call)
        for i in (progress.track(range(steps), desc) if desc else range(steps)):
            x = step(i, x)
        return x
    return ops.fori_loop(0, steps, step, x0) if steps > 0 else x0


class ReplayBuffer(layers.Layer):
    """A fixed number of examples from which Langevin chains start, and to which they return.

    The buffer starts full of uniform noise in ``value_range``. :meth:`sample` draws a batch:
    each example is, with probability ``fresh``, new uniform noise (so the sampler keeps learning
    to walk from scratch), otherwise a random example of the buffer (an earlier chain, continued).
    :meth:`push` writes a batch back over the oldest entries (first in, first out), so the size
    never changes. The contents are a (non-trainable) variable of the layer: a model holding the
    buffer saves and restores it with its weights.
    """

    def __init__(self, size: int, shape: Sequence[int], fresh: float = 0.05,
                 value_range: tuple[float, float] = (-1.0, 1.0), seed: int | None = None,
                 **kwargs):
        super().__init__(**kwargs)
        self.size, self.shape, self.fresh = int(size), tuple(shape), float(fresh)
        self.value_range = value_range
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.examples = self.add_weight(
            shape=(self.size,) + self.shape, trainable=False, name="examples",
            initializer=keras.initializers.RandomUniform(*value_range, seed=seed))
        self.position = self.add_weight(shape=(), dtype="int32", trainable=False,
                                        initializer="zeros", name="position")
        self.built = True

    def uniform(self, n) -> Any:
        """``n`` examples of uniform noise in the value range."""
        return keras.random.uniform((n,) + self.shape, *self.value_range,
                                    seed=self.seed_generator)

    def sample(self, n) -> Any:
        """A batch of ``n`` starting points: a fraction ``fresh`` of noise, the rest old chains."""
        index = keras.random.randint((n,), 0, self.size, seed=self.seed_generator)
        old = ops.take(self.examples, index, axis=0)
        is_fresh = keras.random.uniform((n,) + (1,) * len(self.shape),
                                        seed=self.seed_generator) < self.fresh
        return ops.where(is_fresh, self.uniform(n), old)

    def push(self, x) -> None:
        """Write the batch ``x`` over the oldest examples of the buffer."""
        n = ops.shape(x)[0]
        index = (self.position + ops.arange(n, dtype="int32")) % self.size
        self.examples.assign(ops.scatter_update(self.examples, index[:, None],
                                                ops.cast(x, self.examples.dtype)))
        self.position.assign((self.position + n) % self.size)


class EBM(StatefulStepModel):
    """An energy network trained by contrastive divergence, with a replay buffer of samples.

    ``fit(images)`` (images in [-1, 1]) runs :meth:`train_step`; the Langevin settings are
    attributes (``steps``, ``step_size``, ``noise``, ``clip``), and ``alpha`` weights the
    regulariser. Compile with one optimizer, as usual: ``ebm.compile(optimizer=...)``.
    """

    def __init__(self, energy: keras.Model, buffer: ReplayBuffer, *, steps: int = 60,
                 step_size: float = 10.0, noise: float = 0.005, clip: float | None = 0.03,
                 alpha: float = 0.1, data_noise: float = 0.005, seed: int | None = None,
                 **kwargs):
        super().__init__(**kwargs)
        self.energy, self.buffer = energy, buffer
        self.steps, self.step_size, self.noise, self.clip = steps, step_size, noise, clip
        self.alpha, self.data_noise = alpha, data_noise
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.trackers = {name: keras.metrics.Mean(name=name) for name in
                         ("loss", "cd", "reg", "e_real", "e_fake")}
        self.built = True  # the energy network is built; fit() must not call the model

    def compile(self, optimizer: keras.optimizers.Optimizer, **kwargs) -> None:
        """Attach the optimizer (and build it, so that a backup can be restored)."""
        super().compile(optimizer=optimizer, **kwargs)
        optimizer.build(self.energy.trainable_variables)

    @property
    def metrics(self) -> list:
        return list(self.trackers.values())

    def call(self, images, training: bool = False):
        """The energy of each image, shape ``(n, 1)``."""
        return self.energy(images, training=training)

    def sample(self, x0, steps: int | None = None) -> Any:
        """Langevin dynamics on this model's energy from ``x0`` (default: ``self.steps`` steps)."""
        return langevin(self.energy, x0, self.steps if steps is None else steps,
                        self.step_size, self.noise, clip=self.clip, seed=self.seed_generator)

    def train_step(self, data):
        real, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        n = ops.shape(real)[0]

        # 1. Negative samples: chains from the buffer (5% fresh noise), continued by Langevin
        #    dynamics on the current energy, and written back to the buffer.
        fake = self.sample(self.buffer.sample(n))
        self.buffer.push(fake)

        # 2. Real images, with a little noise so the energy is smooth around them.
        real = ops.clip(real + self.data_noise * keras.random.normal(
            ops.shape(real), seed=self.seed_generator), -1.0, 1.0)

        # 3. Contrastive divergence: push the energy of real images down and that of the samples
        #    up; the regulariser keeps both energies near zero.
        def loss_fn():
            e_real = self.energy(real, training=True)
            e_fake = self.energy(fake, training=True)
            cd = ops.mean(e_real) - ops.mean(e_fake)
            reg = self.alpha * (ops.mean(ops.square(e_real)) + ops.mean(ops.square(e_fake)))
            return cd + reg, (cd, reg, ops.mean(e_real), ops.mean(e_fake))

        weights = self.energy.trainable_variables
        (loss, aux), grads = value_and_grad(loss_fn, weights, has_aux=True)
        self.optimizer.apply(grads, weights)
        for tracker, value in zip(self.trackers.values(), (loss,) + tuple(aux)):
            tracker.update_state(value)
        return {name: t.result() for name, t in self.trackers.items()}


# ---------------------------------------------------------------------------------------------
# Restricted Boltzmann machines: binary units, block Gibbs sampling, CD-k and persistent CD


def _sigmoid(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # = 1 / (1 + e^-z), without overflow warnings


def _softplus(z):
    return np.maximum(z, 0.0) + np.log1p(np.exp(-np.abs(z)))  # log(1 + e^z), stable


def _one_blas_thread():
    """A context in which NumPy's BLAS uses one thread (faster for an RBM's small matrices)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - scikit-learn brings threadpoolctl
        return contextlib.nullcontext()
    return threadpool_limits(1, user_api="blas")


class RBM:
    """A restricted Boltzmann machine with binary visible and hidden units, in NumPy.

    The energy of a joint state is ``E(v, h) = -v·W·h - a·v - b·h`` (``W``: ``(n_visible,
    n_hidden)``, ``a``, ``b``: the visible and hidden biases). There are no visible-visible or
    hidden-hidden weights, so given one layer the units of the other are independent:
    ``p(h_j = 1 | v) = sigmoid(b_j + v·W[:, j])`` and ``p(v_i = 1 | h) = sigmoid(a_i + W[i]·h)``,
    and summing out ``h`` gives the free energy ``F(v) = -a·v - sum_j softplus(b_j + v·W[:, j])``
    with ``p(v) = exp(-F(v)) / Z``. Samples come from block Gibbs sampling (all hidden units at
    once, then all visible units); :meth:`fit` trains by contrastive divergence (CD-k, chains
    started at the data) or persistent CD (PCD-k, chains kept from one update to the next in
    :attr:`chains`). With few hidden units :meth:`log_partition` sums over all ``2**n_hidden``
    hidden states, so :meth:`log_likelihood` is exact. The gradients are written out, not
    computed by automatic differentiation, so the class runs the same on every Keras backend.

    ``visible_bias`` sets ``a`` (e.g. the log-odds of each pixel being on in the training data);
    the weights start as ``N(0, 0.01^2)`` and the hidden biases at zero (the settings of Hinton's
    practical guide).
    """

    max_exact_hidden = 20

    def __init__(self, n_visible: int, n_hidden: int, *, visible_bias: Any = None,
                 seed: int | None = None):
        if n_visible < 1 or n_hidden < 1:
            raise ValueError(f"an RBM needs at least one visible and one hidden unit, got "
                             f"n_visible={n_visible}, n_hidden={n_hidden}")
        self.rng = np.random.default_rng(seed)
        self.W = 0.01 * self.rng.standard_normal((n_visible, n_hidden))
        self.a = np.zeros(n_visible) if visible_bias is None else np.array(
            visible_bias, dtype="float64").reshape(n_visible)
        self.b = np.zeros(n_hidden)
        self.chains = None  # the persistent chains of PCD, created by the first PCD update

    @property
    def n_visible(self) -> int:
        return self.W.shape[0]

    @property
    def n_hidden(self) -> int:
        return self.W.shape[1]

    def _check(self, v) -> np.ndarray:
        v = np.asarray(v, dtype="float64")
        if v.ndim != 2 or v.shape[1] != self.n_visible:
            raise ValueError(f"expected a batch of shape (n, {self.n_visible}), got {v.shape}")
        if not np.all((v == 0) | (v == 1)):
            raise ValueError("an RBM with binary units needs 0/1 data: binarise it first "
                             "(e.g. x > 0.5)")
        return v

    def hidden_probs(self, v) -> np.ndarray:
        """``p(h_j = 1 | v)`` for every hidden unit, shape ``(n, n_hidden)``."""
        return _sigmoid(v @ self.W + self.b)

    def visible_probs(self, h) -> np.ndarray:
        """``p(v_i = 1 | h)`` for every visible unit, shape ``(n, n_visible)``."""
        return _sigmoid(h @ self.W.T + self.a)

    def _bernoulli(self, p) -> np.ndarray:
        return (self.rng.random(p.shape) < p).astype("float64")

    def gibbs_step(self, v) -> np.ndarray:
        """One step of block Gibbs sampling: ``h ~ p(h | v)``, then ``v' ~ p(v | h)``."""
        h = self._bernoulli(self.hidden_probs(v))
        return self._bernoulli(self.visible_probs(h))

    def sample(self, v0, steps: int, *, probabilities: bool = False) -> np.ndarray:
        """Run ``steps`` steps of block Gibbs sampling from the binary batch ``v0``.

        Returns the binary visible units after the last step or, with ``probabilities``, the
        probabilities ``p(v | h)`` from which they were drawn (smoother to look at).
        """
        v = self._check(v0)
        if steps < 1:
            raise ValueError(f"steps must be at least 1, got {steps}")
        with _one_blas_thread():
            for _ in range(steps - 1):
                v = self.gibbs_step(v)
            p = self.visible_probs(self._bernoulli(self.hidden_probs(v)))
        return p if probabilities else self._bernoulli(p)

    def free_energy(self, v) -> np.ndarray:
        """``F(v) = -log sum_h exp(-E(v, h))`` for each row of the binary batch ``v``."""
        v = self._check(v)
        return -v @ self.a - _softplus(v @ self.W + self.b).sum(axis=1)

    def log_partition(self) -> float:
        """``log Z``, exactly: a log-sum-exp over all ``2**n_hidden`` hidden states.

        Summing out the visible units instead of the hidden ones,
        ``log Z = log sum_h exp(b·h + sum_i softplus(a_i + W[i]·h))``. It refuses an RBM with
        more than :attr:`max_exact_hidden` hidden units (a million states); larger ones need an
        estimate, such as annealed importance sampling.
        """
        if self.n_hidden > self.max_exact_hidden:
            raise ValueError(f"the exact partition function sums over 2**{self.n_hidden} hidden "
                             f"states; only up to {self.max_exact_hidden} hidden units are "
                             f"supported")
        bits = np.arange(self.n_hidden)
        terms = []
        with _one_blas_thread():
            for start in range(0, 2 ** self.n_hidden, 4096):
                index = np.arange(start, min(start + 4096, 2 ** self.n_hidden))
                h = ((index[:, None] >> bits) & 1).astype("float64")
                terms.append(h @ self.b + _softplus(h @ self.W.T + self.a).sum(axis=1))
        terms = np.concatenate(terms)
        top = terms.max()
        return float(top + np.log(np.exp(terms - top).sum()))

    def log_likelihood(self, v) -> np.ndarray:
        """``log p(v) = -F(v) - log Z`` (in nats) for each row of the binary batch ``v``."""
        return -self.free_energy(v) - self.log_partition()

    def train_step(self, v_data, learning_rate: float, k: int = 1,
                   persistent: bool = False) -> None:
        """One CD-k update (``persistent=False``) or PCD-k update on a batch of binary data.

        The gradient of the mean log-likelihood is ``<v h>_data - <v h>_model`` for ``W`` (and
        ``<v> - <v>``, ``<h> - <h>`` for the biases), with ``h`` replaced by its probability
        given ``v``. CD-k estimates the model term from chains started at the batch and run for
        ``k`` Gibbs steps; PCD-k continues the chains of the previous update instead.
        """
        h_data = self.hidden_probs(v_data)                        # positive phase
        if persistent:
            if self.chains is None:
                self.chains = self._bernoulli(np.full(v_data.shape, 0.5))
            v_model = self.chains
        else:
            v_model = v_data
        for _ in range(k):                                       # negative phase
            v_model = self.gibbs_step(v_model)
        if persistent:
            self.chains = v_model
        h_model = self.hidden_probs(v_model)
        n, m = len(v_data), len(v_model)
        self.W += learning_rate * (v_data.T @ h_data / n - v_model.T @ h_model / m)
        self.a += learning_rate * (v_data.mean(axis=0) - v_model.mean(axis=0))
        self.b += learning_rate * (h_data.mean(axis=0) - h_model.mean(axis=0))

    def fit(self, data, *, epochs: int = 1, batch_size: int = 50, learning_rate: float = 0.05,
            k: int = 1, persistent: bool = False) -> "RBM":
        """Train on binary ``data`` (shape ``(n, n_visible)``) with shuffled minibatches.

        Calling it again continues training (and, for PCD, the same persistent chains).
        """
        data = self._check(data)
        if epochs < 0 or batch_size < 1 or k < 1:
            raise ValueError(f"need epochs >= 0, batch_size >= 1 and k >= 1, got {epochs}, "
                             f"{batch_size} and {k}")
        with _one_blas_thread():
            for _ in range(epochs):
                order = self.rng.permutation(len(data))
                for start in range(0, len(data) - batch_size + 1, batch_size):
                    self.train_step(data[order[start:start + batch_size]], learning_rate, k,
                                    persistent)
        return self
