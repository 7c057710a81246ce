"""Vector quantisation: the VQ-VAE and the VQ-GAN (chapter 10, advanced GANs).

A VQ-VAE (van den Oord et al., 2017) encodes an image into a grid of vectors and replaces each by
the nearest of ``K`` learned code vectors, so an image becomes a small grid of integers that a
prior (a PixelCNN of chapter 5, a GPT of chapter 9) can model. The pieces:

- :class:`VectorQuantizer`: the codebook, nearest-code selection, the straight-through estimator
  (:func:`straight_through`), and dead-code restarts (:meth:`VectorQuantizer.restart_dead_codes`,
  driven by :class:`DeadCodeRestart`);
- :func:`vq_losses`: the codebook and commitment losses; :func:`perplexity`: how many codes are
  in use, effectively;
- :class:`VQVAE`: encoder, quantiser, decoder, trained with ``fit()`` on any backend;
- :class:`VQGAN` (Esser et al., 2021): the same autoencoder trained against a patch
  discriminator (:func:`build_patch_discriminator`) with an adversarial term, on the
  two-optimizer base of chapter 4's GANs (:class:`gdlbook.training.StatefulStepModel`).

Everything is written with ``keras.ops``; the tests run it on TensorFlow, PyTorch and JAX.
"""

from __future__ import annotations

from typing import Callable

import keras
import numpy as np
from keras import layers, ops

from gdlbook import sampling
from gdlbook.gradients import value_and_grad
from gdlbook.training import StatefulStepModel
from gdlbook.upsampling import Conv2DTranspose

# --------------------------------------------------------------------------- quantisation


def straight_through(z, z_q):
    """``z + stop_gradient(z_q − z)``: the value of ``z_q``, the gradient of ``z``.

    Quantisation has no useful gradient (``argmin`` is piecewise constant). The straight-through
    estimator copies the decoder's gradient at ``z_q`` to the encoder's output ``z`` unchanged.
    """
    z, z_q = ops.convert_to_tensor(z), ops.convert_to_tensor(z_q)
    return z + ops.stop_gradient(z_q - z)


def vq_losses(z, z_q):
    """The two quantisation losses of the VQ-VAE, as means over every element.

    ``codebook = mean ‖sg(z) − z_q‖²`` moves the chosen codes towards the encoder outputs (only
    the codebook gets its gradient); ``commitment = mean ‖z − sg(z_q)‖²`` keeps the encoder
    outputs near their codes (only the encoder gets its gradient). The VQ-VAE's loss is
    ``reconstruction + codebook + β · commitment`` with β = 0.25 in the paper.
    """
    z, z_q = ops.convert_to_tensor(z), ops.convert_to_tensor(z_q)
    codebook = ops.mean(ops.square(ops.stop_gradient(z) - z_q))
    commitment = ops.mean(ops.square(z - ops.stop_gradient(z_q)))
    return codebook, commitment


def perplexity(codes, num_codes: int) -> float:
    """``exp(H)`` of the histogram of ``codes`` (integers in ``[0, num_codes)``), in NumPy.

    It is the number of codes in use, effectively: ``m`` codes used equally often give ``m``,
    a single code gives 1, and the whole codebook used uniformly gives ``num_codes``.
    """
    codes = np.asarray(codes).ravel()
    if codes.size == 0:
        raise ValueError("no codes given")
    if codes.min() < 0 or codes.max() >= num_codes:
        raise ValueError(f"codes must lie in [0, {num_codes}); got {codes.min()}..{codes.max()}")
    p = np.bincount(codes, minlength=num_codes) / codes.size
    p = p[p > 0]
    return float(np.exp(-(p * np.log(p)).sum()))


def batch_perplexity(codes, num_codes: int):
    """:func:`perplexity` with ``keras.ops``, for logging inside a training step."""
    onehot = ops.one_hot(ops.reshape(ops.cast(codes, "int32"), (-1,)), num_codes)
    p = ops.mean(onehot, axis=0)
    return ops.exp(-ops.sum(p * ops.log(p + 1e-10)))


