"""kpac_tf.deblur: any size, dtype and channel layout; tiling without seams."""

import numpy as np
import pytest
import tensorflow as tf

from kpac_tf import build_model, deblur
from kpac_tf.deploy.deblurring import Deblurrer, predict_tiled
from kpac_tf.models.forward import pad_to_multiple


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
    expected = model(padded).numpy()[:, :101, :157]
    expected = np.clip(np.round((expected + 1) * 127.5), 0, 255).astype(np.uint8)[0]
    np.testing.assert_array_equal(deblur(model, image), expected)


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


def test_tiny_images_are_padded_by_replication(model):
    tiny = np.arange(3 * 5 * 3, dtype=np.float32).reshape(1, 3, 5, 3)
    padded, size = pad_to_multiple(tiny, 8)
    padded = padded.numpy()
    assert padded.shape == (1, 8, 8, 3) and tuple(int(n) for n in size) == (3, 5)
    np.testing.assert_array_equal(padded[:, :3, :5], tiny)
    np.testing.assert_array_equal(padded[:, 3:, :5], np.repeat(tiny[:, 2:3], 5, axis=1))
    np.testing.assert_array_equal(padded[:, :, 5:], np.repeat(padded[:, :, 4:5], 3, axis=2))
    # Large enough to reflect: the rows and columns past the edge mirror those before it.
    small = np.arange(6 * 7 * 3, dtype=np.float32).reshape(1, 6, 7, 3)
    mirrored = pad_to_multiple(small, 8)[0].numpy()
    np.testing.assert_array_equal(mirrored[:, 6:, :7], small[:, [4, 3]])
    np.testing.assert_array_equal(mirrored[:, :6, 7:], small[:, :, [5]])
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
    np.testing.assert_array_equal(deblur(identity_model, image, tile_size=64, overlap=16),
                                  image)


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
