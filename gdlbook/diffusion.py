"""Denoising diffusion: noise schedules, the denoising U-Net and a DDIM model (taught in chapter 8).

Chapter 8 derives every piece of this module; the U-Net and the schedules are written to be
reusable by other models. Everything is written with ``keras.ops`` and runs on TensorFlow,
PyTorch and JAX.

- Noise schedules map a diffusion time ``t`` in [0, 1] to ``(noise_rates, signal_rates)``, with
  ``signal_rates**2 + noise_rates**2 == 1``: a noisy image is
  ``signal_rates * image + noise_rates * noise``.
- :func:`build_unet` builds the residual U-Net that predicts the noise in a noisy image, given
  the noise variance (embedded by :class:`SinusoidalEmbedding`).
- :class:`DiffusionModel` trains that network through ``compute_loss`` (so ``fit()`` works on
  every backend) and samples with DDIM, deterministic or stochastic, vectorised over the batch.
- Chapter 13 conditions the U-Net on a vector (a text embedding): ``build_unet(...,
  condition_dims=E)`` adds a third input whose :class:`FiLM` layers scale and shift the
  normalised features of every residual block, and :class:`ConditionalDiffusionModel` trains
  it with condition dropout and samples with classifier-free guidance.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import keras
import numpy as np
from keras import layers, ops

from gdlbook import progress
from gdlbook.convolution import Conv2D

# --------------------------------------------------------------------------- noise schedules

LINEAR_BETA_MIN, LINEAR_BETA_MAX, LINEAR_STEPS = 1e-4, 0.02, 1000


def linear_schedule(diffusion_times):
    """DDPM's linear schedule (Ho et al., 2020) in continuous time.

    DDPM adds noise in 1,000 steps with variances β rising linearly from 1e-4 to 0.02, so the
    signal that survives to step ``T t`` is ᾱ(t) = ∏(1 - β) ≈ exp(-T ∫₀ᵗ β(s) ds).
    """
    t = diffusion_times
    integral = LINEAR_STEPS * (LINEAR_BETA_MIN * t
                               + 0.5 * (LINEAR_BETA_MAX - LINEAR_BETA_MIN) * t**2)
    alpha_bars = ops.exp(-integral)
    return ops.sqrt(1.0 - alpha_bars), ops.sqrt(alpha_bars)


def cosine_schedule(diffusion_times):
    """The cosine schedule (Nichol & Dhariwal, 2021, without their small offset): ᾱ = cos²(πt/2)."""
    angles = diffusion_times * (math.pi / 2)
    return ops.sin(angles), ops.maximum(ops.cos(angles), 0.0)  # cos(π/2) is -4e-8 in float32


def offset_cosine_schedule(diffusion_times, min_signal_rate: float = 0.02,
                           max_signal_rate: float = 0.95):
    """The cosine schedule restricted to signal rates in [0.02, 0.95].

    The angle moves linearly from arccos(0.95) at t = 0 to arccos(0.02) at t = 1, so the
    network never sees a noise-free image (nothing to learn) nor a signal-free one (dividing by a
    zero signal rate when estimating the image).
    """
    start = math.acos(max_signal_rate)
    end = math.acos(min_signal_rate)
    angles = start + diffusion_times * (end - start)
    return ops.sin(angles), ops.cos(angles)


SCHEDULES: dict[str, Callable] = {
    "linear": linear_schedule,
    "cosine": cosine_schedule,
    "offset_cosine": offset_cosine_schedule,
}

MIN_SIGNAL_RATE = 0.02  # the offset cosine's (and the Keras DDIM example's) lowest signal rate


def max_sampling_time(schedule: Callable, min_signal_rate: float = MIN_SIGNAL_RATE) -> float:
    """The latest diffusion time at which ``schedule`` keeps a signal rate of ``min_signal_rate``.

    A sampler estimates the clean image as ``(x_t - n_t ε̂) / s_t``: the error of the noise
    estimate is multiplied by ``n_t / s_t``, infinite where the signal rate ``s_t`` is 0 (the
    cosine schedule at t = 1) and about 150 where it is 0.0066 (the linear schedule at t = 1).
    Sampling therefore starts at this time instead of 1: 1.0 for the offset cosine schedule,
    whose signal rate never falls below 0.02, about 0.987 for the cosine and 0.88 for the linear
    schedule. Raises ``ValueError`` for a schedule whose signal rate is below ``min_signal_rate``
    already at t = 0, which no sampler can start from.
    """
    if not 0.0 < min_signal_rate < 1.0:
        raise ValueError(f"min_signal_rate must be in (0, 1); got {min_signal_rate}")
    t = np.linspace(0.0, 1.0, 100_001)
    signal_rates = ops.convert_to_numpy(schedule(t.astype("float32"))[1]).astype("float64")
    ok = signal_rates >= min_signal_rate * (1.0 - 1e-4)  # float32 rounding at t = 1
    if not ok[0]:
        raise ValueError(
            f"this schedule's signal rate at t = 0 is {signal_rates[0]:.3g}, below "
            f"min_signal_rate = {min_signal_rate}: it cannot be sampled (the image estimate "
            "divides by the signal rate)")
    return float(t[ok].max())


# --------------------------------------------------------------------------- the U-Net


@keras.saving.register_keras_serializable(package="gdlbook")
class SinusoidalEmbedding(layers.Layer):
    """Embed a scalar (the noise variance) as sines and cosines of geometrically spaced frequencies.

    Input ``(..., 1)``, output ``(..., dims)``: ``[sin(2π f_k x), cos(2π f_k x)]`` for ``dims/2``
    frequencies ``f_k`` from ``min_frequency`` to ``max_frequency``, evenly spaced in log scale,
    like the position encoding of a transformer.
    """

    def __init__(self, dims: int = 32, min_frequency: float = 1.0,
                 max_frequency: float = 1000.0, **kwargs):
        super().__init__(**kwargs)
        if dims % 2:
            raise ValueError(f"dims must be even; got {dims}")
        self.dims, self.min_frequency, self.max_frequency = dims, min_frequency, max_frequency
        freqs = np.exp(np.linspace(np.log(min_frequency), np.log(max_frequency), dims // 2))
        self.angular_speeds = (2.0 * np.pi * freqs).astype("float32")

    def call(self, x):
        angles = ops.cast(x, "float32") * self.angular_speeds
        return ops.concatenate([ops.sin(angles), ops.cos(angles)], axis=-1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.dims)

    def get_config(self):
        return {**super().get_config(), "dims": self.dims,
                "min_frequency": self.min_frequency, "max_frequency": self.max_frequency}


@keras.saving.register_keras_serializable(package="gdlbook")
class FiLM(layers.Layer):
    """Feature-wise linear modulation {Perez et al. 2018}: ``x * (1 + γ(c)) + β(c)``.

    ``call([x, c])`` with features ``x`` ``(N, H, W, C)`` and a condition ``c`` ``(N, E)``: one
    linear layer maps ``c`` to a scale ``γ`` and a shift ``β`` per channel, the same at every
    pixel. It starts at zero, so an untrained FiLM passes ``x`` through unchanged.
    """

    def build(self, input_shape):
        features, condition = input_shape
        self.channels = features[-1]
        self.dense = layers.Dense(2 * self.channels, kernel_initializer="zeros", name="gamma_beta")
        self.dense.build(condition)
        self.built = True

    def call(self, inputs):
        x, condition = inputs
        gamma_beta = ops.expand_dims(ops.expand_dims(self.dense(condition), 1), 1)
        gamma, beta = gamma_beta[..., :self.channels], gamma_beta[..., self.channels:]
        return x * (1.0 + gamma) + beta

    def compute_output_shape(self, input_shape):
        return input_shape[0]


def residual_block(x, width: int, norm_momentum: float = 0.99, condition=None):
    """Normalise → 3×3 conv (swish) → 3×3 conv, plus the input (1×1-projected if widths differ).

    With a ``condition`` (chapter 13), a :class:`FiLM` layer gives the normalised features the
    scale and shift that the normalisation itself leaves out.
    """
    residual = x if x.shape[-1] == width else Conv2D(width, 1)(x)
    x = layers.BatchNormalization(center=False, scale=False, momentum=norm_momentum)(x)
    if condition is not None:
        x = FiLM()([x, condition])
    x = Conv2D(width, 3, padding="same", activation="swish")(x)
    x = Conv2D(width, 3, padding="same")(x)
    return layers.Add()([x, residual])


def down_block(x, skips: list, width: int, depth: int, norm_momentum: float = 0.99,
               condition=None):
    """``depth`` residual blocks, each output kept in ``skips``; then halve the resolution."""
    for _ in range(depth):
        x = residual_block(x, width, norm_momentum, condition)
        skips.append(x)
    return layers.AveragePooling2D(pool_size=2)(x)


def up_block(x, skips: list, width: int, depth: int, norm_momentum: float = 0.99,
             condition=None):
    """Double the resolution; then ``depth`` residual blocks, each fed the matching skip."""
    x = layers.UpSampling2D(size=2, interpolation="bilinear")(x)
    for _ in range(depth):
        x = layers.Concatenate()([x, skips.pop()])
        x = residual_block(x, width, norm_momentum, condition)
    return x


def build_unet(image_size: int, widths: Sequence[int] = (32, 64, 96, 128), block_depth: int = 2,
               embedding_dims: int = 32, channels: int = 3,
               norm_momentum: float = 0.99, condition_dims: int | None = None) -> keras.Model:
    """The denoising U-Net: (noisy images, noise variances) → predicted noise.

    Args:
        image_size: side of the square images; divisible by ``2 ** (len(widths) - 1)``.
        widths: channels at each resolution; the last is the bottleneck's.
        block_depth: residual blocks per resolution, on the way down and on the way up.
        embedding_dims: size of the sinusoidal embedding of the noise variance.
        channels: image channels.
        norm_momentum: momentum of the batch normalisations' moving statistics.
        condition_dims: size of a conditioning vector (chapter 13's text embedding), or
            ``None`` for an unconditional network. The vector goes through one dense layer
            (swish) shared by every residual block, whose :class:`FiLM` reads it.

    Returns:
        A functional model with inputs ``(N, size, size, channels)`` and ``(N, 1, 1, 1)``, and
        ``(N, condition_dims)`` when conditioned.
    """
    if image_size % 2 ** (len(widths) - 1):
        raise ValueError(f"image_size {image_size} is not divisible by 2**{len(widths) - 1}")
    noisy_images = keras.Input((image_size, image_size, channels), name="noisy_images")
    noise_variances = keras.Input((1, 1, 1), name="noise_variances")

    e = SinusoidalEmbedding(embedding_dims)(noise_variances)
    e = layers.UpSampling2D(size=image_size, interpolation="nearest")(e)
    x = Conv2D(widths[0], 1)(noisy_images)
    x = layers.Concatenate()([x, e])
    inputs, c = [noisy_images, noise_variances], None
    if condition_dims:
        conditions = keras.Input((condition_dims,), name="conditions")
        inputs.append(conditions)
        c = layers.Dense(4 * embedding_dims, activation="swish")(conditions)

    skips: list = []
    for width in widths[:-1]:
        x = down_block(x, skips, width, block_depth, norm_momentum, c)
    for _ in range(block_depth):
        x = residual_block(x, widths[-1], norm_momentum, c)
    for width in reversed(widths[:-1]):
        x = up_block(x, skips, width, block_depth, norm_momentum, c)

    # zero-initialised output: the untrained network predicts "no noise"
    outputs = Conv2D(channels, 1, kernel_initializer="zeros")(x)
    name = "conditional_unet" if condition_dims else "residual_unet"
    return keras.Model(inputs, outputs, name=name)


# --------------------------------------------------------------------------- the diffusion model


class DiffusionModel(keras.Model):
    """A DDIM diffusion model: trains ``network`` to predict noise, samples by denoising.

    ``call(images)`` draws a noise level and a noise image per example, mixes them with the
    (normalised) images and returns ``(noises, predicted_noises)``; :meth:`compute_loss` is
    their mean absolute error (``noise_loss="mae"``, chapter 8) or mean squared error
    (``"mse"``, the DDPM objective). The squared error's minimiser is the posterior *mean* of
    the noise, which is what the DDIM update assumes; the absolute error's is its per-pixel
    *median*, which for sparse images (a few coloured pixels on a plain background) is the
    background, so samples come out nearly empty (chapter 13). The ``normalizer`` must be
    adapted on the training images before training.

    ``input_scale`` is the input scaling of {Chen 2023}: the normalised images are multiplied
    by it before noise is added, which multiplies their signal-to-noise ratio by
    ``input_scale**2`` at every noise level, the schedule unchanged. Below 1 it spends more
    of training, and of every sampling chain, at the high noise levels where the layout of an
    image is decided. Chapter 13 needs it: per-channel standardisation puts the few shapes of its
    sparse images four to six standard deviations from the background.
    """

    def __init__(self, network: keras.Model, schedule: str = "offset_cosine", seed: int = 0,
                 min_signal_rate: float = MIN_SIGNAL_RATE, noise_loss: str = "mae",
                 input_scale: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        if not input_scale > 0:
            raise ValueError(f"input_scale must be positive; got {input_scale}")
        self.input_scale = float(input_scale)
        if schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {schedule!r}; choose from {sorted(SCHEDULES)}")
        if noise_loss not in ("mae", "mse"):
            raise ValueError(f"unknown noise_loss {noise_loss!r}; choose from 'mae', 'mse'")
        self.noise_loss = noise_loss
        self.network = network
        self.schedule_name = schedule
        self.schedule = SCHEDULES[schedule]
        self.max_time = max_sampling_time(self.schedule, min_signal_rate)
        self.image_shape = tuple(network.inputs[0].shape[1:])
        self.normalizer = layers.Normalization(axis=-1)
        self.normalizer.build((None, *self.image_shape))
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.built = True

    def scale(self, images):
        """Pixels → the model's space: normalised per channel, times ``input_scale``."""
        return self.normalizer(images) * self.input_scale

    def call(self, images, training=False):
        images = self.scale(images)
        batch = ops.shape(images)[0]
        noises = keras.random.normal(ops.shape(images), seed=self.seed_generator)
        times = keras.random.uniform((batch, 1, 1, 1), seed=self.seed_generator)
        noise_rates, signal_rates = self.schedule(times)
        noisy_images = signal_rates * images + noise_rates * noises
        predicted_noises = self.network([noisy_images, noise_rates**2], training=training)
        return noises, predicted_noises

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        noises, predicted_noises = y_pred
        if self.noise_loss == "mse":
            return ops.mean(ops.square(noises - predicted_noises))
        return ops.mean(ops.abs(noises - predicted_noises))

    def denormalize(self, images):
        """Images in the model's space (:meth:`scale`) back to pixels in [0, 1]."""
        mean, variance = self.normalizer.mean, self.normalizer.variance
        return ops.clip(mean + images / self.input_scale * ops.sqrt(variance), 0.0, 1.0)

    def denoise(self, noisy_images, noise_rates, signal_rates):
        """The network's noise estimate, and the image estimate it implies (inference mode).

        The network runs through ``predict_on_batch``, Keras's compiled forward pass: a sampler
        calls it once per step, and eager calls would cost several times more.
        """
        predicted_noises = ops.convert_to_tensor(self.network.predict_on_batch(
            [ops.convert_to_numpy(noisy_images), ops.convert_to_numpy(noise_rates**2)]))
        predicted_images = (noisy_images - noise_rates * predicted_noises) / signal_rates
        return predicted_noises, predicted_images

    def ddim_step(self, noisy_images, t, t_next, eta: float = 0.0, seed=None):
        """One reverse step from time ``t`` to ``t_next`` for the whole batch (DDIM; ``eta`` = 1 ≈ DDPM)."""
        batch = ops.shape(noisy_images)[0]
        noise_rates, signal_rates = self.schedule(ops.full((batch, 1, 1, 1), t))
        next_noise_rates, next_signal_rates = self.schedule(ops.full((batch, 1, 1, 1), t_next))
        predicted_noises, predicted_images = self.denoise(noisy_images, noise_rates,
                                                          signal_rates)
        # sigma: the fresh noise of this step; 0 is deterministic DDIM
        sigmas = eta * (next_noise_rates / noise_rates) * ops.sqrt(
            ops.maximum(1.0 - signal_rates**2 / next_signal_rates**2, 0.0))
        next_images = (next_signal_rates * predicted_images
                       + ops.sqrt(ops.maximum(next_noise_rates**2 - sigmas**2, 0.0))
                       * predicted_noises)
        if eta > 0:
            next_images = next_images + sigmas * keras.random.normal(
                ops.shape(noisy_images), seed=seed)
        return next_images, predicted_images

    def generate(self, initial_noise, diffusion_steps: int, eta: float = 0.0,
                 seed: int = 0, batch_size: int = 256) -> np.ndarray:
        """Sample images from ``initial_noise`` in ``diffusion_steps`` DDIM steps.

        The steps run from ``self.max_time`` (1, or earlier for a schedule whose signal rate
        falls below ``min_signal_rate``: see :func:`max_sampling_time`) down to 0.
        Each batch of ``batch_size`` images is denoised in parallel: one network call per step.
        Returns pixels in [0, 1] as a NumPy array; with ``eta`` = 0 the result depends on
        ``initial_noise`` only.
        """
        if diffusion_steps < 1:
            raise ValueError(f"diffusion_steps must be at least 1; got {diffusion_steps}")
        if int(initial_noise.shape[0]) > batch_size:  # bounded memory for large samples
            noise = ops.convert_to_numpy(initial_noise)
            return np.concatenate([
                self.generate(noise[i:i + batch_size], diffusion_steps, eta, seed + i, batch_size)
                for i in range(0, len(noise), batch_size)])
        seed_generator = keras.random.SeedGenerator(seed)
        x = ops.convert_to_tensor(initial_noise, "float32")
        step = self.max_time / diffusion_steps
        for i in progress.track(range(diffusion_steps), f"DDIM, {len(x)} images",
                                unit="step"):
            t = self.max_time - i * step
            x, predicted_images = self.ddim_step(x, t, t - step, eta, seed_generator)
        return ops.convert_to_numpy(self.denormalize(predicted_images))

    def sample(self, num_images: int, diffusion_steps: int, eta: float = 0.0,
               seed: int = 0) -> np.ndarray:
        """``num_images`` new images: Gaussian noise (seeded), denoised by :meth:`generate`."""
        noise = keras.random.normal((num_images, *self.image_shape), seed=seed)
        return self.generate(noise, diffusion_steps, eta=eta, seed=seed + 1)


class ConditionalDiffusionModel(DiffusionModel):
    """A DDIM model of images given a condition vector, sampled with classifier-free guidance.

    ``network`` is a :func:`build_unet` with ``condition_dims``. Training data is a dict
    ``{"images": (N, S, S, C), "conditions": (N, E)}``. While training, each condition is
    replaced by zeros with probability ``condition_dropout``, so one network learns both the
    conditional noise estimate ``ε(x, c)`` and the unconditional one ``ε(x, ∅)``
    {Ho & Salimans 2022}. Sampling with guidance scale ``s`` uses
    ``ε(x, ∅) + s (ε(x, c) - ε(x, ∅))``: ``s = 0`` ignores the condition, ``s = 1`` is the plain
    conditional model, ``s > 1`` pushes further along the direction the condition adds.
    """

    def __init__(self, network: keras.Model, schedule: str = "offset_cosine", seed: int = 0,
                 min_signal_rate: float = MIN_SIGNAL_RATE, condition_dropout: float = 0.1,
                 noise_loss: str = "mse", input_scale: float = 1.0, **kwargs):
        super().__init__(network, schedule, seed, min_signal_rate, noise_loss, input_scale,
                         **kwargs)
        if len(network.inputs) != 3:
            raise ValueError("a conditional model needs a U-Net built with condition_dims")
        if not 0.0 <= condition_dropout < 1.0:
            raise ValueError(f"condition_dropout must be in [0, 1); got {condition_dropout}")
        self.condition_dropout = condition_dropout
        self.condition_dims = int(network.inputs[2].shape[-1])
        self._conditions, self._guidance = None, 1.0

    def call(self, inputs, training=False):
        images = self.scale(inputs["images"])
        conditions = ops.cast(inputs["conditions"], "float32")
        batch = ops.shape(images)[0]
        noises = keras.random.normal(ops.shape(images), seed=self.seed_generator)
        times = keras.random.uniform((batch, 1, 1, 1), seed=self.seed_generator)
        if training and self.condition_dropout > 0:  # caption dropout: learn ε(x, ∅) too
            keep = keras.random.uniform((batch, 1), seed=self.seed_generator)
            conditions = conditions * ops.cast(keep >= self.condition_dropout, "float32")
        noise_rates, signal_rates = self.schedule(times)
        noisy_images = signal_rates * images + noise_rates * noises
        predicted_noises = self.network([noisy_images, noise_rates**2, conditions],
                                        training=training)
        return noises, predicted_noises

    def guided_noise(self, noisy_images, noise_variances, conditions, guidance_scale: float):
        """Classifier-free guidance: ``ε(x, ∅) + s (ε(x, c) - ε(x, ∅))``, one batched call."""
        x = ops.convert_to_numpy(noisy_images)
        v = ops.convert_to_numpy(noise_variances)
        c = np.asarray(conditions, dtype="float32")
        if guidance_scale == 1.0:  # the conditional estimate alone
            return self.network.predict_on_batch([x, v, c])
        if guidance_scale == 0.0:  # the unconditional estimate alone
            return self.network.predict_on_batch([x, v, np.zeros_like(c)])
        both = self.network.predict_on_batch([np.concatenate([x, x]), np.concatenate([v, v]),
                                              np.concatenate([c, np.zeros_like(c)])])
        conditional, unconditional = np.split(np.asarray(both), 2)
        return unconditional + guidance_scale * (conditional - unconditional)

    def denoise(self, noisy_images, noise_rates, signal_rates):
        """The guided noise estimate for the conditions :meth:`generate` is sampling."""
        predicted_noises = ops.convert_to_tensor(self.guided_noise(
            noisy_images, noise_rates**2, self._conditions, self._guidance))
        predicted_images = (noisy_images - noise_rates * predicted_noises) / signal_rates
        return predicted_noises, predicted_images

    def generate(self, initial_noise, conditions, diffusion_steps: int,
                 guidance_scale: float = 1.0, eta: float = 0.0, seed: int = 0,
                 batch_size: int = 256) -> np.ndarray:
        """Images for ``conditions`` (one row per image) from ``initial_noise``, guided by
        ``guidance_scale``; otherwise as :meth:`DiffusionModel.generate`."""
        noise = ops.convert_to_numpy(initial_noise)
        conditions = np.asarray(conditions, dtype="float32")
        if conditions.shape != (len(noise), self.condition_dims):
            raise ValueError(f"conditions must be ({len(noise)}, {self.condition_dims}); "
                             f"got {conditions.shape}")
        out = []
        try:
            for i in range(0, len(noise), batch_size):
                self._conditions, self._guidance = conditions[i:i + batch_size], guidance_scale
                chunk = noise[i:i + batch_size]
                out.append(DiffusionModel.generate(self, chunk, diffusion_steps, eta, seed + i,
                                                   batch_size=len(chunk)))
        finally:
            self._conditions, self._guidance = None, 1.0
        return np.concatenate(out)

    def sample(self, conditions, diffusion_steps: int, guidance_scale: float = 1.0,
               eta: float = 0.0, seed: int = 0) -> np.ndarray:
        """One image per row of ``conditions``, from seeded Gaussian noise."""
        noise = keras.random.normal((len(conditions), *self.image_shape), seed=seed)
        return self.generate(noise, conditions, diffusion_steps, guidance_scale, eta, seed + 1)


def spherical_interpolation(a, b, weights) -> np.ndarray:
    """Points between ``a`` and ``b`` on the great circle, one per weight in [0, 1] (slerp).

    Interpolating two Gaussian noise images linearly shrinks their norm halfway (by up to √2);
    moving along the sphere keeps it, so every point still looks like noise the model knows.
    Returns ``(len(weights), *a.shape)``.
    """
    a = np.asarray(a, dtype="float64")
    b = np.asarray(b, dtype="float64")
    cos = np.sum(a * b) / (np.linalg.norm(a) * np.linalg.norm(b))
    theta = np.arccos(np.clip(cos, -1.0, 1.0))
    w = np.asarray(weights, dtype="float64").reshape(-1, *([1] * a.ndim))
    if theta < 1e-6:  # (almost) parallel: the arc is a line
        return ((1 - w) * a + w * b).astype("float32")
    out = (np.sin((1 - w) * theta) * a + np.sin(w * theta) * b) / np.sin(theta)
    return out.astype("float32")