@keras.saving.register_keras_serializable(package="gdlbook")
class VectorQuantizer(layers.Layer):
    """A codebook of ``num_codes`` vectors of length ``code_dim`` and nearest-code quantisation.

    ``call(z)`` takes encoder outputs ``(..., code_dim)`` and returns a dict:

    - ``"codes"``: the index of the nearest code of every vector, ``(...)``, int32;
    - ``"codebook_vectors"``: those codes ``e_k`` (differentiable with respect to the codebook,
      for the codebook loss);
    - ``"quantized"``: the same values with the straight-through gradient to ``z``
      (:func:`straight_through`), for the decoder.

    The codebook starts uniform in ``±init_scale``. Codes that no encoder output picks get no
    gradient and stay dead; :meth:`restart_dead_codes` moves them onto encoder outputs.
    """

    def __init__(self, num_codes: int, code_dim: int, init_scale: float | None = None,
                 **kwargs):
        super().__init__(**kwargs)
        if num_codes < 1 or code_dim < 1:
            raise ValueError(f"need num_codes, code_dim >= 1; got {num_codes}, {code_dim}")
        self.num_codes, self.code_dim = num_codes, code_dim
        self.init_scale = init_scale if init_scale is not None else 1.0 / num_codes
        self.codebook = self.add_weight(
            shape=(num_codes, code_dim), name="codebook",
            initializer=keras.initializers.RandomUniform(-self.init_scale, self.init_scale))

    def distances(self, z):
        """Squared distances from each vector of ``z`` ``(N, code_dim)`` to every code: ``(N, K)``."""
        e = ops.convert_to_tensor(self.codebook)
        return (ops.sum(ops.square(z), axis=-1, keepdims=True)
                - 2.0 * ops.matmul(z, ops.transpose(e))
                + ops.sum(ops.square(e), axis=-1)[None, :])

    def nearest(self, z):
        """The index of the nearest code for every vector of ``z`` ``(..., code_dim)``."""
        flat = ops.reshape(z, (-1, self.code_dim))
        codes = ops.argmin(self.distances(flat), axis=-1)
        return ops.reshape(ops.cast(codes, "int32"), ops.shape(z)[:-1])

    def lookup(self, codes):
        """The code vectors of integer ``codes`` ``(...)``: ``(..., code_dim)``.

        A product with one-hot rows, not a gather: its gradient with respect to the codebook is
        a dense tensor on every backend. On TensorFlow a gather's gradient is an
        ``IndexedSlices`` with one row per use of a code, and Keras's Adam then updates a code
        chosen ``n`` times by about ``√n`` learning rates per step instead of one (each
        duplicate row enters the second moment separately), so the codebook would learn faster
        on TensorFlow than on PyTorch or JAX.
        """
        onehot = ops.one_hot(ops.cast(codes, "int32"), self.num_codes, dtype=self.codebook.dtype)
        return ops.matmul(onehot, self.codebook)

    def call(self, z):
        codes = self.nearest(z)
        z_q = self.lookup(codes)
        return {"codes": codes, "codebook_vectors": z_q, "quantized": straight_through(z, z_q)}

    def restart_dead_codes(self, z, min_count: int = 1, seed: int = 0) -> int:
        """Move every code chosen fewer than ``min_count`` times by the vectors ``z`` onto one of them.

        ``z`` is a sample of encoder outputs ``(..., code_dim)`` (NumPy or tensor). A dead code is
        replaced by a randomly chosen vector of ``z``, where encoder outputs actually lie, so it
        gets picked (and trained) again. Runs eagerly, outside a training step (between epochs:
        :class:`DeadCodeRestart`). Returns the number of codes restarted.
        """
        z = np.asarray(ops.convert_to_numpy(z), dtype="float32").reshape(-1, self.code_dim)
        codes = ops.convert_to_numpy(self.nearest(ops.convert_to_tensor(z)))
        counts = np.bincount(codes.ravel(), minlength=self.num_codes)
        dead = np.flatnonzero(counts < min_count)
        if len(dead):
            rng = np.random.default_rng(seed)
            book = np.array(ops.convert_to_numpy(self.codebook))
            book[dead] = z[rng.choice(len(z), len(dead), replace=len(dead) > len(z))]
            self.codebook.assign(book)
        return int(len(dead))

    def get_config(self):
        return {**super().get_config(), "num_codes": self.num_codes, "code_dim": self.code_dim,
                "init_scale": self.init_scale}


