"""kpac_tf.deploy.deblurring: deblur at any size, dtype and channel layout; tiling
without seams."""

import re

import keras
import numpy as np
import pytest
import tensorflow as tf

import kpac_tf
from kpac_tf import build_model, deblur
from kpac_tf.deploy.deblurring import Deblurrer, NonFiniteOutput
from kpac_tf.deploy.export import export_saved_model
from kpac_tf.deploy.tiling import predict_tiled


@pytest.fixture(scope="module")
def tiny():
    """A Deblurrer of a narrow single_2level (fast)."""
    return Deblurrer.from_keras(build_model("single_2level", channels=4))


@pytest.mark.parametrize("shape,dtype", [
    ((37, 50, 3), np.uint8), ((2, 21, 30, 3), np.uint8), ((21, 30, 3), np.uint16),
    ((2, 21, 30, 3), np.uint16),
])
def test_photos_come_back_in_their_dtype_and_shape(tiny, rng, shape, dtype):
    image = rng.randint(0, np.iinfo(dtype).max + 1, shape).astype(dtype)
    out = tiny(image)
    assert out.dtype == dtype and out.shape == shape
    np.testing.assert_array_equal(out, kpac_tf.deblur(tiny, image))


def test_network_output_is_clipped_from_keras_as_from_a_saved_model(rng, tmp_path):
    """A network whose output leaves [-1, 1] gives the same clipped floats whether
    the Deblurrer wraps its Keras model or its export."""
    model = build_model("single_2level", channels=4)
    last = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)][-1]
    last.bias.assign(last.bias + 3.0)
    x = rng.uniform(-1, 1, (1, 16, 24, 3)).astype(np.float32)
    assert model(x).numpy().max() > 1.5
    from_keras = Deblurrer.from_keras(model).network(x).numpy()
    served = kpac_tf.load_deblurrer(export_saved_model(model, str(tmp_path / "s")))
    assert from_keras.min() >= -1 and from_keras.max() == 1.0
    np.testing.assert_allclose(from_keras, served.network(x).numpy(), atol=2e-6)


def test_floats_keep_the_network_contract(tiny, rng):
    x = rng.uniform(-1, 1, (2, 24, 32, 3)).astype(np.float32)
    expected = np.clip(tiny.keras_model(x).numpy(), -1, 1)
    np.testing.assert_allclose(tiny(x), expected, atol=1e-5)
    single = tiny(x[0])
    assert single.dtype == np.float32 and single.shape == (24, 32, 3)
    np.testing.assert_allclose(single, expected[0], atol=1e-5)


@pytest.mark.parametrize("bad,shown", [
    (np.zeros((8, 8, 3), np.int32), "int32 (8, 8, 3)"),
    (np.zeros((8, 8, 2), np.float32), "float32 (8, 8, 2)"),
    (np.zeros((1, 2, 8, 8, 3), np.uint8), "uint8 (1, 2, 8, 8, 3)"),
    (np.zeros((8, 8, 5), np.uint8), "uint8 (8, 8, 5)"),
    ((np.zeros((8, 8, 3), np.uint8),) * 3, "one image, a numpy array (h, w, c) or (n, h, w, "
                                           "c); got a tuple of 3 items"),
    ([[[0, 0, 0]] * 8] * 8, "got a list of 8 items (an image held in nested lists: "
                            "np.asarray(image, np.uint8) first)"),
    (np.zeros((0, 0, 3), np.uint8), "an empty image, uint8 (0, 0, 3); images and batches "
                                    "need at least one pixel"),
    (np.zeros((0, 8, 8, 3), np.uint8), "an empty image, uint8 (0, 8, 8, 3)"),
    (np.zeros((4, 0), np.uint16), "an empty image, uint16 (4, 0)"),
    (np.zeros((0, 8, 8, 3), np.float32), "an empty image, float32 (0, 8, 8, 3)"),
    (np.full((8, 8, 3), 255.0, np.float32), "network-range input runs from 255 to 255; it "
                                            "takes floats in [-1, 1]"),
    (np.linspace(0, 1.5, 192, dtype=np.float32).reshape(8, 8, 3),
     "network-range input runs from 0 to 1.5"),
    (np.where(np.eye(8)[..., None], np.nan, 0).repeat(3, -1).astype(np.float32),
     "network-range input holds 24 values that are NaN or inf"),
])
def test_wrong_inputs_say_what_was_given_and_what_is_expected(tiny, bad, shown):
    with pytest.raises(ValueError, match=re.escape(shown)):
        tiny(bad)


