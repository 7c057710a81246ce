"""Captioned shapes: small images of one or two coloured shapes, each with captions (chapter 13).

Chapter 13 trains a CLIP and a text-to-image diffusion model, which need image–caption pairs;
no such set can be had offline, so this module generates one from a seed. A *scene* holds one
shape, or two shapes one above the other or side by side. Every shape has a colour
(:data:`COLOURS`), a kind (:data:`SHAPES`) and a size (:data:`SIZES`); its position is drawn at
random within the region its relation allows. Every scene has several captions that say the
same thing (paraphrases): ``"a small red circle above a large blue square"`` is also
``"a large blue square below a small red circle"``.

**Split by composition.** The *composition* of a two-shape scene is which object is first (the
upper one, or the left one), along which axis, and which is second, sizes aside:
``(red circle, vertical, blue square)``. "A above B" and "B below A" are the same composition,
so a held-out composition never reaches training under its paraphrase. A fixed share of the
264 compositions (:func:`heldout_compositions`, chosen by ``split_seed`` alone) appears only in
the ``"test"`` split; the ``"train"`` split never holds one. One-shape scenes are never held
out. Every object and both axes still appear in training, so a held-out composition is new only
as a combination: a test of generalisation, not of memory.

``captioned_shapes(n, seed=…)`` is deterministic: the same arguments give the same images and
captions, bit for bit.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

#: Colour names and their RGB values in [0, 1] (each drawn with a little jitter).
COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (0.90, 0.15, 0.12),
    "green": (0.15, 0.75, 0.25),
    "blue": (0.15, 0.35, 0.95),
    "yellow": (0.95, 0.85, 0.15),
}
SHAPES = ("circle", "square", "triangle")
#: Half the side of a shape's bounding box, as a fraction of the image side.
SIZES: dict[str, float] = {"small": 0.11, "large": 0.19}
AXES = ("vertical", "horizontal")
#: The words of each relation: ``RELATIONS[axis] = (first-to-second, second-to-first)``.
RELATIONS = {"vertical": ("above", "below"), "horizontal": ("to the left of", "to the right of")}
#: Paraphrases of a relation, used besides the main words.
RELATION_SYNONYMS = {"above": "over", "below": "under", "to the left of": "left of",
                     "to the right of": "right of"}
OBJECTS = tuple(itertools.product(COLOURS, SHAPES))            # 12 (colour, shape) objects
#: Every two-shape composition: (first object, axis, second object), two different objects.
COMPOSITIONS = tuple((a, axis, b) for a in OBJECTS for axis in AXES for b in OBJECTS if a != b)
SPLITS = ("train", "test", "any")
BACKGROUND = 0.08


def heldout_compositions(fraction: float = 0.2, split_seed: int = 0) -> frozenset:
    """The compositions that appear only in the test split: a fixed share of all 264.

    They depend on ``fraction`` and ``split_seed`` only, never on the seed of the images. The
    choice is redrawn until every object still appears in training first and second along each
    axis, so that what is held out is a combination, never a part.
    """
    if not 0.0 < fraction < 0.5:
        raise ValueError(f"fraction must be in (0, 0.5); got {fraction}")
    n = int(round(fraction * len(COMPOSITIONS)))
    rng = np.random.default_rng([split_seed, 13])
    for _ in range(1000):
        chosen = frozenset(COMPOSITIONS[i] for i in rng.choice(len(COMPOSITIONS), n,
                                                               replace=False))
        kept = [c for c in COMPOSITIONS if c not in chosen]
        roles = {(a, axis, 0) for a, axis, _ in kept} | {(b, axis, 1) for _, axis, b in kept}
        if len(roles) == len(OBJECTS) * len(AXES) * 2:
            return chosen
    raise RuntimeError("no held-out set leaves every object in training")  # pragma: no cover


def describe(size: str, colour: str, shape: str) -> str:
    return f"{size} {colour} {shape}"


def captions_of(scene: dict) -> list[str]:
    """Every caption of ``scene`` (a :class:`Scenes` row as a dict); the first is the main one."""
    first = describe(scene["size1"], scene["colour1"], scene["shape1"])
    if scene["n_objects"] == 1:
        return [f"a {first}", f"there is a {first}", f"one {first}"]
    second = describe(scene["size2"], scene["colour2"], scene["shape2"])
    forward, backward = RELATIONS[scene["axis"]]
    return [f"a {first} {forward} a {second}",
            f"a {second} {backward} a {first}",
            f"there is a {first} {RELATION_SYNONYMS[forward]} a {second}",
            f"a {second} {RELATION_SYNONYMS[backward]} a {first}"]


def vocabulary() -> list[str]:
    """Every word any caption can hold, sorted (what :class:`gdlbook.multimodal.Tokenizer` reads)."""
    words = {"a", "there", "is", "one"} | set(COLOURS) | set(SHAPES) | set(SIZES)
    for phrase in [*itertools.chain.from_iterable(RELATIONS.values()),
                   *RELATION_SYNONYMS.values()]:
        words.update(phrase.split())
    return sorted(words)


@dataclass
class Scenes:
    """A batch of generated scenes: images, captions and the attributes behind them.

    ``images`` is ``(N, S, S, 3)`` float32 in [0, 1]. ``captions[i]`` lists every caption of
    scene ``i`` (the main one first); ``caption[i]`` is the one drawn for training. The
    attribute arrays are integer codes (indices into :data:`COLOURS`, :data:`SHAPES`,
    :data:`SIZES`, :data:`AXES`), ``-1`` for the missing second shape of a one-shape scene.
    ``heldout[i]`` says whether scene ``i``'s composition is held out of training.
    """

    images: np.ndarray
    captions: list[list[str]]
    caption: list[str]
    n_objects: np.ndarray
    colour1: np.ndarray
    shape1: np.ndarray
    size1: np.ndarray
    axis: np.ndarray
    colour2: np.ndarray
    shape2: np.ndarray
    size2: np.ndarray
    heldout: np.ndarray
    split: str = "train"
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.images)

    def row(self, i: int) -> dict:
        """Scene ``i`` as names: ``{"n_objects": 2, "colour1": "red", ..., "axis": "vertical"}``."""
        c, s, z = list(COLOURS), SHAPES, list(SIZES)
        out = {"n_objects": int(self.n_objects[i]), "colour1": c[self.colour1[i]],
               "shape1": s[self.shape1[i]], "size1": z[self.size1[i]]}
        if self.n_objects[i] == 2:
            out.update(colour2=c[self.colour2[i]], shape2=s[self.shape2[i]],
                       size2=z[self.size2[i]], axis=AXES[self.axis[i]])
        return out

    def subset(self, index) -> "Scenes":
        index = np.asarray(index)
        return Scenes(self.images[index], [self.captions[i] for i in index],
                      [self.caption[i] for i in index],
                      *(getattr(self, k)[index] for k in ATTRIBUTES), self.heldout[index],
                      split=self.split, meta=dict(self.meta))


ATTRIBUTES = ("n_objects", "colour1", "shape1", "size1", "axis", "colour2", "shape2", "size2")


def _mask(kind: str, cy: float, cx: float, half: float, yy: np.ndarray, xx: np.ndarray):
    """Boolean mask of one shape centred at ``(cy, cx)`` with half-side ``half`` (pixels)."""
    dy, dx = yy - cy, xx - cx
    if kind == "circle":
        return dy**2 + dx**2 <= half**2
    if kind == "square":
        return (np.abs(dy) <= 0.85 * half) & (np.abs(dx) <= 0.85 * half)
    # an upright isosceles triangle filling the box: apex at the top, base at the bottom
    rel = (dy + half) / (2 * half)                     # 0 at the apex, 1 at the base
    return (rel >= 0) & (rel <= 1) & (np.abs(dx) <= rel * half)


def render(scene: dict, image_size: int, rng: np.random.Generator) -> np.ndarray:
    """Draw ``scene`` (names, as :meth:`Scenes.row` gives) at a random admissible position."""
    s = image_size
    img = np.full((s, s, 3), BACKGROUND, dtype="float32")
    yy, xx = np.mgrid[0:s, 0:s].astype("float32") + 0.5
    objs = [(scene["colour1"], scene["shape1"], SIZES[scene["size1"]] * s)]
    if scene["n_objects"] == 1:
        h = objs[0][2]
        centres = [(rng.uniform(h, s - h), rng.uniform(h, s - h))]
    else:
        objs.append((scene["colour2"], scene["shape2"], SIZES[scene["size2"]] * s))
        h1, h2 = objs[0][2], objs[1][2]
        # the first shape inside the first half along the axis, the second inside the other
        # half, and across the axis at most a quarter of the image apart: the relation is plain
        along1 = rng.uniform(h1, s / 2 - h1)
        along2 = rng.uniform(s / 2 + h2, s - h2)
        lo, hi = max(h1, h2), s - max(h1, h2)
        across1 = rng.uniform(lo, hi)
        across2 = np.clip(across1 + rng.uniform(-s / 4, s / 4), lo, hi)
        if scene["axis"] == "vertical":
            centres = [(along1, across1), (along2, across2)]
        else:
            centres = [(across1, along1), (across2, along2)]
    for (colour, kind, half), (cy, cx) in zip(objs, centres):
        rgb = np.clip(np.array(COLOURS[colour]) + rng.normal(0.0, 0.04, 3), 0.0, 1.0)
        img[_mask(kind, cy, cx, half, yy, xx)] = rgb
    img += rng.normal(0.0, 0.02, img.shape).astype("float32")
    return np.clip(img, 0.0, 1.0)


def captioned_shapes(n: int, *, seed: int = 0, split: str = "train", image_size: int = 32,
                     single_share: float = 0.2, heldout_fraction: float = 0.2,
                     heldout_share: float = 0.5, split_seed: int = 0) -> Scenes:
    """``n`` generated scenes with their captions, deterministic in ``seed``.

    Args:
        n: number of scenes.
        seed: seed of the scenes, their positions and colours, and the caption drawn.
        split: ``"train"`` (no held-out composition), ``"test"`` (``heldout_share`` of the
            two-shape scenes have a held-out composition, the others a seen one) or ``"any"``
            (compositions drawn uniformly from all 264: the data of an independent judge).
        image_size: side of the square images, in pixels (at least 16).
        single_share: the share of one-shape scenes.
        heldout_fraction, split_seed: which compositions are held out
            (:func:`heldout_compositions`).
        heldout_share: in the test split, the share of two-shape scenes that are held out.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose from {SPLITS}")
    if n < 1 or image_size < 16:
        raise ValueError(f"need n >= 1 and image_size >= 16; got n={n}, image_size={image_size}")
    held = heldout_compositions(heldout_fraction, split_seed)
    seen = [c for c in COMPOSITIONS if c not in held]
    held_list = sorted(held)
    rng = np.random.default_rng([seed, {"train": 0, "test": 1, "any": 2}[split]])
    colours, sizes = list(COLOURS), list(SIZES)
    cols = {k: np.full(n, -1, dtype="int64") for k in ATTRIBUTES}
    heldout = np.zeros(n, dtype=bool)
    images = np.empty((n, image_size, image_size, 3), dtype="float32")
    captions, caption = [], []
    for i in range(n):
        if rng.random() < single_share:
            c1, s1 = OBJECTS[rng.integers(len(OBJECTS))]
            scene = {"n_objects": 1, "colour1": c1, "shape1": s1,
                     "size1": sizes[rng.integers(2)]}
        else:
            if split == "train":
                pool = seen
            elif split == "test":
                heldout[i] = rng.random() < heldout_share
                pool = held_list if heldout[i] else seen
            else:
                pool = COMPOSITIONS
            (c1, s1), axis, (c2, s2) = pool[rng.integers(len(pool))]
            heldout[i] = ((c1, s1), axis, (c2, s2)) in held
            scene = {"n_objects": 2, "colour1": c1, "shape1": s1,
                     "size1": sizes[rng.integers(2)], "axis": axis, "colour2": c2,
                     "shape2": s2, "size2": sizes[rng.integers(2)]}
        images[i] = render(scene, image_size, rng)
        options = captions_of(scene)
        captions.append(options)
        caption.append(options[rng.integers(len(options))])
        cols["n_objects"][i] = scene["n_objects"]
        cols["colour1"][i] = colours.index(scene["colour1"])
        cols["shape1"][i] = SHAPES.index(scene["shape1"])
        cols["size1"][i] = sizes.index(scene["size1"])
        if scene["n_objects"] == 2:
            cols["axis"][i] = AXES.index(scene["axis"])
            cols["colour2"][i] = colours.index(scene["colour2"])
            cols["shape2"][i] = SHAPES.index(scene["shape2"])
            cols["size2"][i] = sizes.index(scene["size2"])
    return Scenes(images, captions, caption, *(cols[k] for k in ATTRIBUTES), heldout,
                  split=split, meta={"seed": seed, "image_size": image_size,
                                     "heldout_fraction": heldout_fraction,
                                     "split_seed": split_seed})