class DeadCodeRestart(keras.callbacks.Callback):
    """At the end of every ``every``-th epoch, restart the codes that the encoder outputs of
    ``images`` do not use (:meth:`VectorQuantizer.restart_dead_codes`). ``restarted`` lists how
    many codes were restarted each time. The model must have ``encoder`` and ``quantizer``
    attributes (:class:`VQVAE`, :class:`VQGAN`)."""

    def __init__(self, images: np.ndarray, every: int = 1, min_count: int = 1,
                 batch_size: int = 256):
        super().__init__()
        self.images, self.every, self.min_count = images, every, min_count
        self.batch_size = batch_size
        self.initial = 0
        self.restarted: list[int] = []

    def _restart(self, seed: int) -> int:
        model = getattr(self.model, "autoencoder", self.model)
        z = model.encoder.predict(self.images, batch_size=self.batch_size, verbose=0)
        return model.quantizer.restart_dead_codes(z, self.min_count, seed=seed)

    def on_train_begin(self, logs=None):
        # the codebook starts near zero, where few encoder outputs lie: most codes start dead
        self.initial = self._restart(seed=10_000)

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every:
            return
        self.restarted.append(self._restart(seed=epoch))


# --------------------------------------------------------------------------- networks


def _res_block(x, filters: int, name: str):
    y = layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"{name}_conv0")(
        layers.ReLU()(x))
    y = layers.Conv2D(filters, 1, name=f"{name}_conv1")(y)
    return layers.Add(name=name)([x, y])


def build_vq_encoder(image_size: int = 32, channels: int = 3, code_dim: int = 16,
                     width: int = 64, downsamples: int = 2, res_blocks: int = 2,
                     name: str = "vq_encoder") -> keras.Model:
    """Image ``(S, S, C)`` → encoder outputs ``(S/2^d, S/2^d, code_dim)``, as in the VQ-VAE paper.

    ``downsamples`` strided 4×4 convolutions (ReLU), a 3×3 convolution, ``res_blocks`` residual
    blocks (ReLU, 3×3, 1×1) and a 1×1 convolution to ``code_dim`` channels.
    """
    image = keras.Input((image_size, image_size, channels), name="image")
    x = image
    for i in range(downsamples):
        x = layers.Conv2D(width, 4, strides=2, padding="same", activation="relu",
                          name=f"down{i}")(x)
    x = layers.Conv2D(width, 3, padding="same", name="conv")(x)
    for i in range(res_blocks):
        x = _res_block(x, width, f"res{i}")
    z = layers.Conv2D(code_dim, 1, name="to_code")(layers.ReLU()(x))
    return keras.Model(image, z, name=name)


def build_vq_decoder(grid_size: int = 8, channels: int = 3, code_dim: int = 16, width: int = 64,
                     upsamples: int = 2, res_blocks: int = 2,
                     name: str = "vq_decoder") -> keras.Model:
    """Quantised grid ``(g, g, code_dim)`` → image ``(g·2^u, g·2^u, channels)`` in [-1, 1].

    The mirror of :func:`build_vq_encoder`: a 3×3 convolution, residual blocks, ``upsamples``
    transposed 4×4 convolutions (stride 2), ``tanh`` at the end.
    """
    z = keras.Input((grid_size, grid_size, code_dim), name="quantized")
    x = layers.Conv2D(width, 3, padding="same", name="conv")(z)
    for i in range(res_blocks):
        x = _res_block(x, width, f"res{i}")
    x = layers.ReLU()(x)
    for i in range(upsamples - 1):
        x = Conv2DTranspose(width, 4, strides=2, padding="same", activation="relu",
                            name=f"up{i}")(x)
    image = Conv2DTranspose(channels, 4, strides=2, padding="same", activation="tanh",
                            name=f"up{upsamples - 1}")(x)
    return keras.Model(z, image, name=name)


