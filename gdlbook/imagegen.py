"""Pretrained convnets as instruments: DeepDream and neural style transfer (taught in chapter 14).

Both methods hold a trained image classifier fixed and change an *image*: DeepDream climbs the
activations of chosen layers (Mordvintsev et al. 2015), style transfer descends a loss that
compares deep features with those of a content image and their Gram matrices with those of a
style image (Gatys et al. 2016). A feed-forward network can learn to do the second in one pass
(Johnson et al. 2016). This module holds what those methods share:

- :class:`Network`: a convnet with the layers each method reads and the preprocessing its
  inputs need. :func:`imagenet_network` wraps Keras's ImageNet VGG19 and InceptionV3 (what
  Chollet uses); :func:`small_vgg` builds the small VGG-style network that the chapter trains on
  CIFAR-10 when those weights cannot be had, and :func:`trained_network` wraps it.
- :func:`gram_matrix`, :func:`content_loss`, :func:`style_loss`, :func:`total_variation_loss`
  and :class:`StyleTransferLoss`, which weighs them;
- :func:`dream_loss`, :func:`octave_shapes` and :func:`octave_dream` (the loop over scales with
  detail re-injection);
- :func:`transform_net` and :class:`FastStyleTransfer`: Johnson's feed-forward network, with
  instance normalisation (Ulyanov et al. 2016), trained with ``fit()`` on the same loss;
- :func:`lbfgs`: SciPy's L-BFGS-B on an image, the optimiser Gatys et al. used.

Images are float tensors in [0, 1], RGB, shaped ``(B, H, W, 3)``; each network's ``preprocess``
maps them to its own input range, so every optimiser works on the same pixels. Gradients come
from :func:`gdlbook.gradients.value_and_grad`, so all of it runs on TensorFlow, PyTorch and JAX.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import keras
import numpy as np
from keras import layers, ops

__all__ = [
    "IMAGENET", "WeightsUnavailableError", "Network", "imagenet_weights_path", "imagenet_network",
    "small_vgg", "trained_network", "choose_network", "gram_matrix", "content_loss",
    "style_loss", "total_variation_loss", "StyleTransferLoss", "dream_loss", "resize",
    "octave_shapes", "octave_dream", "transform_net", "FastStyleTransfer", "lbfgs",
]

#: The Keras applications the chapter uses with ImageNet weights, and where Keras keeps them.
IMAGENET = {
    "vgg19": dict(
        application="VGG19",
        file="vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5",
        url="https://storage.googleapis.com/tensorflow/keras-applications/vgg19/"
            "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5",
        megabytes=80),
    "inception_v3": dict(
        application="InceptionV3",
        file="inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5",
        url="https://storage.googleapis.com/tensorflow/keras-applications/inception_v3/"
            "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5",
        megabytes=87),
}


class WeightsUnavailableError(RuntimeError):
    """The ImageNet weights of a Keras application are not in the Keras cache and cannot be
    downloaded (offline, or the download failed)."""


def _offline() -> bool:
    return os.environ.get("GDL_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def imagenet_weights_path(name: str) -> Path:
    """Where ``keras.applications`` keeps (or would keep) the weights of ``name``."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    if not os.access(home, os.W_OK) and not os.path.isdir(os.path.join(home, "models")):
        home = os.path.join("/tmp", ".keras")  # Keras's own fallback for a read-only home
    return Path(home) / "models" / IMAGENET[name]["file"]


# --------------------------------------------------------------------------- networks


@dataclass
class Network:
    """A trained convnet used as an instrument: the model and which of its layers to read.

    ``model`` takes preprocessed images of any size (its input is ``(None, None, 3)``);
    ``preprocess`` maps images in [0, 1] to that input. ``content_layer`` and
    ``style_layers`` are the layers of style transfer; ``dream_layers`` names choices of
    DeepDream layers, each a mapping layer -> weight. ``min_side`` is the smallest image side
    on which every one of those layers still has activations.
    """

    name: str
    model: keras.Model
    preprocess: Callable[[Any], Any]
    content_layer: str
    style_layers: tuple[str, ...]
    dream_layers: dict[str, dict[str, float]]
    min_side: int
    imagenet: bool = False
    _extractors: dict = field(default_factory=dict, repr=False)

    def extractor(self, layer_names: Sequence[str]) -> Callable[[Any], dict]:
        """A function from images in [0, 1] to ``{layer name: activations}`` of those layers."""
        key = tuple(layer_names)
        if key not in self._extractors:
            missing = [n for n in key if n not in {l.name for l in self.model.layers}]
            if missing:
                raise ValueError(f"{self.name} has no layer(s) {missing}")
            outputs = [self.model.get_layer(n).output for n in key]
            sub = keras.Model(self.model.inputs, outputs, name=f"{self.model.name}_features")
            sub.trainable = False
            self._extractors[key] = sub
        sub = self._extractors[key]

        def features(images):
            out = sub(self.preprocess(images))
            out = out if isinstance(out, (list, tuple)) else [out]
            return dict(zip(key, out))

        return features


