"""Autoencoders and variational autoencoders (taught in chapter 3).

The pieces the chapter builds its three models from, written once:

- :func:`conv_encoder` and :func:`conv_decoder`: stride-2 convolutional stacks that halve (double)
  the image size at each layer, with a dense bottleneck; optionally batch normalisation and
  LeakyReLU, as in the faces model of the book;
- :class:`Sampling`: the reparameterisation trick, ``z = mean + exp(log_var / 2) * eps``;
- :func:`kl_divergence`: the KL divergence of a diagonal Gaussian from N(0, I), in closed form;
- :func:`equivalent_beta`: the β of a loss written as ``weight × (mean reconstruction error) + KL``,
  the form of Foster's notebooks, in the units of :func:`reconstruction_nll`;
- :class:`VAE`: encoder + sampling + decoder, trained by ``fit()`` through an overridden
  ``compute_loss``, so it runs unchanged on TensorFlow, PyTorch and JAX.

Everything is in ``keras.ops`` and ``keras.random``; no backend is imported.
"""

from __future__ import annotations

import math
from typing import Literal, Sequence

import keras
from keras import layers, ops

from gdlbook.convolution import Conv2D
from gdlbook.upsampling import Conv2DTranspose


def _conv_block(x, filters: int, *, transpose: bool, batch_norm: bool, bn_momentum: float):
    conv = Conv2DTranspose if transpose else Conv2D
    if batch_norm:
        x = conv(filters, 3, strides=2, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization(momentum=bn_momentum)(x)
        return layers.LeakyReLU(0.2)(x)
    return conv(filters, 3, strides=2, padding="same", activation="relu")(x)


def conv_encoder(input_shape: Sequence[int], latent_dim: int,
                 filters: Sequence[int] = (32, 64, 128), *, variational: bool = True,
                 dense_units: int | None = None, batch_norm: bool = False,
                 bn_momentum: float = 0.99, name: str = "encoder") -> keras.Model:
    """Image → latent code: stride-2 convolutions, flatten, (dense), then the code.

    With ``variational=True`` the model has two outputs, the mean and the log-variance of
    q(z | x); otherwise one output, the code z itself. ``bn_momentum`` is the momentum of the
    batch-normalisation statistics (chapter 2 explains it; short runs need a smaller one).
    """
    inputs = keras.Input(tuple(input_shape), name="image")
    x = inputs
    for f in filters:
        x = _conv_block(x, f, transpose=False, batch_norm=batch_norm, bn_momentum=bn_momentum)
    x = layers.Flatten()(x)
    if dense_units:
        x = layers.Dense(dense_units, activation="relu")(x)
    if not variational:
        return keras.Model(inputs, layers.Dense(latent_dim, name="z")(x), name=name)
    z_mean = layers.Dense(latent_dim, name="z_mean")(x)
    z_log_var = layers.Dense(latent_dim, name="z_log_var")(x)
    return keras.Model(inputs, [z_mean, z_log_var], name=name)


def conv_decoder(latent_dim: int, output_shape: Sequence[int],
                 filters: Sequence[int] = (128, 64, 32), *, batch_norm: bool = False,
                 bn_momentum: float = 0.99, name: str = "decoder") -> keras.Model:
    """Latent code → image in [0, 1]: the mirror image of :func:`conv_encoder`.

    A dense layer makes a small feature map, ``len(filters)`` stride-2 transposed convolutions
    double its size up to ``output_shape``, and a 3×3 convolution with a sigmoid gives the
    pixels.
    """
    height, width, channels = output_shape
    scale = 2 ** len(filters)
    if height % scale or width % scale:
        raise ValueError(f"output size {height}×{width} is not divisible by 2^{len(filters)}")
    start = (height // scale, width // scale, filters[0])
    inputs = keras.Input((latent_dim,), name="z")
    x = layers.Dense(math.prod(start), use_bias=not batch_norm,
                     activation=None if batch_norm else "relu")(inputs)
    if batch_norm:
        x = layers.LeakyReLU(0.2)(layers.BatchNormalization(momentum=bn_momentum)(x))
    x = layers.Reshape(start)(x)
    for f in filters:
        x = _conv_block(x, f, transpose=True, batch_norm=batch_norm, bn_momentum=bn_momentum)
    outputs = Conv2D(channels, 3, padding="same", activation="sigmoid", name="image")(x)
    return keras.Model(inputs, outputs, name=name)


class Sampling(layers.Layer):
    """The reparameterisation trick: draw z ~ N(mean, exp(log_var)) as a differentiable function.

    ``z = mean + exp(log_var / 2) * eps`` with ``eps ~ N(0, I)`` drawn from the layer's own
    ``SeedGenerator``, so a seeded run is repeatable on every backend.
    """

    def __init__(self, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, z_mean, z_log_var):
        eps = keras.random.normal(ops.shape(z_mean), seed=self.seed_generator)
        return z_mean + ops.exp(0.5 * z_log_var) * eps


def kl_divergence(z_mean, z_log_var):
    """KL( N(mean, diag(exp(log_var))) ‖ N(0, I) ) per example, in nats:
    ``-½ Σ (1 + log_var − mean² − exp(log_var))``."""
    return -0.5 * ops.sum(1.0 + z_log_var - ops.square(z_mean) - ops.exp(z_log_var), axis=-1)


def reconstruction_nll(x, x_hat, kind: Literal["bernoulli", "gaussian"] = "bernoulli",
                       sigma: float = 1.0):
    """−log p(x | z) per example, summed over pixels, in nats.

    ``"bernoulli"``: binary cross-entropy of each pixel (for pixels in [0, 1]);
    ``"gaussian"``: squared error / (2σ²), the Gaussian negative log-likelihood with a fixed σ
    without its constant ``D·log(σ√(2π))``.
    """
    axes = tuple(range(1, len(x.shape)))
    if kind == "bernoulli":
        return ops.sum(ops.binary_crossentropy(x, x_hat), axis=axes)
    if kind == "gaussian":
        return ops.sum(ops.square(x - x_hat), axis=axes) / (2.0 * sigma ** 2)
    raise ValueError(f"unknown reconstruction likelihood {kind!r}: 'bernoulli' or 'gaussian'")


def equivalent_beta(weight: float, n_values: int,
                    kind: Literal["bernoulli", "gaussian"] = "bernoulli",
                    sigma: float = 1.0) -> float:
    """The β of ``weight × mean-per-value reconstruction error + KL``, in our units.

    A loss that *averages* the per-value error (binary cross-entropy, or squared error for
    ``"gaussian"``) over the ``n_values`` pixel values of an image, multiplies it by ``weight`` and
    adds the KL term is, per image, a positive constant times
    ``reconstruction_nll(x, x_hat, kind, sigma) + β · KL`` with

    - ``"bernoulli"``: ``β = n_values / weight`` (the constant is ``weight / n_values``);
    - ``"gaussian"``: ``β = n_values / (2 σ² weight)`` (the constant is ``2 σ² weight / n_values``).

    A positive constant does not move the minimum, so the two losses train the same model (up to
    the optimizer's step size). β > 1 weights the KL term more than the ELBO does.
    """
    if weight <= 0 or n_values <= 0 or sigma <= 0:
        raise ValueError(f"weight, n_values and sigma must be positive, got {weight}, "
                         f"{n_values}, {sigma}")
    if kind == "bernoulli":
        return n_values / weight
    if kind == "gaussian":
        return n_values / (2.0 * sigma ** 2 * weight)
    raise ValueError(f"unknown reconstruction likelihood {kind!r}: 'bernoulli' or 'gaussian'")


class VAE(keras.Model):
    """A variational autoencoder trained on the negative ELBO, ``reconstruction + β·KL``.

    ``encoder`` maps images to ``[z_mean, z_log_var]``, ``decoder`` maps codes to images. Calling
    the model returns a dict with the reconstruction (decoded from a sampled z), ``z_mean`` and
    ``z_log_var``. ``fit()`` minimises the per-image loss averaged over the batch and reports
    ``reconstruction_loss`` and ``kl_loss`` (both in nats per image) beside ``loss``; with
    ``beta=1`` the loss is the negative ELBO.
    """

    def __init__(self, encoder: keras.Model, decoder: keras.Model, *, beta: float = 1.0,
                 reconstruction: Literal["bernoulli", "gaussian"] = "bernoulli",
                 sigma: float = 1.0, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.encoder, self.decoder = encoder, decoder
        self.sampling = Sampling(seed=seed)
        self.beta, self.reconstruction, self.sigma = float(beta), reconstruction, float(sigma)
        self.reconstruction_tracker = keras.metrics.Mean(name="reconstruction_loss")
        self.kl_tracker = keras.metrics.Mean(name="kl_loss")
        # Encoder and decoder are built networks and the sampling layer has no weights, so the
        # model is complete now (BackupAndRestore can restore it before the first batch).
        self.built = encoder.built and decoder.built

    def call(self, x, training=False):
        z_mean, z_log_var = self.encoder(x, training=training)
        z = self.sampling(z_mean, z_log_var)
        return {"reconstruction": self.decoder(z, training=training),
                "z_mean": z_mean, "z_log_var": z_log_var}

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        rec = reconstruction_nll(x, y_pred["reconstruction"], self.reconstruction, self.sigma)
        kl = kl_divergence(y_pred["z_mean"], y_pred["z_log_var"])
        self.reconstruction_tracker.update_state(rec)
        self.kl_tracker.update_state(kl)
        return ops.mean(rec + self.beta * kl)

    @property
    def metrics(self):
        return [*super().metrics, self.reconstruction_tracker, self.kl_tracker]