def build_patch_discriminator(image_size: int = 32, channels: int = 3, width: int = 64,
                              downsamples: int = 2, name: str = "patch_discriminator"
                              ) -> keras.Model:
    """A PatchGAN discriminator: image → a grid of logits, one per overlapping patch.

    ``downsamples`` strided 4×4 convolutions (leaky ReLU 0.2, widths doubling from ``width``), a
    3×3 convolution and a 3×3 convolution to one channel. Each logit judges whether its patch
    (its receptive field) looks real, which is what the VQ-GAN's discriminator asks about
    local texture; the global structure is left to the reconstruction loss.
    """
    image = keras.Input((image_size, image_size, channels), name="image")
    x = image
    for i in range(downsamples):
        x = layers.Conv2D(width * 2 ** i, 4, strides=2, padding="same", name=f"down{i}")(x)
        x = layers.LeakyReLU(0.2)(x)
    x = layers.LeakyReLU(0.2)(layers.Conv2D(width * 2 ** downsamples, 3, padding="same",
                                            name="conv")(x))
    logits = layers.Conv2D(1, 3, padding="same", name="logits")(x)
    return keras.Model(image, logits, name=name)


# --------------------------------------------------------------------------- models


class VQVAE(keras.Model):
    """Encoder, :class:`VectorQuantizer`, decoder: ``fit(images)`` on images in [-1, 1].

    The loss per batch is ``reconstruction + codebook + beta · commitment`` (:func:`vq_losses`),
    the reconstruction being the mean squared error per pixel. ``call(x)`` returns a dict with
    the ``reconstruction``, the encoder outputs ``z``, the ``codebook_vectors`` and the
    ``codes``. Logs ``reconstruction_loss``, ``codebook_loss``, ``commitment_loss`` and the
    codebook ``perplexity`` of each batch (averaged over the epoch).
    """

    def __init__(self, encoder: keras.Model, decoder: keras.Model,
                 quantizer: VectorQuantizer, beta: float = 0.25, **kwargs):
        super().__init__(**kwargs)
        self.encoder, self.decoder, self.quantizer = encoder, decoder, quantizer
        self.beta = float(beta)
        self.num_codes = quantizer.num_codes
        self.trackers = {k: keras.metrics.Mean(name=k) for k in
                         ("reconstruction_loss", "codebook_loss", "commitment_loss",
                          "perplexity")}
        self.built = encoder.built and decoder.built

    def call(self, x, training=False):
        z = self.encoder(x, training=training)
        q = self.quantizer(z)
        return {"reconstruction": self.decoder(q["quantized"], training=training), "z": z,
                "codebook_vectors": q["codebook_vectors"], "codes": q["codes"]}

    def losses_of(self, x, out) -> dict:
        """The loss terms of a batch ``x`` and the model's output ``out`` on it."""
        x = ops.convert_to_tensor(x)
        rec = ops.mean(ops.square(x - out["reconstruction"]))
        codebook, commitment = vq_losses(out["z"], out["codebook_vectors"])
        return {"reconstruction_loss": rec, "codebook_loss": codebook,
                "commitment_loss": commitment,
                "perplexity": batch_perplexity(out["codes"], self.num_codes),
                "loss": rec + codebook + self.beta * commitment}

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        terms = self.losses_of(x, y_pred)
        for name, tracker in self.trackers.items():
            tracker.update_state(terms[name])
        return terms["loss"]

    @property
    def metrics(self):
        return [*super().metrics, *self.trackers.values()]

    def encode(self, x):
        """Integer codes ``(B, g, g)`` of images ``x``."""
        return self.quantizer.nearest(self.encoder(x, training=False))

    def decode(self, codes):
        """Images from integer codes ``(B, g, g)``."""
        return self.decoder(self.quantizer.lookup(codes), training=False)

    def reconstruct(self, x, batch_size: int = 256) -> np.ndarray:
        """Reconstructions of ``x`` (NumPy), ``batch_size`` at a time."""
        out = [ops.convert_to_numpy(self.decode(self.encode(x[i:i + batch_size])))
               for i in range(0, len(x), batch_size)]
        return np.concatenate(out)


