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
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import keras
from keras import layers, ops

from gdlbook.gradients import value_and_grad
from gdlbook.training import StatefulStepModel

__all__ = ["build_energy_network", "langevin", "ReplayBuffer", "EBM"]


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
             seed: keras.random.SeedGenerator | int | None = None) -> Any:
    """Run ``steps`` steps of (clipped) Langevin dynamics on the energy, from ``x0``.

    Each step is ``x <- clip_range(x - step_size * clip_grad(grad_x E(x)) + noise * eps)`` with
    ``eps ~ N(0, I)``: downhill on the energy, plus a little Gaussian noise. ``clip`` bounds each
    component of the gradient (``None``: no clipping), ``value_range`` keeps the images in the
    pixel range (``None``: unbounded). ``energy_fn`` maps a batch to one energy per example; the
    gradient of their sum is each example's own gradient. The noise is drawn up front (the loop
    body draws nothing), so the loop can be a ``keras.ops.fori_loop`` (a graph loop on
    TensorFlow); on JAX, where the book runs these steps eagerly, it is a Python loop. The result
    is not differentiable: a sample, not part of a graph.
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
        for i in range(steps):
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
