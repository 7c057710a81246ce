"""Chapter 13's pieces: the captioned-shapes generator and its split by composition, the word
tokenizer and retrieval recall (NumPy, in this process); on TensorFlow, PyTorch and JAX the
contrastive loss against a NumPy reference, the encoder attention without causality and with
padding hidden, a CLIP that learns, FiLM, and a conditional DDIM model with classifier-free
guidance."""

import numpy as np
import pytest

from backendrun import BACKENDS, run_snippets
from gdlbook.data import shapes
from gdlbook.multimodal import Tokenizer, recall_at_k

# --------------------------------------------------------------------------- the generator


def test_the_generator_is_deterministic_per_seed():
    a = shapes.captioned_shapes(60, seed=3, split="test", image_size=24)
    b = shapes.captioned_shapes(60, seed=3, split="test", image_size=24)
    c = shapes.captioned_shapes(60, seed=4, split="test", image_size=24)
    assert np.array_equal(a.images, b.images) and a.caption == b.caption
    assert np.array_equal(a.heldout, b.heldout)
    assert not np.array_equal(a.images, c.images)
    assert a.images.shape == (60, 24, 24, 3) and a.images.dtype == np.float32
    assert 0.0 <= a.images.min() and a.images.max() <= 1.0


def test_heldout_compositions_never_appear_in_training():
    held = shapes.heldout_compositions()
    assert len(held) == round(0.2 * len(shapes.COMPOSITIONS)) and len(shapes.COMPOSITIONS) == 264
    train = shapes.captioned_shapes(3000, seed=0, split="train", image_size=16)
    comps = {shapes.composition_of(train.row(i)) for i in range(len(train))}
    comps.discard(None)
    assert not comps & held and not train.heldout.any()
    # ... not under a paraphrase either: every caption parses back to a seen composition
    for i in range(0, len(train), 7):
        for caption in train.captions[i]:
            assert shapes.composition_of(shapes.parse_caption(caption)) not in held
    # while every object still appears first and second along both axes in training
    roles = {(c[0], c[1], 0) for c in comps} | {(c[2], c[1], 1) for c in comps}
    assert len(roles) == len(shapes.OBJECTS) * 2 * 2


def test_the_test_split_has_both_kinds_and_flags_them_right():
    held = shapes.heldout_compositions()
    test = shapes.captioned_shapes(800, seed=1, split="test", image_size=16)
    for i in range(len(test)):
        comp = shapes.composition_of(test.row(i))
        assert test.heldout[i] == (comp in held)
    two = test.n_objects == 2
    assert 0.35 < test.heldout[two].mean() < 0.65
    # the held-out set depends on the split seed only, not on the seed of the images
    assert shapes.heldout_compositions(0.2, 0) == held != shapes.heldout_compositions(0.2, 1)


def test_captions_parse_back_to_their_scene_and_the_pixels_agree():
    sc = shapes.captioned_shapes(200, seed=5, split="any", image_size=32)
    for i in range(len(sc)):
        assert sc.caption[i] in sc.captions[i]
        for caption in sc.captions[i]:
            assert shapes.parse_caption(caption) == sc.row(i), caption
    # the first object is the upper (or left) one, in its colour
    colours = np.array(list(shapes.COLOURS.values()))
    for i in np.flatnonzero(sc.n_objects == 2)[:40]:
        img, axis = sc.images[i], shapes.AXES[sc.axis[i]]
        dist = np.linalg.norm(img[..., None, :] - colours, axis=-1)
        near = dist.min(-1) < 0.2
        idx = np.argwhere(near & (dist.argmin(-1) == sc.colour1[i]))
        idx2 = np.argwhere(near & (dist.argmin(-1) == sc.colour2[i]))
        if sc.colour1[i] != sc.colour2[i]:
            k = 0 if axis == "vertical" else 1
            assert idx[:, k].mean() < idx2[:, k].mean(), sc.caption[i]


def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match="split"):
        shapes.captioned_shapes(4, split="validation")
    with pytest.raises(ValueError, match="image_size"):
        shapes.captioned_shapes(4, image_size=8)
    with pytest.raises(ValueError, match="not a caption"):
        shapes.parse_caption("a purple circle")
    with pytest.raises(ValueError, match="fraction"):
        shapes.heldout_compositions(0.7)


# --------------------------------------------------------------------------- tokenizer, recall


def test_tokenizer_round_trip_and_errors():
    tok = Tokenizer(shapes.vocabulary(), context=12)
    text = ["a small red circle to the left of a large blue square", "one large green triangle"]
    ids = tok.encode(text)
    assert ids.shape == (2, 12) and ids.dtype == np.int32 and (ids[1, 4:] == 0).all()
    assert tok.decode(ids) == text and tok.vocab_size == len(shapes.vocabulary()) + 1
    with pytest.raises(ValueError, match="purple"):
        tok.encode(["a small purple circle"])
    with pytest.raises(ValueError, match="context"):
        Tokenizer(shapes.vocabulary(), context=3).encode(["a small red circle"])


