"""Sample-quality metrics: the kernel inception distance (KID), first used in chapter 8 (diffusion).

KID (Bińkowski et al., 2018) compares two sets of images through the features a fixed network
extracts from them: it is the unbiased estimate of the squared maximum mean discrepancy (MMD²)
between the two feature distributions under the polynomial kernel
``k(x, y) = (x·y / d + 1) ** 3``, averaged over random subsets. Unlike FID it has an unbiased
estimator, so small sample sizes do not inflate it, and 0 means "same distribution".

The published KID (and FID) figures use the 2,048 pooled features of the TensorFlow Inception
graph of 2015 (``inception-2015-12-05``, which the reference implementations of FID and KID
load). :func:`inception_extractor` uses Keras's ImageNet ``InceptionV3`` instead (Szegedy et
al., 2016), a network of the same family with other weights, so its KID is a different metric,
labelled "KID (Keras InceptionV3, 299×299)" and never to be compared with published values.
:func:`kid_feature_extractor` returns that extractor when the weights can be had and otherwise a
clearly labelled substitute (a fixed, randomly initialised CNN), printing why.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable

import numpy as np

from gdlbook import progress

# --------------------------------------------------------------------------- MMD and KID


def polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The cubic polynomial kernel of KID: ``(x @ y.T / d + 1) ** 3`` for ``d``-dim features."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased estimate of MMD² between the samples ``x`` (m, d) and ``y`` (n, d).

    ``mean_{i≠j} k(x_i, x_j) + mean_{i≠j} k(y_i, y_j) - 2 mean_{i,j} k(x_i, y_j)``: the
    diagonals (each point with itself) are left out, which removes the bias. The estimate can be
    slightly negative when the two distributions are the same.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"expected two feature arrays (m, d) and (n, d); got {x.shape}, {y.shape}")
    m, n = len(x), len(y)
    if m < 2 or n < 2:
        raise ValueError("each sample needs at least 2 points")
    k_xx, k_yy, k_xy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
    term_xx = (k_xx.sum() - np.trace(k_xx)) / (m * (m - 1))
    term_yy = (k_yy.sum() - np.trace(k_yy)) / (n * (n - 1))
    return float(term_xx + term_yy - 2.0 * k_xy.mean())


def kid(real_features: np.ndarray, fake_features: np.ndarray, *, num_subsets: int = 100,
        subset_size: int = 1000, seed: int = 0) -> tuple[float, float]:
    """KID: MMD² averaged over ``num_subsets`` random subsets of ``subset_size`` of each set.

    The conventions are those of Bińkowski et al. (2018) and their reference code: subsets of
    1,000 drawn without replacement, 100 of them. With fewer points than ``subset_size`` every
    subset is the whole set (and a single one is computed).

    Returns:
        ``(mean, std)`` of the subset estimates.
    """
    real = np.asarray(real_features, dtype=np.float64)
    fake = np.asarray(fake_features, dtype=np.float64)
    size = min(subset_size, len(real), len(fake))
    if size == len(real) == len(fake):  # every subset would be the same two sets
        num_subsets = 1
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(num_subsets):
        r = real[rng.choice(len(real), size, replace=False)]
        f = fake[rng.choice(len(fake), size, replace=False)]
        values.append(mmd2_unbiased(r, f))
    return float(np.mean(values)), float(np.std(values))


# --------------------------------------------------------------------------- feature extractors


@dataclass
class FeatureExtractor:
    """A fixed network that maps images to feature vectors, with a name a figure can carry.

    Call it on images ``(N, H, W, 3)``, uint8 or floats in [0, 1]; it returns ``(N, d)`` NumPy
    features. ``label`` names the extractor for figures and text (``KID ({label})``);
    ``standard`` is True only for Keras's ImageNet InceptionV3 at 299×299, the configuration
    closest to the published KID. Even then the weights are not those of the Inception graph
    behind published FID/KID figures, so no KID of this module is comparable with them.
    """

    name: str
    label: str
    standard: bool
    image_size: int
    model: object
    preprocess: Callable
    batch_size: int = 64

    def __call__(self, images) -> np.ndarray:
        import keras

        x = np.asarray(images)
        x = x.astype("float32") / 255.0 if x.dtype == np.uint8 else x.astype("float32")
        outs = []
        for i in progress.track(range(0, len(x), self.batch_size),
                                f"{self.label}: features of {len(x)} images", unit="batch"):
            batch = x[i:i + self.batch_size]
            if batch.shape[1:3] != (self.image_size, self.image_size):
                batch = keras.ops.image.resize(batch, (self.image_size, self.image_size),
                                               interpolation="bilinear", antialias=True)
            batch = self.preprocess(batch)
            outs.append(keras.ops.convert_to_numpy(
                self.model.predict_on_batch(keras.ops.convert_to_numpy(batch))))
        return np.concatenate(outs).astype(np.float64)


def inception_extractor(image_size: int = 299, batch_size: int = 64) -> FeatureExtractor:
    """Inception-v3 with ImageNet weights, global-average-pooled (2,048 features).

    These are Keras's ImageNet weights, not the 2015 TensorFlow Inception graph of published
    FID/KID figures. ``image_size`` 299 is Inception's native input and the size of the published
    metrics; the Keras DDIM example uses 75 (the smallest input InceptionV3 accepts) for speed,
    which gives different numbers again. The weights are downloaded on first use: this raises
    when they cannot be had.
    """
    import keras

    model = keras.applications.InceptionV3(include_top=False, weights="imagenet",
                                           pooling="avg",
                                           input_shape=(image_size, image_size, 3))

    def preprocess(x):  # [0, 1] → [-1, 1], Inception's input range
        return keras.ops.clip(x, 0.0, 1.0) * 2.0 - 1.0

    standard = image_size == 299
    label = f"Keras InceptionV3, {image_size}×{image_size}"
    return FeatureExtractor("inception_v3", label, standard, image_size, model, preprocess,
                            batch_size)


def random_cnn_extractor(image_size: int, widths=(64, 128, 256, 512), seed: int = 0,
                         batch_size: int = 256) -> FeatureExtractor:
    """A fixed, randomly initialised CNN: the offline stand-in for Inception features.

    Four stride-2 3×3 convolutions with ReLU (He-normal weights, seeded, never trained), each
    stage's activations averaged over space and concatenated. Random convolutional features
    respond to colour, contrast and local texture statistics at several scales, so the MMD
    between two image sets in this space is a meaningful but *non-standard* distance: it is
    comparable between runs of this book, never with published KIDs.
    """
    import keras
    from keras import layers

    init = lambda i: keras.initializers.HeNormal(seed=seed + i)  # noqa: E731
    inputs = keras.Input((image_size, image_size, 3))
    x, pooled = inputs, []
    for i, width in enumerate(widths):
        x = layers.Conv2D(width, 3, strides=2, padding="same", activation="relu",
                          kernel_initializer=init(i))(x)
        pooled.append(layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inputs, layers.Concatenate()(pooled), name="random_cnn")

    def preprocess(x):
        return keras.ops.clip(x, 0.0, 1.0) * 2.0 - 1.0

    label = f"random CNN, {image_size}×{image_size}: not the standard Inception features"
    return FeatureExtractor("random_cnn", label, False, image_size, model, preprocess,
                            batch_size)


def _offline() -> bool:
    return os.environ.get("GDL_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def kid_feature_extractor(image_size: int = 299, *, fallback_size: int | None = None,
                          seed: int = 0) -> FeatureExtractor:
    """The KID feature extractor: ImageNet Inception-v3 if its weights can be had, else a random CNN.

    Offline (``GDL_OFFLINE``) or when the download fails, this prints why and returns
    :func:`random_cnn_extractor` at ``fallback_size`` (default ``image_size``); its ``label``
    says it is not the standard KID.
    """
    why = None
    if _offline():
        why = "downloads are off (GDL_OFFLINE is set)"
    else:
        try:
            return inception_extractor(image_size)
        except Exception as e:  # noqa: BLE001 - any failure to get the weights means: fall back
            why = f"{type(e).__name__}: {e}"
    extractor = random_cnn_extractor(fallback_size or image_size, seed=seed)
    print(f"The ImageNet weights of Keras's InceptionV3 are not available ({why}).\n"
          f"Using a fixed random CNN as the feature extractor instead: the numbers below are "
          f"KID ({extractor.label}); they are not comparable with published KIDs.")
    return extractor


def to_unit(images, value_range=(-1.0, 1.0)) -> np.ndarray:
    """Images with values in ``value_range`` (a GAN's tanh output: [-1, 1]) → floats in [0, 1],
    the range a :class:`FeatureExtractor` reads."""
    low, high = value_range
    return (np.asarray(images, dtype="float32") - low) / (high - low)


def generated_features(extractor: FeatureExtractor, generate: Callable, latent_dim: int, n: int,
                       *, seed: int, batch_size: int = 250,
                       value_range=(-1.0, 1.0)) -> np.ndarray:
    """The features of ``n`` generated images, for a KID against real images.

    ``generate(z)`` maps latent vectors ``(b, latent_dim)`` to images in ``value_range``; z is
    drawn from N(0, I) by a NumPy generator seeded with ``seed`` (so two models can be compared
    on the same draws) and fed ``batch_size`` at a time.
    """
    import keras

    z = np.random.default_rng(seed).normal(size=(n, latent_dim)).astype("float32")
    x = np.concatenate([keras.ops.convert_to_numpy(generate(z[i:i + batch_size]))
                        for i in range(0, n, batch_size)])
    return extractor(to_unit(x, value_range))