def _vgg_preprocess(x):
    """[0, 1] RGB -> VGG's input: BGR in [0, 255] minus the ImageNet mean ("caffe" mode)."""
    bgr = ops.flip(x, axis=-1) * 255.0
    return bgr - ops.convert_to_tensor(np.array([103.939, 116.779, 123.68], "float32"))


def _inception_preprocess(x):
    """[0, 1] -> Inception's input range [-1, 1]."""
    return x * 2.0 - 1.0


def _application(name: str, weights):
    spec = IMAGENET[name]
    return getattr(keras.applications, spec["application"])(include_top=False, weights=weights)


def imagenet_network(name: str, *, weights: str | None = "imagenet") -> Network:
    """Keras's VGG19 (``"vgg19"``) or InceptionV3 (``"inception_v3"``) as a :class:`Network`.

    With ``weights="imagenet"`` the weights come from the Keras cache or are downloaded; when
    neither is possible this raises :class:`WeightsUnavailableError` with a message that says
    which file is missing, where Keras looks for it and where to get it. ``weights=None``
    builds the architecture with random weights (what the unit tests run).
    """
    if name not in IMAGENET:
        raise ValueError(f"unknown network {name!r}; choose from {sorted(IMAGENET)}")
    spec = IMAGENET[name]
    if weights == "imagenet":
        path = imagenet_weights_path(name)
        if not path.is_file():
            how = (f"Put {spec['file']} ({spec['megabytes']} MB, from {spec['url']}) in "
                   f"{path.parent}, or run once with internet access (and GDL_OFFLINE unset).")
            if _offline():
                raise WeightsUnavailableError(
                    f"The ImageNet weights of {spec['application']} are not in the Keras cache "
                    f"({path}) and downloads are off (GDL_OFFLINE is set). {how}")
        old = socket.getdefaulttimeout()
        socket.setdefaulttimeout(60)
        try:
            model = _application(name, "imagenet")
        except Exception as e:  # noqa: BLE001 - any failure to get the weights, said plainly
            raise WeightsUnavailableError(
                f"The ImageNet weights of {spec['application']} could not be loaded or "
                f"downloaded ({type(e).__name__}: {str(e)[:200]}). Put {spec['file']} "
                f"({spec['megabytes']} MB, from {spec['url']}) in {path.parent}.") from None
        finally:
            socket.setdefaulttimeout(old)
    else:
        model = _application(name, weights)
    model.trainable = False
    label = "ImageNet weights" if weights == "imagenet" else "random weights"
    if name == "vgg19":
        return Network(
            name=f"VGG19 ({label}, Keras applications)", model=model,
            preprocess=_vgg_preprocess, content_layer="block4_conv2",
            style_layers=tuple(f"block{i}_conv1" for i in range(1, 6)),
            dream_layers={"block3_conv4": {"block3_conv4": 1.0},
                          "block4_conv4": {"block4_conv4": 1.0},
                          "block5_conv4": {"block5_conv4": 1.0}},
            min_side=32, imagenet=weights == "imagenet")
    return Network(
        name=f"InceptionV3 ({label}, Keras applications)", model=model,
        preprocess=_inception_preprocess, content_layer="mixed7",
        style_layers=("conv2d_2", "mixed0", "mixed2", "mixed5"),
        dream_layers={"mixed3": {"mixed3": 1.0}, "mixed5": {"mixed5": 1.0},
                      "mixed7": {"mixed7": 1.0},
                      "mixed4–7 (Chollet)": {"mixed4": 1.0, "mixed5": 1.5, "mixed6": 2.0,
                                              "mixed7": 2.5}},
        min_side=150, imagenet=weights == "imagenet")


