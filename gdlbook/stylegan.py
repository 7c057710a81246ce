"""Advanced GANs: ProGAN's tricks, a small StyleGAN2 and SAGAN's self-attention (chapter 10).

Chapter 10 teaches these pieces and trains a small StyleGAN on 32×32 (or 64×64) faces:

- **ProGAN** (Karras et al., 2018): :func:`fade_in`, the blend that brings in a new resolution
  block; :class:`MinibatchStdDev`, the discriminator's view of the batch's variety; and the
  *equalised learning rate*, weights drawn from N(0, 1) and scaled by He's constant at run time
  (:class:`EqualizedDense`, :class:`EqualizedConv2D`).
- **StyleGAN** (Karras et al., 2019) and **StyleGAN2** (Karras et al., 2020): a mapping network
  z → w (:func:`build_mapping_network`), a learned constant input (:class:`ConstantInput`),
  per-layer noise (:class:`NoiseInjection`), and styles injected by weight modulation and
  demodulation (:class:`ModulatedConv2D`), in a synthesis network that takes one w per layer
  (:class:`SynthesisNetwork`), so that styles can be mixed and truncated
  (:class:`StyleGenerator`, :func:`truncate`).
- **SAGAN** (Zhang et al., 2019): :class:`SelfAttention2D`, whose attention map can be returned.

:class:`StyleGAN` trains the generator against :func:`build_style_discriminator` with the
non-saturating logistic loss, the R1 penalty and style-mixing regularisation, on the same
two-optimizer base as chapter 4's GANs (:class:`gdlbook.gans.GAN`), so ``fit()``, callbacks and
:func:`gdlbook.training.resumable` work on TensorFlow, PyTorch and JAX.

Everything is written with ``keras.ops``. The modulated convolution uses the form that scales
the input channels by the style and the output channels by the demodulation factor around one
ordinary convolution shared by the batch; it equals a convolution with a per-example modulated
kernel (:meth:`ModulatedConv2D.modulated_kernel`, checked in the tests), without grouped
convolutions, which ``keras.ops`` lacks.
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import layers, ops

from gdlbook.gans import GAN
from gdlbook.gradients import value_and_grad

# --------------------------------------------------------------------------- ProGAN's tricks


def fade_in(alpha, old, new):
    """ProGAN's fade-in: ``(1 - alpha) · old + alpha · new``.

    When a block for a higher resolution is added, ``old`` is the previous output upsampled to
    the new size and ``new`` the output of the new block; ``alpha`` grows from 0 to 1 during the
    transition, so the new block takes over smoothly instead of shocking a trained network.
    """
    return (1.0 - alpha) * old + alpha * new


@keras.saving.register_keras_serializable(package="gdlbook")
class MinibatchStdDev(layers.Layer):
    """ProGAN's minibatch standard deviation: one extra channel that shows the batch's variety.

    For images ``(B, H, W, C)`` it computes the standard deviation of every feature over groups
    of ``group_size`` images, averages it over features and positions to one number per group,
    and appends that number as a constant channel to each image of the group: ``(B, H, W, C+1)``.
    A generator that collapses to a few images gives small values, which the discriminator can
    see. ``group_size=None`` uses the whole batch as one group (ProGAN's formulation); otherwise
    groups have ``min(group_size, batch size)`` images, and the batch size must be a multiple of
    that (StyleGAN uses 4).
    """

    def __init__(self, group_size: int | None = None, epsilon: float = 1e-8, **kwargs):
        super().__init__(**kwargs)
        self.group_size, self.epsilon = group_size, epsilon

    def call(self, x):
        b, h, w, c = ops.shape(x)
        if not self.group_size:
            g = b
        elif isinstance(b, int):
            g = min(self.group_size, b)
        else:                                                # a symbolic batch size
            g = ops.minimum(self.group_size, b)
        y = ops.reshape(x, (g, -1, h, w, c))                 # image i of group j is y[i, j]
        y = ops.sqrt(ops.var(y, axis=0) + self.epsilon)      # (B/g, H, W, C)
        y = ops.mean(y, axis=(1, 2, 3))                      # one number per group
        y = ops.tile(y, (g,))                                # back to image order: i*B/g + j
        y = ops.broadcast_to(ops.reshape(y, (-1, 1, 1, 1)), (b, h, w, 1))
        return ops.concatenate([x, ops.cast(y, x.dtype)], axis=-1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], input_shape[-1] + 1)

    def get_config(self):
        return {**super().get_config(), "group_size": self.group_size, "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package="gdlbook")
class EqualizedDense(layers.Layer):
    """A dense layer with ProGAN's equalised learning rate.

    The weights are stored as draws from N(0, 1/``lr_multiplier``²) and multiplied at run time by
    ``lr_multiplier / sqrt(fan_in)`` (He's constant), so every weight receives updates of the same
    relative size from Adam whatever its layer's fan-in. ``lr_multiplier < 1`` slows a layer down
    (StyleGAN's mapping network uses 0.01). ``bias_init`` is the bias's initial value.
    """

    def __init__(self, units: int, lr_multiplier: float = 1.0, bias_init: float = 0.0,
                 use_bias: bool = True, activation: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.units, self.lr_multiplier, self.bias_init = units, lr_multiplier, bias_init
        self.use_bias, self.activation = use_bias, keras.activations.get(activation)
        self._activation_name = activation

    def build(self, input_shape):
        fan_in = int(input_shape[-1])
        self.scale = self.lr_multiplier / math.sqrt(fan_in)
        self.kernel = self.add_weight(
            shape=(fan_in, self.units), name="kernel",
            initializer=keras.initializers.RandomNormal(0.0, 1.0 / self.lr_multiplier))
        self.bias = self.add_weight(
            shape=(self.units,), name="bias",
            initializer=keras.initializers.Constant(self.bias_init / self.lr_multiplier)
        ) if self.use_bias else None

    def call(self, x):
        y = ops.matmul(x, self.kernel * self.scale)
        if self.bias is not None:
            y = y + self.bias * self.lr_multiplier
        return self.activation(y)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "lr_multiplier": self.lr_multiplier,
                "bias_init": self.bias_init, "use_bias": self.use_bias,
                "activation": self._activation_name}


@keras.saving.register_keras_serializable(package="gdlbook")
class EqualizedConv2D(layers.Layer):
    """A 'same'-padded, stride-1 convolution with the equalised learning rate (see
    :class:`EqualizedDense`): kernel ~ N(0, 1), scaled by ``1 / sqrt(k·k·C_in)`` at run time."""

    def __init__(self, filters: int, kernel_size: int = 3, use_bias: bool = True,
                 activation: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.kernel_size, self.use_bias = filters, kernel_size, use_bias
        self.activation, self._activation_name = keras.activations.get(activation), activation

    def build(self, input_shape):
        c_in = int(input_shape[-1])
        self.scale = 1.0 / math.sqrt(self.kernel_size ** 2 * c_in)
        self.kernel = self.add_weight(
            shape=(self.kernel_size, self.kernel_size, c_in, self.filters), name="kernel",
            initializer=keras.initializers.RandomNormal(0.0, 1.0))
        self.bias = self.add_weight(shape=(self.filters,), name="bias",
                                    initializer="zeros") if self.use_bias else None

    def call(self, x):
        y = ops.conv(x, self.kernel * self.scale, strides=1, padding="same")
        if self.bias is not None:
            y = y + self.bias
        return self.activation(y)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.filters)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters,
                "kernel_size": self.kernel_size, "use_bias": self.use_bias,
                "activation": self._activation_name}


@keras.saving.register_keras_serializable(package="gdlbook")
class ScaledLeakyReLU(layers.Layer):
    """Leaky ReLU (slope ``negative_slope``) times ``gain`` (√2 by default), the activation of
    every StyleGAN layer. Without the gain each layer of weights drawn with He's constant would
    shrink the variance of its input to about half, (1 + 0.2²)/2: eight of them in the mapping
    network make w nearly the same for every z, so the styles hardly depend on it."""

    def __init__(self, negative_slope: float = 0.2, gain: float = math.sqrt(2.0), **kwargs):
        super().__init__(**kwargs)
        self.negative_slope, self.gain = negative_slope, gain

    def call(self, x):
        return ops.leaky_relu(x, self.negative_slope) * self.gain

    def get_config(self):
        return {**super().get_config(), "negative_slope": self.negative_slope,
                "gain": self.gain}


# --------------------------------------------------------------------------- StyleGAN's layers


@keras.saving.register_keras_serializable(package="gdlbook")
class PixelNorm(layers.Layer):
    """Scale each vector to unit root-mean-square over its last axis (ProGAN, StyleGAN's z)."""

    def __init__(self, epsilon: float = 1e-8, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = epsilon

    def call(self, x):
        return x * ops.rsqrt(ops.mean(ops.square(x), axis=-1, keepdims=True) + self.epsilon)

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


def build_mapping_network(latent_dim: int, w_dim: int | None = None, depth: int = 8,
                          lr_multiplier: float = 0.01, name: str = "mapping") -> keras.Model:
    """StyleGAN's mapping network f: z ``(latent_dim,)`` → w ``(w_dim,)``.

    z is normalised to unit root-mean-square (:class:`PixelNorm`), then ``depth`` fully connected
    layers with leaky ReLU (0.2, times the gain √2 of :class:`ScaledLeakyReLU`) and the
    equalised learning rate, slowed by ``lr_multiplier``
    (StyleGAN: 8 layers of 512, multiplier 0.01). The intermediate space W need not follow the
    fixed Gaussian of z, which lets the network "unwarp" the factors of variation of the data.
    """
    w_dim = w_dim or latent_dim
    z = keras.Input((latent_dim,), name="z")
    x = PixelNorm(name="normalize_z")(z)
    for i in range(depth):
        x = EqualizedDense(w_dim, lr_multiplier=lr_multiplier, name=f"fc{i}")(x)
        x = ScaledLeakyReLU()(x) if i < depth - 1 else x
    # StyleGAN applies the activation after every layer, the last one too; we leave the last
    # layer linear, so that w is not skewed towards positive values (a small departure).
    return keras.Model(z, x, name=name)


@keras.saving.register_keras_serializable(package="gdlbook")
class ConstantInput(layers.Layer):
    """StyleGAN's learned constant: a ``(size, size, channels)`` tensor, the same for every
    image, where a classic generator would start from the latent vector. ``call(ws)`` returns
    it tiled to the batch size of ``ws``."""

    def __init__(self, channels: int, size: int = 4, **kwargs):
        super().__init__(**kwargs)
        self.channels, self.size = channels, size
        self.const = self.add_weight(shape=(1, size, size, channels), name="const",
                                     initializer=keras.initializers.RandomNormal(0.0, 1.0))

    def call(self, ws):
        b = ops.shape(ws)[0]
        return ops.broadcast_to(self.const, (b, self.size, self.size, self.channels))

    def get_config(self):
        return {**super().get_config(), "channels": self.channels, "size": self.size}


@keras.saving.register_keras_serializable(package="gdlbook")
class NoiseInjection(layers.Layer):
    """Per-pixel noise, one map ``(B, H, W, 1)`` per layer, added to every channel with a learned
    per-channel strength (zero at the start, so the noise comes in only as training finds it
    useful). ``call(x, noise)`` uses the given noise map; ``noise=None`` draws a fresh one."""

    def __init__(self, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def build(self, input_shape):
        self.strength = self.add_weight(shape=(int(input_shape[-1]),), name="strength",
                                        initializer="zeros")

    def call(self, x, noise=None):
        if noise is None:
            b, h, w = ops.shape(x)[0], ops.shape(x)[1], ops.shape(x)[2]
            noise = keras.random.normal((b, h, w, 1), seed=self.seed_generator, dtype=x.dtype)
        return x + ops.cast(noise, x.dtype) * self.strength

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}


@keras.saving.register_keras_serializable(package="gdlbook")
class ModulatedConv2D(layers.Layer):
    """StyleGAN2's modulated convolution: ``call([x, w])``, x ``(B, H, W, C_in)``, w ``(B, w_dim)``.

    A learned affine map A turns w into one scale per input channel, ``s = A(w)`` (bias 1, so
    styles start as the identity). The kernel of example b is modulated and, with
    ``demodulate``, demodulated:

        w'_{ijk} = s_i · w_{ijk},     w''_{ijk} = w'_{ijk} / sqrt(Σ_{i,k} w'_{ijk}² + ε)

    (i input channel, j output channel, k kernel position), so that every output channel has
    unit expected variance for unit-variance inputs: the "instance normalisation" of StyleGAN's
    AdaIN, moved from the activations into the weights, which removes the droplet artefacts of
    the first StyleGAN. ``upsample`` doubles the resolution first (bilinear). The layer computes
    ``conv(x · s, w) · d`` with ``d`` the demodulation factors, which equals a per-example
    convolution with ``w''`` (:meth:`modulated_kernel`). The toRGB layers use ``kernel_size=1``
    and ``demodulate=False``.
    """

    def __init__(self, filters: int, kernel_size: int = 3, demodulate: bool = True,
                 upsample: bool = False, epsilon: float = 1e-8, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.kernel_size = filters, kernel_size
        self.demodulate, self.upsample, self.epsilon = demodulate, upsample, epsilon
        self.up = layers.UpSampling2D(2, interpolation="bilinear") if upsample else None

    def build(self, input_shape):
        x_shape, w_shape = input_shape
        c_in = int(x_shape[-1])
        self.affine = EqualizedDense(c_in, bias_init=1.0, name="affine")
        self.affine.build(w_shape)
        self.scale = 1.0 / math.sqrt(self.kernel_size ** 2 * c_in)   # equalised learning rate
        self.kernel = self.add_weight(
            shape=(self.kernel_size, self.kernel_size, c_in, self.filters), name="kernel",
            initializer=keras.initializers.RandomNormal(0.0, 1.0))

    def styles(self, w):
        """The per-input-channel scales ``s = A(w)``, ``(B, C_in)``."""
        return self.affine(w)

    def modulated_kernel(self, w):
        """The kernel of every example, ``(B, k, k, C_in, C_out)``, modulated (and demodulated)."""
        s = self.styles(w)
        kernel = self.kernel[None] * self.scale * s[:, None, None, :, None]
        if self.demodulate:
            norm = ops.sum(ops.square(kernel), axis=(1, 2, 3), keepdims=True)
            kernel = kernel * ops.rsqrt(norm + self.epsilon)
        return kernel

    def call(self, inputs):
        x, w = inputs
        if self.up is not None:
            x = self.up(x)
        s = self.styles(w)                                                   # (B, C_in)
        kernel = self.kernel * self.scale                                    # (k, k, C_in, C_out)
        y = ops.conv(x * s[:, None, None, :], kernel, strides=1, padding="same")
        if self.demodulate:
            # Σ_{k,i} (s_i w_{ijk})² = Σ_i s_i² Σ_k w_{ijk}²: (B, C_in) @ (C_in, C_out)
            sq = ops.matmul(ops.square(s), ops.sum(ops.square(kernel), axis=(0, 1)))
            y = y * ops.rsqrt(sq + self.epsilon)[:, None, None, :]
        return y

    def compute_output_shape(self, input_shape):
        x_shape = input_shape[0]
        f = 2 if self.upsample else 1
        h = None if x_shape[1] is None else x_shape[1] * f
        w = None if x_shape[2] is None else x_shape[2] * f
        return (x_shape[0], h, w, self.filters)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters,
                "kernel_size": self.kernel_size, "demodulate": self.demodulate,
                "upsample": self.upsample, "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package="gdlbook")
class StyleLayer(layers.Layer):
    """One layer of the synthesis network: modulated 3×3 convolution, noise, bias, leaky ReLU."""

    def __init__(self, filters: int, upsample: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.upsample = filters, upsample
        self.conv = ModulatedConv2D(filters, 3, upsample=upsample, name="conv")
        self.noise = NoiseInjection(name="noise")

    def build(self, input_shape):
        x_shape, w_shape = input_shape
        self.conv.build((x_shape, w_shape))
        out = self.conv.compute_output_shape((x_shape, w_shape))
        self.noise.build(out)
        self.bias = self.add_weight(shape=(self.filters,), name="bias", initializer="zeros")

    def call(self, inputs, noise=None):
        x, w = inputs
        x = self.noise(self.conv([x, w]), noise)
        return ops.leaky_relu(x + self.bias, 0.2) * math.sqrt(2.0)  # StyleGAN2's gain

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "upsample": self.upsample}


@keras.saving.register_keras_serializable(package="gdlbook")
class SynthesisNetwork(keras.Model):
    """StyleGAN2's synthesis network g: one w per layer ``(B, num_ws, w_dim)`` → image in [-1, 1].

    A learned 4×4 constant, then for each resolution 4, 8, …, ``image_size``: one (at 4×4) or two
    :class:`StyleLayer` s (the first of which upsamples), and a toRGB layer (a 1×1 modulated
    convolution without demodulation) whose output is added to the upsampled image of the
    resolution below (StyleGAN2's skip architecture). Styles are indexed as in StyleGAN2: the
    4×4 layer reads ``ws[:, 0]`` and its toRGB ``ws[:, 1]``; the block at resolution
    ``2**r`` reads ``ws[:, 2r-5]``, ``ws[:, 2r-4]`` and its toRGB ``ws[:, 2r-3]``. So
    ``num_ws = 2·log2(image_size) − 2`` and the low indices are the coarse styles.

    ``call(ws, noise=None, return_features=False)``: ``noise`` is a list with one map
    ``(B, H, W, 1)`` per :class:`StyleLayer` (:meth:`make_noise`), or None for fresh noise;
    ``return_features`` also returns the activations after each resolution block.
    ``channels`` gives the width at each resolution (default ``min(width_max, width·image_size/res)``).
    """

    def __init__(self, image_size: int = 32, w_dim: int = 128, channels: int = 3,
                 width: int = 32, width_max: int = 128, **kwargs):
        super().__init__(**kwargs)
        n = int(round(math.log2(image_size)))
        if 2 ** n != image_size or image_size < 8:
            raise ValueError(f"image_size must be a power of two, at least 8; got {image_size}")
        self.image_size, self.w_dim, self.channels = image_size, w_dim, channels
        self.width, self.width_max = width, width_max
        self.resolutions = [2 ** r for r in range(2, n + 1)]
        self.widths = [min(width_max, width * image_size // res) for res in self.resolutions]
        self.num_ws = 2 * n - 2
        self.const = ConstantInput(self.widths[0], 4, name="const")
        self.style_layers, self.to_rgb = [], []
        for i, (res, c) in enumerate(zip(self.resolutions, self.widths)):
            if i:
                self.style_layers.append(StyleLayer(c, upsample=True, name=f"b{res}_conv0"))
            self.style_layers.append(StyleLayer(c, name=f"b{res}_conv1"))
            self.to_rgb.append(ModulatedConv2D(channels, 1, demodulate=False,
                                               name=f"b{res}_torgb"))
        self.rgb_bias = [self.add_weight(shape=(channels,), initializer="zeros",
                                         name=f"b{res}_torgb_bias") for res in self.resolutions]
        self.upsample_rgb = layers.UpSampling2D(2, interpolation="bilinear")

    def build(self, input_shape=None):
        self.call(ops.zeros((1, self.num_ws, self.w_dim)))   # creates every sub-layer's weights
        self.built = True

    def layer_ws(self) -> list[tuple[str, int]]:
        """Which style index each layer reads, in order: ``[(layer name, index), ...]``."""
        out, k = [], 0
        for i, res in enumerate(self.resolutions):
            names = [f"b{res}_conv1"] if i == 0 else [f"b{res}_conv0", f"b{res}_conv1"]
            for name in names:
                out.append((name, k))
                k += 1
            out.append((f"b{res}_torgb", k))
        return out

    def make_noise(self, batch: int, seed: int = 0) -> list[np.ndarray]:
        """Fixed noise maps for every :class:`StyleLayer`, from a NumPy generator (for figures)."""
        rng = np.random.default_rng(seed)
        sizes = [self.resolutions[0]] + [r for r in self.resolutions[1:] for _ in range(2)]
        return [rng.normal(size=(batch, s, s, 1)).astype("float32") for s in sizes]

    def call(self, ws, noise=None, return_features: bool = False):
        noise = noise if noise is not None else [None] * len(self.style_layers)
        x = self.const(ws)
        rgb, features, layer, k = None, [], 0, 0
        for i in range(len(self.resolutions)):
            for _ in range(1 if i == 0 else 2):
                x = self.style_layers[layer]([x, ws[:, k]], noise[layer])
                layer, k = layer + 1, k + 1
            features.append(x)
            y = self.to_rgb[i]([x, ws[:, k]]) + self.rgb_bias[i]
            rgb = y if rgb is None else self.upsample_rgb(rgb) + y
        image = ops.tanh(rgb)
        return (image, features) if return_features else image

    def get_config(self):
        return {**super().get_config(), "image_size": self.image_size, "w_dim": self.w_dim,
                "channels": self.channels, "width": self.width, "width_max": self.width_max}


def truncate(w, w_avg, psi: float):
    """The truncation trick in W: ``w_avg + psi · (w − w_avg)``.

    ``psi = 1`` leaves w alone, ``psi = 0`` gives the mean w (the "average face"), values in
    between trade variety for typicality (Karras et al., 2019; Brock et al., 2019 truncate z).
    """
    w, w_avg = ops.convert_to_tensor(w), ops.convert_to_tensor(w_avg)
    return w_avg + psi * (w - w_avg)


def mix_styles(w1, w2, crossover: int, num_ws: int):
    """Per-layer styles ``(B, num_ws, w_dim)``: ``w1`` for the layers below ``crossover``, ``w2``
    from it on. With StyleGAN2's indexing (:class:`SynthesisNetwork`) small crossovers give the
    coarse styles (pose, face shape) of ``w1`` and the fine ones (colours, texture) of ``w2``."""
    if not 0 <= crossover <= num_ws:
        raise ValueError(f"crossover must be in [0, {num_ws}], got {crossover}")
    take_first = (np.arange(num_ws) < crossover)[None, :, None]
    return ops.where(take_first, ops.expand_dims(w1, 1), ops.expand_dims(w2, 1))


@keras.saving.register_keras_serializable(package="gdlbook")
class StyleGenerator(keras.Model):
    """StyleGAN's generator: the mapping network f and the synthesis network g, with the mean w.

    ``call(z)`` maps z to w, broadcasts it to every layer and synthesises the image; in training
    it also updates ``w_avg``, a running mean of w (decay ``w_avg_beta``), which
    :meth:`truncated` and the truncation trick pull towards. :meth:`mapping` and
    :meth:`synthesis` expose the two halves for style mixing and exploring W.
    """

    def __init__(self, latent_dim: int = 128, w_dim: int = 128, image_size: int = 32,
                 channels: int = 3, width: int = 32, width_max: int = 128,
                 mapping_depth: int = 8, mapping_lr_multiplier: float = 0.01,
                 w_avg_beta: float = 0.995, **kwargs):
        super().__init__(**kwargs)
        self.config = dict(latent_dim=latent_dim, w_dim=w_dim, image_size=image_size,
                           channels=channels, width=width, width_max=width_max,
                           mapping_depth=mapping_depth,
                           mapping_lr_multiplier=mapping_lr_multiplier, w_avg_beta=w_avg_beta)
        self.latent_dim, self.w_dim, self.w_avg_beta = latent_dim, w_dim, w_avg_beta
        self.mapping_network = build_mapping_network(latent_dim, w_dim, mapping_depth,
                                                     mapping_lr_multiplier)
        self.synthesis_network = SynthesisNetwork(image_size, w_dim, channels, width, width_max,
                                                  name="synthesis")
        self.num_ws = self.synthesis_network.num_ws
        self.w_avg = self.add_weight(shape=(w_dim,), initializer="zeros", trainable=False,
                                     name="w_avg")
        self.synthesis_network.build(None)
        self.built = True

    def mapping(self, z, training: bool = False):
        """w = f(z), ``(B, w_dim)``."""
        return self.mapping_network(z, training=training)

    def synthesis(self, ws, noise=None, return_features: bool = False):
        """The image from per-layer styles ``(B, num_ws, w_dim)`` or one w ``(B, w_dim)``."""
        if len(ws.shape) == 2:
            ws = ops.repeat(ops.expand_dims(ws, 1), self.num_ws, axis=1)
        return self.synthesis_network(ws, noise=noise, return_features=return_features)

    def truncated(self, w, psi: float):
        """w pulled towards the running mean w (:func:`truncate`)."""
        return truncate(w, self.w_avg, psi)

    def call(self, z, training: bool = False, truncation_psi: float = 1.0, noise=None):
        w = self.mapping(z, training=training)
        if training:
            batch_mean = ops.stop_gradient(ops.mean(w, axis=0))
            self.w_avg.assign(batch_mean + self.w_avg_beta * (self.w_avg - batch_mean))
        if truncation_psi != 1.0:
            w = self.truncated(w, truncation_psi)
        return self.synthesis(w, noise=noise)

    def get_config(self):
        return {**super().get_config(), **self.config}


# --------------------------------------------------------------------------- SAGAN


@keras.saving.register_keras_serializable(package="gdlbook")
class SelfAttention2D(layers.Layer):
    """SAGAN's self-attention block for feature maps ``(B, H, W, C)``.

    Every position i attends to every position j of the same map: with 1×1 convolutions
    f (query), g (key) of ``C // key_ratio`` channels and h (value) of ``C // value_ratio``,

        β_ij = softmax_j( f(x_i) · g(x_j) ),    o_i = v( Σ_j β_ij h(x_j) ),    y_i = γ · o_i + x_i

    with v a 1×1 convolution back to C channels and γ a learned scalar that starts at 0, so the
    block starts as the identity and the network brings in non-local evidence gradually (Zhang et
    al., 2019). ``call(x, return_attention=True)`` also returns β, ``(B, H·W, H·W)``, whose
    row i says where position i (row-major) looks.
    """

    def __init__(self, key_ratio: int = 8, value_ratio: int = 2, **kwargs):
        super().__init__(**kwargs)
        self.key_ratio, self.value_ratio = key_ratio, value_ratio

    def build(self, input_shape):
        c = int(input_shape[-1])
        ck, cv = max(1, c // self.key_ratio), max(1, c // self.value_ratio)
        self.query = layers.Conv2D(ck, 1, use_bias=False, name="query")
        self.key = layers.Conv2D(ck, 1, use_bias=False, name="key")
        self.value = layers.Conv2D(cv, 1, use_bias=False, name="value")
        self.out = layers.Conv2D(c, 1, use_bias=False, name="out")
        for conv in (self.query, self.key, self.value):
            conv.build(input_shape)
        self.out.build((*input_shape[:-1], cv))
        self.gamma = self.add_weight(shape=(), initializer="zeros", name="gamma")

    def call(self, x, return_attention: bool = False):
        b, h, w, c = ops.shape(x)
        q = ops.reshape(self.query(x), (b, h * w, -1))
        k = ops.reshape(self.key(x), (b, h * w, -1))
        v = ops.reshape(self.value(x), (b, h * w, -1))
        scores = ops.matmul(q, ops.transpose(k, (0, 2, 1)))              # (B, N, N)
        beta = ops.softmax(ops.cast(scores, "float32"), axis=-1)
        o = ops.matmul(ops.cast(beta, v.dtype), v)                       # (B, N, C_v)
        o = self.out(ops.reshape(o, (b, h, w, -1)))
        y = x + self.gamma * o
        return (y, beta) if return_attention else y

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "key_ratio": self.key_ratio,
                "value_ratio": self.value_ratio}


# --------------------------------------------------------------------------- discriminator


def build_style_discriminator(image_size: int = 32, channels: int = 3, width: int = 32,
                              width_max: int = 128, *, attention_at: int | None = None,
                              mbstd_group: int | None = 4,
                              name: str = "discriminator") -> keras.Model:
    """A StyleGAN-style discriminator: image ``(S, S, C)`` → one logit.

    fromRGB (1×1), then at each resolution from ``image_size`` down to 8 two 3×3 convolutions
    with leaky ReLU (gain √2, :class:`ScaledLeakyReLU`) and a 2×2 average pooling, all with the
    equalised learning rate; at 4×4 the
    minibatch standard deviation (:class:`MinibatchStdDev`, groups of ``mbstd_group``; the batch
    size must be a multiple of it), a 3×3 convolution and two dense layers. ``attention_at`` puts
    a :class:`SelfAttention2D` block after the convolutions of that resolution (SAGAN).
    Widths mirror :class:`SynthesisNetwork` (``min(width_max, width·image_size/res)``).
    """
    n = int(round(math.log2(image_size)))
    if 2 ** n != image_size or image_size < 8:
        raise ValueError(f"image_size must be a power of two, at least 8; got {image_size}")
    widths = {2 ** r: min(width_max, width * image_size // 2 ** r) for r in range(2, n + 1)}
    image = keras.Input((image_size, image_size, channels), name="image")
    x = ScaledLeakyReLU()(EqualizedConv2D(widths[image_size], 1, name="from_rgb")(image))
    for res in [2 ** r for r in range(n, 2, -1)]:
        x = ScaledLeakyReLU()(EqualizedConv2D(widths[res], 3, name=f"b{res}_conv0")(x))
        x = ScaledLeakyReLU()(EqualizedConv2D(widths[res // 2], 3, name=f"b{res}_conv1")(x))
        if attention_at == res:
            x = SelfAttention2D(name=f"b{res}_attention")(x)
        x = layers.AveragePooling2D(2)(x)
    x = MinibatchStdDev(mbstd_group, name="minibatch_stddev")(x)
    x = ScaledLeakyReLU()(EqualizedConv2D(widths[4], 3, name="b4_conv")(x))
    x = layers.Flatten()(x)
    x = ScaledLeakyReLU()(EqualizedDense(widths[4], name="b4_fc")(x))
    logit = EqualizedDense(1, name="logit")(x)
    return keras.Model(image, logit, name=name)


# --------------------------------------------------------------------------- training


class StyleGAN(GAN):
    """A StyleGAN trained with the non-saturating logistic loss, R1 and style mixing.

    The discriminator minimises ``softplus(D(G(z))) + softplus(−D(x)) + (γ/2)·‖∇_x D(x)‖²`` (the
    R1 penalty on real images, Mescheder et al., 2018, which StyleGAN uses), the generator
    ``softplus(−D(G(z)))``. With probability ``mixing_prob`` a training image is generated from
    two latent vectors, switching from one to the other at a random layer (style-mixing
    regularisation), so that neighbouring layers cannot rely on sharing one style.

    The R1 penalty differentiates the discriminator twice, which costs about half as much again
    as the rest of a step. StyleGAN2's **lazy regularisation** computes it only every
    ``r1_interval`` discriminator steps (16 in StyleGAN2), weighted by ``r1_interval`` so that
    its average strength stays the same; ``r1_interval=1`` computes it every step. (StyleGAN2
    also rescales Adam's learning rate and betas for the regularised steps; we do not.)
    Logs ``d_loss``, ``g_loss`` and ``r1`` (the penalty at the regularised steps).

    Like every StyleGAN, it keeps a second generator, ``generator_ema``, whose weights are an
    exponential moving average of the trained generator's, and draws its images (``generate``)
    from that one: a GAN's generator keeps moving from step to step, and the average is much
    steadier. The average has a half-life of ``ema_images`` training images, shortened to
    ``ema_ramp`` times the images seen so far early in training (StyleGAN2-ADA: 10,000 images;
    a ramp of 0.05 for its short CIFAR-10 configuration); ``ema_images=0`` copies the weights.
    """

    def __init__(self, generator: StyleGenerator, discriminator: keras.Model,
                 r1_gamma: float = 1.0, mixing_prob: float = 0.9, r1_interval: int = 16,
                 ema_images: float = 10_000, ema_ramp: float | None = 0.05, **kwargs):
        super().__init__(generator, discriminator, generator.latent_dim, **kwargs)
        if r1_interval < 1:
            raise ValueError(f"r1_interval must be at least 1, got {r1_interval}")
        self.r1_gamma, self.mixing_prob, self.r1_interval = r1_gamma, mixing_prob, r1_interval
        self.ema_images, self.ema_ramp = ema_images, ema_ramp
        self.generator_ema = StyleGenerator.from_config(
            {**generator.get_config(), "name": f"{generator.name}_ema"})
        self.generator_ema.set_weights(generator.get_weights())
        self.generator_ema.trainable = False
        self.r1_tracker = keras.metrics.Mean(name="r1")

    @property
    def metrics(self) -> list:
        return [self.d_loss_tracker, self.g_loss_tracker, self.r1_tracker]

    def generate(self, z, labels=None, training: bool = False, truncation_psi: float = 1.0):
        """Images from the averaged generator, ``generator_ema``."""
        return self.generator_ema(z, truncation_psi=truncation_psi)

    def update_ema(self, batch_size):
        """Move ``generator_ema`` towards the generator, by the half-life in images."""
        half_life = ops.convert_to_tensor(float(self.ema_images))
        if self.ema_ramp is not None:
            seen = ops.cast(self.g_optimizer.iterations, "float32") * ops.cast(batch_size,
                                                                               "float32")
            half_life = ops.minimum(half_life, seen * self.ema_ramp)
        beta = ops.where(half_life > 0,
                         ops.power(0.5, ops.cast(batch_size, "float32")
                                   / ops.maximum(half_life, 1e-8)), 0.0)
        for avg, value in zip(self.generator_ema.weights, self.generator.weights):
            avg.assign(value + ops.cast(beta, value.dtype) * (avg - value))

    def mixed_images(self, n, training: bool):
        """A batch in which each image, with probability ``mixing_prob``, mixes two w's."""
        G = self.generator
        z = self.sample_latent(2 * n)
        w = G.mapping(z, training=training)
        w1, w2 = w[:n], w[n:]
        if training:
            batch_mean = ops.stop_gradient(ops.mean(w1, axis=0))
            G.w_avg.assign(batch_mean + G.w_avg_beta * (G.w_avg - batch_mean))
        cut = keras.random.randint((n, 1), 1, G.num_ws, seed=self.seed_generator)
        mix = keras.random.uniform((n, 1), seed=self.seed_generator) < self.mixing_prob
        cut = ops.where(mix, cut, G.num_ws)                        # no mixing: w1 everywhere
        first = ops.expand_dims(ops.arange(G.num_ws)[None, :] < cut, -1)
        ws = ops.where(first, ops.expand_dims(w1, 1), ops.expand_dims(w2, 1))
        return G.synthesis(ws)

    def r1_penalty(self, real):
        """Mean over images of ‖∇_x D(x)‖² at the real images."""
        _, (grads,) = value_and_grad(
            lambda x: ops.sum(self.discriminator(x, training=True)), [real])
        return ops.mean(ops.sum(ops.square(ops.reshape(grads, (ops.shape(grads)[0], -1))), 1))

    def train_step(self, data):
        real, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        n = ops.shape(real)[0]
        D, Dv = self.discriminator, self.discriminator.trainable_variables
        Gv = self.generator.trainable_variables

        fake = ops.stop_gradient(self.mixed_images(n, training=False))

        def d_step(regularise: bool):
            def d_loss_fn():
                loss = (ops.mean(ops.softplus(D(fake, training=True)))
                        + ops.mean(ops.softplus(-D(real, training=True))))
                if not regularise:
                    return loss, ops.zeros(())
                r1 = self.r1_penalty(real)
                return loss + 0.5 * self.r1_gamma * self.r1_interval * r1, r1

            (loss, r1), grads = value_and_grad(d_loss_fn, Dv, has_aux=True)
            return loss, r1, grads

        if not self.r1_gamma:
            d_loss, r1, d_grads = d_step(False)
        elif self.r1_interval == 1:
            d_loss, r1, d_grads = d_step(True)
        else:
            due = ops.equal(ops.mod(self.d_optimizer.iterations, self.r1_interval), 0)
            d_loss, r1, d_grads = _branch(due, lambda: d_step(True), lambda: d_step(False))
            self.r1_tracker.update_state(r1, sample_weight=ops.cast(due, "float32"))
        self.d_optimizer.apply(d_grads, Dv)

        def g_loss_fn():
            return ops.mean(ops.softplus(-D(self.mixed_images(n, training=True), training=True)))

        g_loss, g_grads = value_and_grad(g_loss_fn, Gv)
        self.g_optimizer.apply(g_grads, Gv)
        self.update_ema(n)
        if self.r1_interval == 1 or not self.r1_gamma:
            self.r1_tracker.update_state(r1)
        return self._log(d_loss, g_loss)


def _branch(pred, true_fn, false_fn):
    """``true_fn()`` if the scalar ``pred`` holds, else ``false_fn()``. TensorFlow traces
    ``fit()``'s step into a graph, so it needs ``ops.cond``; on JAX (where :class:`GAN` runs its
    step eagerly) and PyTorch ``pred`` has a value, and only one branch is computed."""
    if keras.backend.backend() == "tensorflow":
        return ops.cond(pred, true_fn, false_fn)
    return true_fn() if bool(ops.convert_to_numpy(pred)) else false_fn()
