"""Generative adversarial networks: DCGAN, WGAN-GP and a conditional WGAN-GP (chapter 4).

The networks follow Foster's *Generative Deep Learning* (2nd ed., ch. 4): a generator of
transposed convolutions (kernel 4, stride 2) from a latent vector, and a discriminator (or
critic) of strided convolutions with widths 64-128-256-512 at 64×64. Each GAN is a
``keras.Model`` whose ``train_step`` updates both players with their own optimizer, using
:func:`gdlbook.gradients.value_and_grad`, so ``fit()`` trains it and callbacks (sample grids,
:func:`gdlbook.training.resumable`) work as for any model. The optimizers are attributes of the
model, so a backup of its weights holds both optimizers' state too.

Backends: TensorFlow and PyTorch (compiled as usual), and JAX, where ``fit()`` expects a pure
``train_step(state, data)``: :class:`gdlbook.training.StatefulStepModel`, their base, then runs
the same stateful step eagerly inside that signature, which is correct but not jit-compiled.
"""

from __future__ import annotations

import math
from typing import Any

import keras
import numpy as np
from keras import layers, ops

from gdlbook.gradients import value_and_grad
from gdlbook.convolution import Conv2D
from gdlbook.training import StatefulStepModel
from gdlbook.upsampling import Conv2DTranspose


def _n_doublings(image_size: int) -> int:
    n = int(round(math.log2(image_size)))
    if 2 ** n != image_size or image_size < 8:
        raise ValueError(f"image_size must be a power of two, at least 8; got {image_size}")
    return n - 2  # 4x4 -> image_size


def build_generator(input_dim: int, image_size: int = 64, channels: int = 3, width: int = 64,
                    bn_momentum: float = 0.9, name: str = "generator") -> keras.Model:
    """Latent vector ``(input_dim,)`` → image ``(image_size, image_size, channels)`` in [-1, 1].

    A 4×4 transposed convolution turns the vector (a 1×1 "image") into 4×4 feature maps; each
    further transposed convolution (kernel 4, stride 2) doubles the size and halves the
    channels, down to ``width`` before the last layer. Batch norm and leaky ReLU (0.2) follow
    each one; the output layer has ``tanh``. At 64×64 the widths are 512-256-128-64.
    """
    n = _n_doublings(image_size)
    z = keras.Input((input_dim,), name="z")
    x = layers.Reshape((1, 1, input_dim))(z)
    x = Conv2DTranspose(width * 2 ** (n - 1), 4, strides=1, padding="valid",
                        use_bias=False)(x)
    x = layers.BatchNormalization(momentum=bn_momentum)(x)
    x = layers.LeakyReLU(0.2)(x)
    for i in range(n - 2, -1, -1):
        x = Conv2DTranspose(width * 2 ** i, 4, strides=2, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization(momentum=bn_momentum)(x)
        x = layers.LeakyReLU(0.2)(x)
    image = Conv2DTranspose(channels, 4, strides=2, padding="same",
                            activation="tanh")(x)
    return keras.Model(z, image, name=name)


def build_discriminator(image_size: int = 64, channels: int = 3, width: int = 64, *,
                        batch_norm: bool = True, dropout: float = 0.3,
                        output_activation: str | None = "sigmoid", bn_momentum: float = 0.9,
                        name: str = "discriminator") -> keras.Model:
    """Image → one score per image: ``(image_size, image_size, channels)`` → ``(1,)``.

    Strided convolutions (kernel 4, stride 2) halve the size and double the channels, from
    ``width`` up (64-128-256-512 at 64×64), each followed by batch norm (not after the first,
    and not at all for a WGAN critic: ``batch_norm=False``), leaky ReLU (0.2) and dropout. A last
    4×4 convolution gives the score: a probability (``"sigmoid"``, DCGAN) or an unbounded
    number (``None``, the WGAN critic).
    """
    n = _n_doublings(image_size)
    image = keras.Input((image_size, image_size, channels), name="image")
    x = image
    for i in range(n):
        x = Conv2D(width * 2 ** i, 4, strides=2, padding="same", use_bias=False)(x)
        if batch_norm and i > 0:
            x = layers.BatchNormalization(momentum=bn_momentum)(x)
        x = layers.LeakyReLU(0.2)(x)
        if dropout and (i > 0 or batch_norm):
            x = layers.Dropout(dropout)(x)
    x = Conv2D(1, 4, strides=1, padding="valid", activation=output_activation)(x)
    score = layers.Flatten()(x)
    return keras.Model(image, score, name=name)


def build_mlp(input_dim: int, output_dim: int, hidden: int = 128, depth: int = 3,
              output_activation: str | None = None, name: str = "mlp") -> keras.Model:
    """A small fully connected network ``(input_dim,)`` → ``(output_dim,)`` for toy data.

    ``depth`` hidden layers of ``hidden`` units with ReLU (no batch norm, so it can serve as a
    WGAN-GP critic); the output layer is linear unless ``output_activation`` is given. The
    generator and the critic of chapter 4's ring of Gaussians are two of these.
    """
    x_in = keras.Input((input_dim,), name="input")
    x = x_in
    for _ in range(depth):
        x = layers.Dense(hidden, activation="relu")(x)
    out = layers.Dense(output_dim, activation=output_activation)(x)
    return keras.Model(x_in, out, name=name)


def ring_of_gaussians(n: int, modes: int = 8, radius: float = 2.0, std: float = 0.05,
                      seed: int = 0) -> np.ndarray:
    """``n`` points from ``modes`` equal Gaussians (standard deviation ``std``) on a circle."""
    if n < 1 or modes < 1 or radius <= 0 or std <= 0:
        raise ValueError(f"need n, modes >= 1 and radius, std > 0; got {n}, {modes}, "
                         f"{radius}, {std}")
    rng = np.random.default_rng(seed)
    k = rng.integers(0, modes, size=n)
    centres = ring_centres(modes, radius)
    return (centres[k] + std * rng.normal(size=(n, 2))).astype("float32")


def ring_centres(modes: int = 8, radius: float = 2.0) -> np.ndarray:
    """The centres of :func:`ring_of_gaussians`, ``(modes, 2)``."""
    angles = 2 * np.pi * np.arange(modes) / modes
    return radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)