class VQGAN(StatefulStepModel):
    """A :class:`VQVAE` trained against a patch discriminator (Esser et al., 2021).

    Each step: the autoencoder takes one step on its VQ-VAE loss (plus
    ``perceptual_weight · perceptual(x, x̂)`` when a perceptual loss is given) plus
    ``adversarial_weight · λ · mean softplus(−D(x̂))``, the non-saturating generator loss on the
    reconstructions x̂, switched on after ``adversarial_start`` steps so that the discriminator
    first meets reconstructions worth judging. λ is the paper's adaptive weight (its Eq. 7): the
    norm of the reconstruction loss's gradient at the decoder's last kernel over that of the
    adversarial loss (plus 1e-6), clipped to [0, 10⁴] as in the authors' code, and not
    differentiated. Then the discriminator takes one step on the hinge loss
    ``mean relu(1 − D(x)) + mean relu(1 + D(x̂))``, the default of the authors' code. Logs the
    weight actually applied, ``adversarial_weight · λ`` (0 before the start), as
    ``adversarial_weight``. ``compile(g_optimizer=..., d_optimizer=...)``.
    """

    def __init__(self, autoencoder: VQVAE, discriminator: keras.Model,
                 adversarial_weight: float = 0.1, adversarial_start: int = 0,
                 perceptual: Callable | None = None, perceptual_weight: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.autoencoder, self.discriminator = autoencoder, discriminator
        self.adversarial_weight, self.adversarial_start = adversarial_weight, adversarial_start
        self.perceptual, self.perceptual_weight = perceptual, perceptual_weight
        names = ("reconstruction_loss", "codebook_loss", "commitment_loss", "perplexity",
                 "g_adversarial", "adversarial_weight", "d_loss")
        self.trackers = {k: keras.metrics.Mean(name=k) for k in names}
        self._last_index = self._last_decoder_kernel()
        self.built = True

    @property
    def encoder(self):
        return self.autoencoder.encoder

    @property
    def quantizer(self):
        return self.autoencoder.quantizer

    def compile(self, g_optimizer: keras.optimizers.Optimizer,
                d_optimizer: keras.optimizers.Optimizer, **kwargs) -> None:
        super().compile(**kwargs)
        self.g_optimizer, self.d_optimizer = g_optimizer, d_optimizer
        g_optimizer.build(self.autoencoder.trainable_variables)
        d_optimizer.build(self.discriminator.trainable_variables)

    @property
    def metrics(self):
        return list(self.trackers.values())

    def call(self, x, training=False):
        return self.autoencoder(x, training=training)

    def _last_decoder_kernel(self) -> int:
        """The index in the autoencoder's trainable variables of the decoder's last kernel."""
        last = [v for v in self.autoencoder.decoder.trainable_variables
                if v.path.endswith("kernel")][-1]
        return next(i for i, v in enumerate(self.autoencoder.trainable_variables) if v is last)

    def train_step(self, data):
        real, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        A, D = self.autoencoder, self.discriminator
        Av, Dv = A.trainable_variables, D.trainable_variables
        on = ops.cast(self.g_optimizer.iterations >= self.adversarial_start, "float32")

        def rec_loss_fn():
            out = A(real, training=True)
            terms = A.losses_of(real, out)
            loss = terms["loss"]
            if self.perceptual is not None:
                loss = loss + self.perceptual_weight * self.perceptual(real,
                                                                       out["reconstruction"])
            return loss, (terms, out["reconstruction"])

        def adv_loss_fn():
            fake = A(real, training=True)["reconstruction"]
            return ops.mean(ops.softplus(-D(fake, training=True)))

        (_, (terms, fake)), rec_grads = value_and_grad(rec_loss_fn, Av, has_aux=True)
        adv, adv_grads = value_and_grad(adv_loss_fn, Av)
        # Esser et al.'s adaptive weight: the ratio of the two gradients' norms at the decoder's
        # last layer, so that the adversarial term never drowns the reconstruction
        last = self._last_index
        lam = ops.clip(ops.sqrt(ops.sum(ops.square(rec_grads[last])))
                       / (ops.sqrt(ops.sum(ops.square(adv_grads[last]))) + 1e-6), 0.0, 1e4)
        weight = on * self.adversarial_weight * ops.stop_gradient(lam)
        self.g_optimizer.apply([r + weight * a for r, a in zip(rec_grads, adv_grads)], Av)
        fake = ops.stop_gradient(fake)

        def d_loss_fn():
            return (ops.mean(ops.relu(1.0 - D(real, training=True)))
                    + ops.mean(ops.relu(1.0 + D(fake, training=True))))

        d_loss, d_grads = value_and_grad(d_loss_fn, Dv)
        self.d_optimizer.apply(d_grads, Dv)
        for name in ("reconstruction_loss", "codebook_loss", "commitment_loss", "perplexity"):
            self.trackers[name].update_state(terms[name])
        self.trackers["g_adversarial"].update_state(adv)
        self.trackers["adversarial_weight"].update_state(weight)
        self.trackers["d_loss"].update_state(d_loss)
        return {m.name: m.result() for m in self.metrics}


def vgg_perceptual_loss(image_size: int = 32) -> Callable | None:
    """A perceptual loss from ImageNet VGG16 features, or None when the weights cannot be had.

    The distance is the mean squared difference of the ``block3_conv3`` features of the two
    images (in [-1, 1]). LPIPS, the loss of the VQ-GAN paper, adds learned per-channel weights
    to such features; neither its weights nor VGG's can be downloaded offline, so the chapter
    says which loss each run used.
    """
    try:
        vgg = keras.applications.VGG16(include_top=False, weights="imagenet",
                                       input_shape=(image_size, image_size, 3))
    except Exception as err:  # noqa: BLE001 - offline, or no file: say so and go on without
        print(f"No perceptual loss: the ImageNet VGG16 weights could not be loaded ({err}).")
        return None
    features = keras.Model(vgg.input, vgg.get_layer("block3_conv3").output)
    features.trainable = False
    mean = np.array([103.939, 116.779, 123.68], dtype="float32")

    def to_vgg(x):   # [-1, 1] RGB → caffe-style BGR minus the ImageNet mean
        return (x[..., ::-1] + 1.0) * 127.5 - mean

    def loss(x, x_hat):
        return ops.mean(ops.square(features(to_vgg(x)) - features(to_vgg(x_hat))))

    return loss


def sample_codes(prior: keras.Model, n: int, grid_size: int, num_codes: int,
                 temperature: float = 1.0, seed: int = 0) -> np.ndarray:
    """Draw ``n`` code grids ``(n, g, g)`` from a PixelCNN ``prior``, one position at a time.

    ``prior`` is :func:`gdlbook.autoregressive.build_pixelcnn` with ``outputs=num_codes`` and
    ``channels=1``, trained on code grids scaled to ``codes / (num_codes − 1)``; it returns
    logits ``(n, g, g, num_codes)``. Positions are filled in raster order, each drawn from the
    softmax of its logits divided by ``temperature`` (:func:`gdlbook.sampling.sample`).
    """
    rng = np.random.default_rng(seed)
    grid = np.zeros((n, grid_size, grid_size), dtype="int32")
    scale = max(num_codes - 1, 1)
    for i in range(grid_size):
        for j in range(grid_size):
            x = (grid[..., None] / scale).astype("float32")
            logits = ops.convert_to_numpy(prior(x, training=False))[:, i, j]
            grid[:, i, j] = sampling.sample(logits, temperature, rng=rng)
    return grid