def composition_of(scene: dict) -> tuple | None:
    """The composition of a scene given by names (``None`` for a one-shape scene)."""
    if scene["n_objects"] == 1:
        return None
    return ((scene["colour1"], scene["shape1"]), scene["axis"],
            (scene["colour2"], scene["shape2"]))


def parse_caption(caption: str) -> dict:
    """The scene a caption describes, as names (the inverse of :func:`captions_of`).

    Raises ``ValueError`` for a caption that is not one of the forms the generator writes.
    """
    words = caption.split()
    if words[:2] == ["there", "is"]:
        words = words[2:]
    if words and words[0] == "one":
        words = ["a", *words[1:]]

    def obj(ws):
        if len(ws) != 4 or ws[0] != "a" or ws[1] not in SIZES or ws[2] not in COLOURS \
                or ws[3] not in SHAPES:
            raise ValueError(f"not a caption of the captioned shapes: {caption!r}")
        return ws[1], ws[2], ws[3]

    if len(words) == 4:
        size, colour, shape = obj(words)
        return {"n_objects": 1, "colour1": colour, "shape1": shape, "size1": size}
    phrases = {}
    for axis, (forward, backward) in RELATIONS.items():
        for phrase, swap in ((forward, False), (backward, True),
                             (RELATION_SYNONYMS[forward], False),
                             (RELATION_SYNONYMS[backward], True)):
            phrases[tuple(phrase.split())] = (axis, swap)
    rest = words[4:-4]
    if tuple(rest) not in phrases or len(words) < 9:
        raise ValueError(f"not a caption of the captioned shapes: {caption!r}")
    axis, swap = phrases[tuple(rest)]
    a, b = obj(words[:4]), obj(words[-4:])
    if swap:
        a, b = b, a
    return {"n_objects": 2, "size1": a[0], "colour1": a[1], "shape1": a[2], "axis": axis,
            "size2": b[0], "colour2": b[1], "shape2": b[2]}
