"""kpac_tf.deploy.tiling: the tiles' layout and weights, and the tiled pass in a graph,
the same as the Python path's."""

import numpy as np
import pytest
import tensorflow as tf

from kpac_tf import build_model
from kpac_tf.deploy import tiling
from kpac_tf.deploy.deblurring import Deblurrer
from kpac_tf.deploy.tiling import predict_tiled


@pytest.mark.parametrize("size,tile_size,overlap", [
    (150, 64, 16), (230, 64, 16), (3000, 1024, 64), (4000, 1024, 64), (6000, 1024, 64),
    (1025, 1024, 64), (100, 8, 2), (97, 13, 6), (1000, 1000, 64)])
def test_tiles_are_as_few_as_fit_of_one_size_and_spread_evenly(size, tile_size, overlap):
    """Catches the layout that made a 12 MP photo 20 tiles of 1024 px (21 MP of
    network work, the last ones overlapping by up to 968 px): tiles of one length
    within tile_size, a multiple of 8 where that fits, covering the side, each
    neighbour sharing at least `overlap` pixels, no fewer tiles possible."""
    origins, length = tiling.tile_layout(size, tile_size, overlap)
    origins, length = origins.numpy().tolist(), int(length)
    assert length <= min(size, tile_size) and origins[0] == 0
    assert origins[-1] + length == size
    shared = [length - (b - a) for a, b in zip(origins, origins[1:])]
    assert all(share >= overlap for share in shared)
    assert max(shared, default=0) - min(shared, default=0) <= 1  # evenly spread
    count = len(origins)
    assert count == 1 or (count - 1) * (tile_size - overlap) + overlap < size
    if count > 1 and tile_size >= 8:
        assert length % 8 == 0 or -(-length // 8) * 8 > tile_size
    if (size, tile_size) == (3000, 1024):
        assert (count, length) == (4, 800)  # 3200 rows of work for 3000, not 4096


@pytest.mark.parametrize("size,tile_size,overlap", [
    (150, 64, 16), (97, 13, 6), (3000, 1024, 64), (64, 64, 16), (5, 64, 16), (71, 9, 0)])
def test_each_pixels_weights_add_up_to_one(size, tile_size, overlap):
    """Catches weights that leave a pixel uncovered or counted twice: along a side
    they sum to 1 everywhere (so a product of a row's and a column's does too)."""
    origins, weights = (t.numpy() for t in tiling.blend_weights(size, tile_size, overlap))
    total = np.zeros(size)
    for origin, weight in zip(origins, weights):
        total[origin:origin + len(weight)] += weight
    np.testing.assert_allclose(total, 1.0, rtol=0, atol=1e-6)
    assert (weights > 0).all() or overlap == 0


def test_the_graph_tiles_as_the_python_path(rng):
    """The served graph's tiled pass (a while loop) equals `predict_tiled` within
    1e-5, for a network whose output depends on context."""
    model = build_model("single_3level", channels=4)
    deblurrer = Deblurrer.from_keras(model)
    image = rng.uniform(-1, 1, (1, 150, 230, 3)).astype(np.float32)
    expected = predict_tiled(deblurrer, image, 64, 16)
    network = tf.function(lambda views: deblurrer.network(views[0]))
    graph = tf.function(lambda x: tiling.tiled_in_graph(network, [x], 64, 16))
    np.testing.assert_allclose(graph(image).numpy(), expected, atol=1e-5, rtol=0)