def test_recall_at_k_against_a_loop():
    rng = np.random.default_rng(0)
    sim = rng.normal(size=(30, 40))
    rel = rng.random((30, 40)) < 0.05
    for k in (1, 5):
        want = np.mean([rel[i, np.argsort(-sim[i])[:k]].any() for i in range(30)])
        assert recall_at_k(sim, rel, k) == pytest.approx(want)
    assert recall_at_k(np.eye(4), np.eye(4), 1) == 1.0
    with pytest.raises(ValueError):
        recall_at_k(sim, rel[:3], 1)


# --------------------------------------------------------------------------- on each backend

CHECKS = """
    import numpy as np, keras
    from keras import ops
    from gdlbook import set_seed, multimodal, diffusion, transformer
    from gdlbook.data import shapes

    set_seed(0)
    np_ = ops.convert_to_numpy
    rng = np.random.default_rng(0)
    out = {}

    # the contrastive loss, and its value for a batch of perfect pairs
    a = rng.normal(size=(6, 5)); a /= np.linalg.norm(a, axis=1, keepdims=True)
    b = rng.normal(size=(6, 5)); b /= np.linalg.norm(b, axis=1, keepdims=True)
    out["loss"] = float(np_(multimodal.contrastive_loss(a.astype("float32"),
                                                        b.astype("float32"), 7.5)))
    out["loss_same"] = float(np_(multimodal.contrastive_loss(np.eye(6, dtype="float32"),
                                                             np.eye(6, dtype="float32"), 50.0)))

    # encoder attention: no causal mask, padding hidden
    block = transformer.TransformerBlock(16, 2, causal=False)
    x = rng.normal(size=(2, 5, 16)).astype("float32")
    y = np_(block(x))
    x2 = x.copy(); x2[:, 4] += rng.normal(size=(2, 16))
    out["first_sees_last"] = float(np.abs(np_(block(x2))[:, 0] - y[:, 0]).max())
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 0]], bool)
    ym = np_(block(x, key_mask=mask))
    x3 = x.copy(); x3[0, 3:] = 5.0; x3[1, 4] = -5.0
    out["padding_unseen"] = float(np.abs(np_(block(x3, key_mask=mask))[0, :3] - ym[0, :3]).max()
                                  + np.abs(np_(block(x3, key_mask=mask))[1, :4] - ym[1, :4]).max())
    causal = transformer.TransformerBlock(16, 2)
    yc = np_(causal(x))
    out["causal_default"] = float(np.abs(np_(causal(x2))[:, :4] - yc[:, :4]).max())

    # a tiny CLIP learns to match captions with images
    tok = multimodal.Tokenizer(shapes.vocabulary(), context=12)
    data = shapes.captioned_shapes(256, seed=0, image_size=16)
    tokens = tok.encode(data.caption)
    clip = multimodal.CLIP(multimodal.build_image_encoder(16, (16, 32), 32),
                           multimodal.TextEncoder(tok.vocab_size, 12, 1, 2, 32, 32))
    clip.compile(optimizer=keras.optimizers.Adam(1e-3))
    inputs = {"images": data.images, "tokens": tokens}
    before = float(np_(clip.compute_loss(y_pred=clip(inputs))))
    h = clip.fit(inputs, batch_size=64, epochs=25, verbose=0)
    after = float(np_(clip.compute_loss(y_pred=clip(inputs))))
    out["clip"] = dict(before=before, after=after, scale=float(np_(clip.logit_scale())),
                       log_n=float(np.log(256)))
    ti = clip.encode_texts(tokens[:4]); im = clip.encode_images(data.images[:4])
    out["unit_norm"] = float(np.abs(np.linalg.norm(ti, axis=1) - 1).max()
                             + np.abs(np.linalg.norm(im, axis=1) - 1).max())
    # adding padding (a longer context) does not change a text's embedding
    tok16 = multimodal.Tokenizer(shapes.vocabulary(), context=16)
    long = tok16.encode(data.caption[:4])[:, :12]
    out["pad_invariant"] = float(np.abs(clip.encode_texts(long) - ti).max())

    # FiLM starts as the identity; the conditional U-Net and guided sampling
    film = diffusion.FiLM()
    feats = rng.normal(size=(2, 4, 4, 3)).astype("float32")
    out["film_identity"] = float(np.abs(np_(film([feats, rng.normal(size=(2, 5)).astype(
        "float32")])) - feats).max())
    net = diffusion.build_unet(16, (8, 16), 1, 16, condition_dims=6, norm_momentum=0.9)
    out["unet_inputs"] = [list(i.shape[1:]) for i in net.inputs]
    model = diffusion.ConditionalDiffusionModel(net, seed=1, condition_dropout=0.2,
                                                noise_loss="mae")
    images = data.images[:64]
    conds = rng.normal(size=(64, 6)).astype("float32")
    model.normalizer.adapt(images)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    h = model.fit({"images": images, "conditions": conds}, batch_size=32, epochs=2, verbose=0)
    out["cond_loss"] = h.history["loss"]
    # the two noise losses, against NumPy
    e1 = rng.normal(size=(2, 16, 16, 3)).astype("float32")
    e2 = rng.normal(size=(2, 16, 16, 3)).astype("float32")
    mse_model = diffusion.ConditionalDiffusionModel(net, seed=1)
    out["loss_default"] = mse_model.noise_loss
    out["mse_err"] = abs(float(np_(mse_model.compute_loss(y_pred=(e1, e2))))
                         - float(np.mean((e1 - e2) ** 2)))
    out["mae_err"] = abs(float(np_(model.compute_loss(y_pred=(e1, e2))))
                         - float(np.mean(np.abs(e1 - e2))))
    try:
        diffusion.DiffusionModel(diffusion.build_unet(16, (8, 16), 1, 16), noise_loss="l3")
        out["bad_loss"] = "no error"
    except ValueError as err:
        out["bad_loss"] = str(err)
    xn = rng.normal(size=(3, 16, 16, 3)).astype("float32")
    v = np.full((3, 1, 1, 1), 0.5, "float32")
    c = conds[:3]
    e_c = np.asarray(net.predict_on_batch([xn, v, c]))
    e_u = np.asarray(net.predict_on_batch([xn, v, np.zeros_like(c)]))
    out["cfg_err"] = float(np.abs(model.guided_noise(xn, v, c, 3.0)
                                  - (e_u + 3.0 * (e_c - e_u))).max())
    out["cfg_gap"] = float(np.abs(e_c - e_u).max())
    s1 = model.generate(xn, c, 4, guidance_scale=2.0)
    s2 = model.generate(xn, c, 4, guidance_scale=2.0, batch_size=2)
    s0 = model.generate(xn, c, 4, guidance_scale=0.0)
    out["gen"] = dict(shape=list(s1.shape), finite=bool(np.isfinite(s1).all()),
                      chunks=float(np.abs(s1 - s2).max()), scale_matters=float(np.abs(s1 - s0).max()))
    try:
        model.generate(xn, c[:2], 4)
        out["bad_cond"] = "no error"
    except ValueError as err:
        out["bad_cond"] = str(err)
    RESULT.update(out)
"""