def mode_coverage(samples: np.ndarray, centres: np.ndarray, std: float,
                  within: float = 3.0) -> tuple[np.ndarray, float]:
    """How samples spread over the modes of a mixture with centres ``centres``.

    Returns ``(shares, near)``: the share of the samples whose nearest centre is each mode and
    lies within ``within``·``std`` of it, and the share of all samples that are that close to
    some mode. A generator that covers the data puts about 1/modes of its samples at each
    mode and ``near`` close to 1 (a Gaussian puts 98.9 % of its mass within 3 σ in 2-D).
    """
    samples = np.asarray(samples, dtype="float64")
    d = np.linalg.norm(samples[:, None, :] - np.asarray(centres)[None], axis=-1)
    nearest, dist = d.argmin(axis=1), d.min(axis=1)
    close = dist <= within * std
    shares = np.bincount(nearest[close], minlength=len(centres)) / len(samples)
    return shares, float(close.mean())


class GAN(StatefulStepModel):
    """What every GAN here shares: two networks, two optimizers, loss trackers, a seed."""

    def __init__(self, generator: keras.Model, discriminator: keras.Model, latent_dim: int,
                 seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.generator = generator
        self.discriminator = discriminator
        self.latent_dim = latent_dim
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.d_loss_tracker = keras.metrics.Mean(name="d_loss")
        self.g_loss_tracker = keras.metrics.Mean(name="g_loss")
        self.built = True  # both networks are built; fit() must not call the model on a batch

    def compile(self, d_optimizer: keras.optimizers.Optimizer,
                g_optimizer: keras.optimizers.Optimizer, **kwargs) -> None:
        """Attach one optimizer per player (and build them, so a backup can be restored)."""
        super().compile(**kwargs)
        self.d_optimizer = d_optimizer
        self.g_optimizer = g_optimizer
        d_optimizer.build(self.discriminator.trainable_variables)
        g_optimizer.build(self.generator.trainable_variables)

    @property
    def metrics(self) -> list:
        return [self.d_loss_tracker, self.g_loss_tracker]

    def generate(self, z, labels=None, training: bool = False):
        """Images from latent vectors (the conditional GAN also takes labels)."""
        return self.generator(z, training=training)

    def sample_latent(self, n) -> Any:
        """``n`` latent vectors from the prior, a standard normal."""
        return keras.random.normal((n, self.latent_dim), seed=self.seed_generator)

    def _log(self, d_loss, g_loss) -> dict:
        self.d_loss_tracker.update_state(d_loss)
        self.g_loss_tracker.update_state(g_loss)
        return {m.name: m.result() for m in self.metrics}


class DCGAN(GAN):
    """The deep convolutional GAN: binary cross-entropy, noisy labels, one step per player."""

    def __init__(self, generator, discriminator, latent_dim, label_noise: float = 0.1, **kwargs):
        super().__init__(generator, discriminator, latent_dim, **kwargs)
        self.label_noise = label_noise

    def train_step(self, data):
        real, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        n = ops.shape(real)[0]
        bce = keras.losses.BinaryCrossentropy()
        G, D = self.generator, self.discriminator

        # 1. The discriminator learns to say 1 to real images and 0 to generated ones. The
        #    targets are noisy: real ones in [1 - noise, 1], fake ones in [0, noise].
        fake = ops.stop_gradient(G(self.sample_latent(n), training=True))
        u = keras.random.uniform((2, n, 1), seed=self.seed_generator)
        real_target, fake_target = 1.0 - self.label_noise * u[0], self.label_noise * u[1]

        def d_loss_fn():
            return 0.5 * (bce(real_target, D(real, training=True))
                          + bce(fake_target, D(fake, training=True)))

        d_loss, d_grads = value_and_grad(d_loss_fn, D.trainable_variables)
        self.d_optimizer.apply(d_grads, D.trainable_variables)

        # 2. The generator learns to make the discriminator say 1 to its images.
        z = self.sample_latent(n)

        def g_loss_fn():
            return bce(ops.ones((n, 1)), D(G(z, training=True), training=True))

        g_loss, g_grads = value_and_grad(g_loss_fn, G.trainable_variables)
        self.g_optimizer.apply(g_grads, G.trainable_variables)
        return self._log(d_loss, g_loss)


class WGANGP(GAN):
    """Wasserstein GAN with gradient penalty: a critic instead of a discriminator.

    The data may be images or plain vectors (the ring of Gaussians of chapter 4): the penalty
    takes the norm of the critic's gradient over all the axes of one example. Besides the losses
    it logs ``wasserstein``, the critic's estimate mean critic(real) − mean critic(fake) of the
    Wasserstein distance (the critic's loss without the penalty, negated), and ``gp``, the
    penalty before its weight; the critic-side metrics are averaged over every critic step.
    """

    def __init__(self, generator, critic, latent_dim, critic_steps: int = 3,
                 gp_weight: float = 10.0, **kwargs):
        super().__init__(generator, critic, latent_dim, **kwargs)
        self.critic_steps = critic_steps
        self.gp_weight = gp_weight
        self.gp_tracker = keras.metrics.Mean(name="gp")
        self.wasserstein_tracker = keras.metrics.Mean(name="wasserstein")

    @property
    def metrics(self) -> list:
        return [self.d_loss_tracker, self.g_loss_tracker, self.wasserstein_tracker,
                self.gp_tracker]

    def critique(self, images, labels=None, training: bool = False):
        """The critic's score of each image (the conditional GAN also takes labels)."""
        return self.discriminator(images, training=training)

    def penalty_points(self, real, fake):
        """Points x̂ = fake + α (real − fake), α ~ U[0, 1], one α per example: on the segments."""
        n = ops.shape(real)[0]
        shape = (n,) + (1,) * (len(real.shape) - 1)
        alpha = keras.random.uniform(shape, 0.0, 1.0, seed=self.seed_generator)
        return fake + alpha * (real - fake)

    def gradient_penalty(self, real, fake, labels=None):
        """Mean of (‖∇ critic(x̂)‖ - 1)² at random points x̂ between real and fake images."""
        between = self.penalty_points(real, fake)
        _, (grads,) = value_and_grad(
            lambda x: ops.sum(self.critique(x, labels, training=True)), [between])
        grads = ops.reshape(grads, (ops.shape(grads)[0], -1))
        norms = ops.sqrt(ops.sum(ops.square(grads), axis=1) + 1e-12)
        return ops.mean(ops.square(norms - 1.0))

    def critic_loss(self, real, fake, labels=None):
        """The critic's loss, mean critic(fake) − mean critic(real) + λ·GP, and its two terms.

        Returns ``(loss, (wasserstein, gp))`` where ``wasserstein`` is the critic's estimate
        mean critic(real) − mean critic(fake); minimising the loss makes that estimate large.
        """
        wasserstein = (ops.mean(self.critique(real, labels, training=True))
                       - ops.mean(self.critique(fake, labels, training=True)))
        gp = self.gradient_penalty(real, fake, labels)
        return -wasserstein + self.gp_weight * gp, (wasserstein, gp)

    def train_step(self, data):
        real, labels, _ = keras.utils.unpack_x_y_sample_weight(data)
        n = ops.shape(real)[0]
        C = self.discriminator.trainable_variables
        G = self.generator.trainable_variables

        # 1. Several critic steps: score real images high and generated ones low,
        #    keeping the critic's gradient norm near 1 (the penalty).
        for _ in range(self.critic_steps):
            fake = ops.stop_gradient(self.generate(self.sample_latent(n), labels, training=True))
            (c_loss, (wasserstein, gp)), c_grads = value_and_grad(
                lambda: self.critic_loss(real, fake, labels), C, has_aux=True)
            self.d_optimizer.apply(c_grads, C)
            self.d_loss_tracker.update_state(c_loss)
            self.wasserstein_tracker.update_state(wasserstein)
            self.gp_tracker.update_state(gp)

        # 2. One generator step: make the critic score generated images high.
        z = self.sample_latent(n)

        def g_loss_fn():
            return -ops.mean(self.critique(self.generate(z, labels, training=True), labels,
                                           training=True))

        g_loss, g_grads = value_and_grad(g_loss_fn, G)
        self.g_optimizer.apply(g_grads, G)
        self.g_loss_tracker.update_state(g_loss)
        return {m.name: m.result() for m in self.metrics}


class ConditionalWGANGP(WGANGP):
    """WGAN-GP told which class to draw: ``fit(images, one_hot_labels)``.

    The generator reads the latent vector and the one-hot label side by side; the critic sees the
    label as extra constant channels of the image, so it judges "is this a real *sneaker*?".
    Only these two methods differ from :class:`WGANGP`; the training step is the same.
    """

    def generate(self, z, labels=None, training: bool = False):
        return self.generator(ops.concatenate([z, labels], axis=-1), training=training)

    def critique(self, images, labels=None, training: bool = False):
        n, h, w = ops.shape(images)[0], ops.shape(images)[1], ops.shape(images)[2]
        maps = ops.broadcast_to(labels[:, None, None, :], (n, h, w, ops.shape(labels)[-1]))
        return self.discriminator(ops.concatenate([images, maps], axis=-1), training=training)


class SampleSnapshots(keras.callbacks.Callback):
    """Generate images from the same latent vectors at the end of every epoch.

    ``images[i]`` holds the samples (a NumPy array in [-1, 1]) after the epoch numbered
    ``epochs[i]`` (from 0; a resumed run starts later than 0); ``labels``
    (one-hot) are passed on to a conditional GAN. Fixing the latent vectors makes the snapshots
    comparable: each column follows one point of the latent space through training.
    """

    def __init__(self, z: np.ndarray, labels: np.ndarray | None = None):
        super().__init__()
        self.z = np.asarray(z, dtype="float32")
        self.labels = None if labels is None else np.asarray(labels, dtype="float32")
        self.images: list[np.ndarray] = []
        self.epochs: list[int] = []

    def on_train_begin(self, logs=None):
        self.images, self.epochs = [], []

    def on_epoch_end(self, epoch, logs=None):
        labels = None if self.labels is None else ops.convert_to_tensor(self.labels)
        x = self.model.generate(ops.convert_to_tensor(self.z), labels)
        self.images.append(ops.convert_to_numpy(x))
        self.epochs.append(int(epoch))