def test_the_dual_network_says_what_it_was_given(rng):
    dual = Deblurrer.from_keras(build_model("dual", channels=4))
    view = rng.randint(0, 256, (8, 8, 3)).astype(np.uint8)
    for given, shown in ((view, "one array"), ([view, view], "a list of 2 items")):
        with pytest.raises(ValueError, match=re.escape(
                f"dual takes a (center, left, right) tuple of images, got {shown}")):
            dual(given)
    with pytest.raises(ValueError, match=re.escape("an empty image, uint8 (0, 8, 3)")):
        dual((view, view, view[:0]))


def test_a_network_giving_nan_is_named_not_returned_black(rng):
    model = build_model("single_2level", channels=4)
    model.get_layer("d2_2").bias.assign(tf.fill(model.get_layer("d2_2").bias.shape, np.inf))
    photo = rng.randint(0, 256, (16, 16, 3)).astype(np.uint8)
    for source, named in ((None, "the Keras model 'single_2level'"), ("run/", "run/")):
        with pytest.raises(NonFiniteOutput, match=re.escape(
                f"single_2level from {named} gives NaN or inf for a finite image")):
            Deblurrer.from_keras(model, source=source)(photo, tile_size=8, overlap=2)


@pytest.fixture(scope="module")
def identity_model():
    """A network whose residual is zero: its output is its input."""
    model = build_model("single_2level", channels=4)
    final = model.get_layer("d2_2")
    final.kernel.assign(tf.zeros_like(final.kernel))
    final.bias.assign(tf.zeros_like(final.bias))
    return model


@pytest.fixture(scope="module")
def model():
    return build_model("single_3level", channels=4)


@pytest.mark.parametrize("shape,dtype", [
    ((101, 157, 3), np.uint8), ((37, 21, 3), np.uint16), ((50, 60), np.uint8),
    ((50, 60, 1), np.uint16), ((33, 45, 4), np.uint8), ((2, 20, 28, 3), np.uint8),
    ((19, 23, 2), np.uint16),
])
def test_identity_network_returns_the_image(identity_model, shape, dtype, rng):
    top = np.iinfo(dtype).max
    image = rng.randint(0, top + 1, shape).astype(dtype)
    out = deblur(identity_model, image)
    assert out.dtype == dtype and out.shape == image.shape
    np.testing.assert_array_equal(out, image)  # 16-bit keeps all 16 bits


def test_any_size_equals_padding_by_reflection(model, rng):
    image = rng.randint(0, 256, (101, 157, 3)).astype(np.uint8)
    x = image.astype(np.float32)[None] / 127.5 - 1
    padded = np.pad(x, ((0, 0), (0, 3), (0, 3), (0, 0)), mode="reflect")  # to 104x160
    expected = np.clip(model(padded).numpy()[:, :101, :157], -1, 1)
    # The Deblurrer runs the fast path (the same network summed in another order):
    # equal to float rounding, and so at most one 8-bit level apart after rounding.
    np.testing.assert_allclose(Deblurrer.from_keras(model)(x), expected, atol=2e-5)
    levels = np.round((expected[0] + 1) * 127.5).astype(int)
    assert np.abs(deblur(model, image).astype(int) - levels).max() <= 1


def test_alpha_passes_through_and_gray_stays_gray(model, rng):
    rgba = rng.randint(0, 256, (24, 40, 4)).astype(np.uint8)
    out = deblur(model, rgba)
    np.testing.assert_array_equal(out[..., 3], rgba[..., 3])
    np.testing.assert_array_equal(out[..., :3], deblur(model, rgba[..., :3]))
    gray = rng.randint(0, 256, (24, 40)).astype(np.uint8)
    assert deblur(model, gray).shape == (24, 40)
    gray_alpha = np.stack([gray, 255 - gray], axis=-1)
    out = deblur(model, gray_alpha)
    np.testing.assert_array_equal(out[..., 0], deblur(model, gray))
    np.testing.assert_array_equal(out[..., 1], gray_alpha[..., 1])


def test_tiny_images_come_back_at_their_size(model):
    """Too small to reflect into a multiple of 4: padded by replication, then cropped."""
    assert deblur(model, np.full((3, 5, 3), 7, np.uint8)).shape == (3, 5, 3)