@pytest.fixture(scope="module", params=BACKENDS)
def run(request):
    return run_snippets(request.param, CHECKS, timeout=600)


def _reference_loss(a, b, scale):
    """CLIP's pseudocode in NumPy: cross-entropy of each row and each column of the logits."""
    logits = scale * a @ b.T
    def ce(z):
        z = z - z.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        return -np.mean(np.diag(logp))
    return 0.5 * (ce(logits) + ce(logits.T))


def test_contrastive_loss_matches_numpy(run):
    rng = np.random.default_rng(0)
    a = rng.normal(size=(6, 5)); a /= np.linalg.norm(a, axis=1, keepdims=True)
    b = rng.normal(size=(6, 5)); b /= np.linalg.norm(b, axis=1, keepdims=True)
    assert run["loss"] == pytest.approx(_reference_loss(a, b, 7.5), rel=1e-5)
    assert run["loss_same"] < 1e-6   # perfect, confident pairs cost nothing


def test_encoder_attention_sees_everything_but_padding(run):
    assert run["first_sees_last"] > 1e-3       # not causal
    assert run["padding_unseen"] < 1e-5        # the key mask hides padding
    assert run["causal_default"] < 1e-5        # the default block stays causal


def test_clip_learns_and_embeds_on_the_sphere(run):
    clip = run["clip"]
    assert clip["before"] > 0.8 * clip["log_n"]    # starts near chance: log(256)
    assert clip["after"] < clip["log_n"] - 0.7, clip   # below chance: it matches pairs
    assert 1.0 < clip["scale"] <= 100.0 + 1e-3
    assert run["unit_norm"] < 1e-4 and run["pad_invariant"] < 1e-4


def test_film_conditional_unet_and_guidance(run):
    assert run["film_identity"] < 1e-6
    assert run["unet_inputs"] == [[16, 16, 3], [1, 1, 1], [6]]
    assert all(np.isfinite(run["cond_loss"])) and run["cond_loss"][-1] < 0.85
    assert run["cfg_err"] < 1e-4 and run["cfg_gap"] > 0   # the formula, on a network that cares
    gen = run["gen"]
    assert gen["shape"] == [3, 16, 16, 3] and gen["finite"]
    assert gen["chunks"] < 1e-4 and gen["scale_matters"] > 1e-4
    assert "conditions must be" in run["bad_cond"]


def test_noise_losses_match_numpy(run):
    assert run["loss_default"] == "mse"   # chapter 13's conditional model: the mean, not the median
    assert run["mse_err"] < 1e-5 and run["mae_err"] < 1e-5
    assert "unknown noise_loss" in run["bad_loss"]