def small_vgg(widths: Sequence[int] = (32, 64, 128), n_classes: int = 10, *,
              dropout: float = 0.3, seed: int = 0) -> keras.Model:
    """A small VGG-style classifier for 32×32 images that accepts images of any size.

    One block per width: two 3×3 convolutions with ReLU (``block{i}_conv1``, ``block{i}_conv2``,
    the names VGG19 uses) and a 2×2 max-pooling; then global average pooling, dropout and a
    linear layer to ``n_classes`` logits. Inputs are images in [0, 1]; the global pooling is
    what lets the trained network read images larger than the ones it learned on.
    """
    init = lambda i: keras.initializers.HeNormal(seed=seed + i)  # noqa: E731
    inputs = keras.Input((None, None, 3))
    x = layers.Rescaling(2.0, offset=-1.0)(inputs)
    k = 0
    for b, width in enumerate(widths, start=1):
        for c in (1, 2):
            x = layers.Conv2D(width, 3, padding="same", activation="relu",
                              kernel_initializer=init(k), name=f"block{b}_conv{c}")(x)
            k += 1
        x = layers.MaxPooling2D(2, name=f"block{b}_pool")(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(dropout, seed=seed)(x)
    outputs = layers.Dense(n_classes, kernel_initializer=keras.initializers.GlorotUniform(seed))(x)
    return keras.Model(inputs, outputs, name="small_vgg")


def trained_network(model: keras.Model, description: str) -> Network:
    """A trained :func:`small_vgg` as a :class:`Network` (content: the last block's second
    convolution; style: each block's first; DeepDream: each block's second, and all of them)."""
    blocks = sorted({int(l.name[5]) for l in model.layers if l.name.startswith("block")})
    last = blocks[-1]
    dream = {f"block{b}_conv2": {f"block{b}_conv2": 1.0} for b in blocks}
    dream["all blocks"] = {f"block{b}_conv2": float(b) for b in blocks}
    model.trainable = False
    return Network(
        name=description, model=model, preprocess=lambda x: x,
        content_layer=f"block{last}_conv2",
        style_layers=tuple(f"block{b}_conv1" for b in blocks),
        dream_layers=dream, min_side=2 ** (last + 1), imagenet=False)


def choose_network(name: str, use_imagenet: bool | str, fallback: Callable[[], Network]) -> Network:
    """The ImageNet network ``name`` when ``use_imagenet`` allows it and its weights can be had,
    else ``fallback()``.

    ``use_imagenet``: ``False`` (always the fallback), ``"auto"`` (ImageNet when the weights are
    in the Keras cache or can be downloaded) or ``True`` (ImageNet, or a
    :class:`WeightsUnavailableError`). With ``"auto"``, why the fallback is used is printed.
    """
    if use_imagenet not in (True, False, "auto"):
        raise ValueError(f"use_imagenet must be True, False or 'auto'; got {use_imagenet!r}")
    if use_imagenet:
        try:
            return imagenet_network(name)
        except WeightsUnavailableError as e:
            if use_imagenet is True:
                raise
            print(f"{e}\nUsing the network trained on this page instead.")
    return fallback()


# --------------------------------------------------------------------------- losses


def gram_matrix(features):
    """Gram matrices of feature maps: ``(B, H, W, C)`` -> ``(B, C, C)``, divided by ``H·W``.

    Entry ``(c, d)`` is the average over positions of the product of channels ``c`` and ``d``:
    which features occur together, wherever they occur. Dividing by the number of positions
    makes the matrices of images of different sizes comparable.
    """
    shape = ops.shape(features)
    f = ops.reshape(features, (shape[0], -1, shape[-1]))
    n = ops.cast(ops.shape(f)[1], f.dtype)
    return ops.einsum("bnc,bnd->bcd", f, f) / n


def content_loss(features, target):
    """Mean squared difference between feature maps (Gatys et al.'s content loss, averaged)."""
    return ops.mean(ops.square(features - target))


def style_loss(features: Sequence[Any], target_grams: Sequence[Any]):
    """Mean over layers of the mean squared difference between Gram matrices.

    ``features``: one feature map per style layer; ``target_grams``: the style image's Gram
    matrices of the same layers (batch 1, broadcast over the batch of ``features``).
    """
    terms = [ops.mean(ops.square(gram_matrix(f) - g)) for f, g in zip(features, target_grams)]
    return ops.mean(ops.stack(terms))


def total_variation_loss(images):
    """Mean squared difference between neighbouring pixels, down and across: small for smooth
    images, large for pixel noise."""
    down = images[:, 1:, :, :] - images[:, :-1, :, :]
    across = images[:, :, 1:, :] - images[:, :, :-1, :]
    return ops.mean(ops.square(down)) + ops.mean(ops.square(across))


class StyleTransferLoss:
    """Gatys et al.'s loss, weighted: ``content_weight · content + style_weight · style +
    tv_weight · total variation``, on the layers of a :class:`Network`.

    Built with the style image (its Gram matrices are computed once). Called with images and
    the content features they should keep (:meth:`content_target` of the content images), it
    returns ``(total, {"content": ..., "style": ..., "tv": ...})``, the unweighted terms.
    """

    def __init__(self, network: Network, style_image, *, content_weight: float = 1.0,
                 style_weight: float = 1.0, tv_weight: float = 0.0):
        self.network = network
        self.layers = (network.content_layer, *network.style_layers)
        self.features = network.extractor(self.layers)
        self.content_features = network.extractor([network.content_layer])
        feats = self.features(ops.convert_to_tensor(style_image, "float32"))
        self.style_grams = [ops.stop_gradient(gram_matrix(feats[n])) for n in network.style_layers]
        self.content_weight = content_weight
        self.style_weight = style_weight
        self.tv_weight = tv_weight

    def content_target(self, content_images):
        """The content layer's activations for ``content_images`` (held fixed)."""
        f = self.content_features(ops.convert_to_tensor(content_images, "float32"))
        return ops.stop_gradient(f[self.network.content_layer])

    def __call__(self, images, content_target):
        feats = self.features(images)
        terms = {
            "content": content_loss(feats[self.network.content_layer], content_target),
            "style": style_loss([feats[n] for n in self.network.style_layers], self.style_grams),
            "tv": total_variation_loss(images),
        }
        total = (self.content_weight * terms["content"] + self.style_weight * terms["style"]
                 + self.tv_weight * terms["tv"])
        return total, terms


# --------------------------------------------------------------------------- DeepDream


def dream_loss(features: Mapping[str, Any], weights: Mapping[str, float], border: int = 2):
    """DeepDream's objective: ``Σ_l w_l · mean(a_l²)``, the weighted mean squared activation
    of each chosen layer, leaving out ``border`` positions at each edge (where padding shapes
    the activations) when the map is large enough."""
    total = 0.0
    for name, w in weights.items():
        a = features[name]
        h, wd = a.shape[1], a.shape[2]
        if h is not None and wd is not None and min(h, wd) > 2 * border + 2:
            a = a[:, border:h - border, border:wd - border, :]
        total = total + w * ops.mean(ops.square(a))
    return total


def resize(images, size: tuple[int, int]):
    """Bilinear resize of ``(B, H, W, C)`` images to ``size`` = (height, width), antialiased
    when shrinking."""
    return ops.image.resize(images, size, interpolation="bilinear", antialias=True)


def octave_shapes(shape: tuple[int, int], n_octaves: int, octave_scale: float,
                  min_side: int = 1) -> list[tuple[int, int]]:
    """The image sizes of the octaves, smallest first, the last being ``shape``: each is
    ``octave_scale`` times smaller than the next. Octaves whose smaller side would fall below
    ``min_side`` are left out."""
    if n_octaves < 1 or octave_scale <= 1:
        raise ValueError("need n_octaves >= 1 and octave_scale > 1")
    h, w = shape
    shapes = []
    for i in range(n_octaves - 1, -1, -1):
        s = (round(h / octave_scale ** i), round(w / octave_scale ** i))
        if min(s) >= min_side or i == 0:
            shapes.append(s)
    return shapes


def octave_dream(image, ascend: Callable[[Any], Any], shapes: Sequence[tuple[int, int]]):
    """Run ``ascend`` (a few gradient-ascent steps on an image) at each size of ``shapes``,
    smallest first, with detail re-injection.

    The image is shrunk to the smallest size and dreamt on. At each larger size the dream is
    enlarged, and the detail that the shrinking removed is added back: the difference between
    the image at this size and the image at the previous size enlarged to this one. Patterns
    grown at a coarse scale thus survive, and the photograph stays sharp.
    """
    image = ops.convert_to_tensor(image, "float32")
    bases = [resize(image, s) for s in shapes]
    dream = bases[0]
    for i, s in enumerate(shapes):
        if i > 0:
            detail = bases[i] - resize(bases[i - 1], s)
            dream = resize(dream, s) + detail
        dream = ascend(dream)
    return dream


# --------------------------------------------------------------------------- fast style transfer


def _norm(name):
    # groups=-1: one group per channel, i.e. instance normalisation (Ulyanov et al. 2016)
    return layers.GroupNormalization(groups=-1, epsilon=1e-3, name=name)


def transform_net(widths: Sequence[int] = (16, 32, 64), n_residual: int = 3, *,
                  seed: int = 0) -> keras.Model:
    """Johnson et al.'s image transformation network, narrower: images in [0, 1] -> images.

    A 9×9 convolution, two stride-2 3×3 convolutions (``widths``), ``n_residual`` residual
    blocks at a quarter of the resolution, two ×2 upsamplings each followed by a 3×3
    convolution, and a 9×9 convolution to three channels with a sigmoid. Every convolution but
    the last is followed by instance normalisation and ReLU. Johnson et al. upsample with
    transposed convolutions; nearest-neighbour upsampling followed by a convolution avoids
    their checkerboard artefacts. Image sides must be multiples of 4.
    """
    init = lambda i: keras.initializers.HeNormal(seed=seed + i)  # noqa: E731
    k = iter(range(1000))

    def conv(x, width, size, stride=1, name=None):
        x = layers.Conv2D(width, size, strides=stride, padding="same",
                          kernel_initializer=init(next(k)), name=name)(x)
        return layers.ReLU()(_norm(None)(x))

    inputs = keras.Input((None, None, 3))
    x = conv(inputs, widths[0], 9)
    x = conv(x, widths[1], 3, 2)
    x = conv(x, widths[2], 3, 2)
    for _ in range(n_residual):
        y = conv(x, widths[2], 3)
        y = layers.Conv2D(widths[2], 3, padding="same", kernel_initializer=init(next(k)))(y)
        x = layers.Add()([x, _norm(None)(y)])
    for width in (widths[1], widths[0]):
        x = layers.UpSampling2D(2, interpolation="nearest")(x)
        x = conv(x, width, 3)
    outputs = layers.Conv2D(3, 9, padding="same", activation="sigmoid",
                            kernel_initializer=keras.initializers.GlorotUniform(seed))(x)
    return keras.Model(inputs, outputs, name="transform_net")


class FastStyleTransfer(keras.Model):
    """A :func:`transform_net` trained with ``fit()`` to minimise a :class:`StyleTransferLoss`
    of its outputs, the content target being the features of its inputs (Johnson et al.'s
    perceptual loss). ``fit(images)`` takes content images only; the content, style and total
    variation terms are logged on their own."""

    def __init__(self, transform: keras.Model, loss: StyleTransferLoss, **kwargs):
        super().__init__(**kwargs)
        self.transform = transform
        self.perceptual = loss  # a plain object: its network's weights are not trained
        self.trackers = {k: keras.metrics.Mean(name=f"{k}_loss") for k in ("content", "style", "tv")}

    def call(self, images, training=False):
        return self.transform(images, training=training)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        total, terms = self.perceptual(y_pred, self.perceptual.content_target(x))
        for k, v in terms.items():
            self.trackers[k].update_state(v)
        return total

    @property
    def metrics(self):
        return [*super().metrics, *self.trackers.values()]


# --------------------------------------------------------------------------- L-BFGS


def lbfgs(loss_fn: Callable[[Any], tuple[Any, dict]], image, iterations: int, *,
          bounds: tuple[float, float] = (0.0, 1.0)) -> tuple[np.ndarray, list[dict]]:
    """Minimise ``loss_fn`` over an image with SciPy's L-BFGS-B, pixels kept within ``bounds``.

    ``loss_fn(image)`` returns ``(total, terms)`` as :class:`StyleTransferLoss` does; its
    gradient comes from :func:`gdlbook.gradients.value_and_grad`. Returns the image (NumPy,
    shaped like ``image``) and one record per evaluation of the loss: ``{"evaluation", "seconds",
    "loss", **terms}`` (L-BFGS may evaluate the loss more than once per iteration).
    """
    from scipy.optimize import Bounds, minimize

    from gdlbook.gradients import value_and_grad

    x0 = np.asarray(ops.convert_to_numpy(image), dtype="float64")
    shape = x0.shape
    history: list[dict] = []
    start = time.perf_counter()

    def fun(flat):
        x = ops.convert_to_tensor(flat.reshape(shape).astype("float32"))
        (loss, terms), (grad,) = value_and_grad(loss_fn, [x], has_aux=True)
        value = float(ops.convert_to_numpy(loss))
        history.append({"evaluation": len(history) + 1, "seconds": time.perf_counter() - start,
                        "loss": value,
                        **{k: float(ops.convert_to_numpy(v)) for k, v in terms.items()}})
        return value, np.asarray(ops.convert_to_numpy(grad), dtype="float64").ravel()

    result = minimize(fun, x0.ravel(), jac=True, method="L-BFGS-B",
                      bounds=Bounds(*bounds),
                      options={"maxiter": iterations, "maxfun": 2 * iterations + 10})
    return result.x.reshape(shape).astype("float32"), history