def test_bad_inputs(model):
    with pytest.raises(ValueError, match="uint8 or uint16"):
        deblur(model, np.zeros((8, 8, 3), np.float32))
    with pytest.raises(ValueError, match="center, left, right"):
        deblur(build_model("dual", channels=4), np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match="overlap"):
        predict_tiled(Deblurrer.from_keras(model), np.zeros((1, 64, 64, 3), np.float32), 32, 16)


def test_dual_takes_three_views(rng):
    views = tuple(rng.randint(0, 256, (30, 44, 3)).astype(np.uint8) for _ in range(3))
    out = deblur(build_model("dual", channels=4), views)
    assert out.shape == (30, 44, 3) and out.dtype == np.uint8


def test_tiles_blend_exactly_for_an_identity_network(identity_model, rng):
    image = rng.randint(0, 65536, (150, 230, 3)).astype(np.uint16)
    seen = []
    np.testing.assert_array_equal(deblur(identity_model, image, tile_size=64, overlap=16,
                                         on_tile=lambda *done: seen.append(done)), image)
    # Progress: 64-px rows at 0, 43, 86 and columns at 0, 41, 83, 124, 166 (spread
    # from edge to edge): 3 x 5 tiles, reported one by one.
    assert seen == [(done, 15) for done in range(1, 16)]


def smooth_image(rng, size=(192, 256)):
    """A photo-like image: smooth colour blobs plus texture, uint8."""
    coarse = rng.uniform(0, 1, (6, 8, 3)).astype(np.float32)
    base = tf.image.resize(coarse[None], size, "bicubic")[0].numpy()
    return np.clip((base * 0.8 + 0.2 * rng.uniform(0, 1, size + (3,))) * 255, 0, 255
                   ).astype(np.uint8)


def context_model():
    """A network with a large residual that depends on context well beyond a tile's
    overlap: random weights of 2.5 times the initial spread, N(0, 0.1)."""
    model = build_model("single_3level", channels=4)
    rng = np.random.RandomState(0)
    model.set_weights([rng.normal(0, 0.1, w.shape).astype(np.float32)
                       for w in model.get_weights()])
    return model


def test_tiled_output_is_close_and_seamless(rng):
    """Catches tiles pasted over each other, cut without overlap or averaged with
    flat weights: a tile alone is wrong near its borders, and only the raised-cosine
    blending keeps that out of the result."""
    deblurrer = Deblurrer.from_keras(context_model())
    image = smooth_image(rng).astype(np.uint16) * 257  # 16 bits: no rounding to hide in

    def network_range(photo):
        return photo / 32767.5 - 1

    whole = network_range(deblur(deblurrer, image))
    assert np.abs(whole - network_range(image)).mean() > 0.05  # a large residual
    alone = network_range(deblur(deblurrer, image[:96, :96]))
    assert np.abs(alone - whole[:96, :96]).max() > 0.1  # tile borders are off
    tiled = network_range(deblur(deblurrer, image, tile_size=96, overlap=32))
    assert np.abs(tiled - whole).max() < 0.02


@pytest.mark.parametrize("level", ["2", "3"])
def test_fast_paths_keep_parity_with_the_authors_graph(reference_dir, level):
    from kpac_tf import fast_predict_fn, load_tf1_npz

    model = load_tf1_npz(build_model(f"single_{level}level"),
                         reference_dir / f"tf1_{level}level_weights.npz")
    io = np.load(reference_dir / f"tf1_{level}level_io.npz")
    out = fast_predict_fn(model)(io["input"]).numpy()
    assert np.max(np.abs(out - io["output"])) <= 1e-4
    low = fast_predict_fn(model, "bfloat16")(io["input"]).numpy()
    # bfloat16 compute: not 1e-4, but far above visible error (as [0, 1] images).
    psnr = 10 * np.log10(1.0 / np.mean(((low - io["output"]) / 2) ** 2))
    assert psnr > 45
    assert model.dtype_policy.name == "float32"  # the original is untouched


def test_bfloat16_deblur_keeps_dtype_and_shape(model, rng):
    image = rng.randint(0, 65536, (37, 45, 3)).astype(np.uint16)
    out = deblur(model, image, precision="bfloat16")
    assert out.dtype == np.uint16 and out.shape == image.shape
    with pytest.raises(ValueError, match="precision"):
        deblur(model, image, precision="float16")
