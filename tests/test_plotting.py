import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from gdlbook import plotting  # noqa: E402


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


@pytest.mark.parametrize("x, lo, hi", [
    (np.array([[[0, 128, 255]]], dtype=np.uint8), 0.0, 1.0),
    (np.linspace(0, 1, 12).reshape(1, 3, 4), 0.0, 1.0),
    (np.linspace(-1, 1, 12).reshape(1, 3, 4), 0.0, 1.0),
    (np.linspace(-7, 30, 12).reshape(1, 3, 4), 0.0, 1.0),
])
def test_to_display_maps_any_range_to_unit_interval(x, lo, hi):
    d = plotting.to_display(x)
    assert d.dtype == np.float32 and d.min() == pytest.approx(lo) and d.max() == pytest.approx(hi)


def test_to_display_values_and_shapes():
    x = np.array([[[-1.0, 0.0, 1.0]]])
    np.testing.assert_allclose(plotting.to_display(x)[0, 0], [0, 0.5, 1])
    assert plotting.to_display(np.zeros((5, 8, 8, 1))).shape == (5, 8, 8)
    assert plotting.to_display(np.zeros((5, 8, 8, 3), np.uint8)).shape == (5, 8, 8, 3)
    assert plotting.to_display(np.zeros((8, 8))).shape == (1, 8, 8)
    # explicit range, values outside it are clipped
    np.testing.assert_allclose(plotting.to_display(np.array([[[-5.0, 5.0, 10.0]]]), (0, 10))[0, 0],
                               [0, 0.5, 1])
    # a constant image does not divide by zero
    assert np.isfinite(plotting.to_display(np.full((2, 4, 4), 7.0))).all()


@pytest.mark.parametrize("shape", [(4, 8, 8, 2), (8,), (2, 3, 4, 5, 3)])
def test_to_display_rejects_bad_shapes(shape):
    with pytest.raises(ValueError, match="expected images"):
        plotting.to_display(np.zeros(shape))


def test_to_display_rejects_bad_range():
    with pytest.raises(ValueError, match="increasing"):
        plotting.to_display(np.zeros((1, 2, 2)), (1, 1))


@pytest.mark.parametrize("images", [np.random.rand(7, 8, 8), np.random.randint(0, 256, (7, 8, 8, 3), np.uint8)])
def test_image_grid_layout(images):
    fig = plotting.image_grid(images, ncols=4, titles=list("abcdefg"))
    axes = fig.axes
    assert len(axes) == 8  # 2 rows × 4 columns, the last one empty
    shown = [ax for ax in axes if ax.images]
    assert len(shown) == 7 and shown[0].get_title() == "a"
    arr = shown[0].images[0].get_array()
    assert arr.shape[:2] == (8, 8) and float(np.min(arr)) >= 0 and float(np.max(arr)) <= 1


def test_image_grid_title_lines_and_colours():
    one = plotting.image_grid(np.zeros((2, 8, 8)), titles=["a", "b"])
    two = plotting.image_grid(np.zeros((2, 8, 8)), titles=["a\nx", "b\ny"], title_colors=["k", "red"])
    assert two.get_figheight() > one.get_figheight()
    assert two.axes[1].title.get_color() == "red"
    with pytest.raises(ValueError, match="titles"):
        plotting.image_grid(np.zeros((2, 8, 8)), titles=["a"])


def test_image_grid_empty():
    with pytest.raises(ValueError, match="no images"):
        plotting.image_grid(np.zeros((0, 4, 4)))


class _History:
    def __init__(self, h):
        self.history = h


def test_training_curves_single_and_compared():
    h = _History({"loss": [3, 2, 1], "val_loss": [3.5, 2.5, 2], "accuracy": [0.1, 0.2, 0.3]})
    fig = plotting.training_curves(h)
    assert [ax.get_title() for ax in fig.axes] == ["loss", "accuracy"]
    assert len(fig.axes[0].lines) == 2
    np.testing.assert_allclose(fig.axes[0].lines[0].get_ydata(), [3, 2, 1])
    ticks = fig.axes[0].get_xticks()
    assert np.allclose(ticks, np.round(ticks)), "epochs are whole numbers"
    fig = plotting.training_curves({"MLP": h, "CNN": h.history}, metrics=["loss"])
    assert len(fig.axes) == 1 and len(fig.axes[0].lines) == 4
    with pytest.raises(TypeError):
        plotting.training_curves([1, 2, 3])


def test_latent_scatter():
    z = np.random.randn(50, 2)
    y = np.arange(50) % 3
    fig = plotting.latent_scatter(z, y, class_names=["a", "b", "c"])
    ax = fig.axes[0]
    assert len(ax.collections) == 3
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["a", "b", "c"]
    assert sum(len(c.get_offsets()) for c in ax.collections) == 50
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        plotting.latent_scatter(np.zeros((5, 3)))
    with pytest.raises(ValueError, match="labels"):
        plotting.latent_scatter(z, y[:10])
