"""Tiles of a photo for the network: their layout, their blending weights, and the
tiled forward pass inside a graph (the served one). The layout and the weights are
TensorFlow ops, so the Python path (`deblurring.predict_tiled`, one tile at a time
with progress) and the served graph (`tiled_in_graph`) cut the same tiles and blend
them with the same weights.

Tiles are at most `tile_size` on a side, as few as fit and all of one size, spread
evenly from edge to edge so that neighbours share at least `overlap` pixels; each is
weighted by raised-cosine ramps over the shared pixels, divided by the weights' sum
along each side, so that every pixel's weights add up to 1.
"""

import math

import numpy as np
import tensorflow as tf

# Tile sides are rounded up to this multiple (the largest network size multiple), so
# no tile is padded inside the network.
TILE_MULTIPLE = 8


def check_tiling(tile_size, overlap):
    """ValueError unless `tile_size` is a whole number of pixels above 2 x `overlap`
    and `overlap` is at least 0 (neighbouring tiles share `overlap` pixels)."""
    if not isinstance(tile_size, (int, np.integer)) or tile_size < 1:
        raise ValueError(f"tile_size must be a positive number of pixels, got {tile_size!r}")
    if not isinstance(overlap, (int, np.integer)) or not 0 <= overlap < tile_size / 2:
        raise ValueError(f"overlap must be in [0, tile_size / 2), got {overlap!r} for "
                         f"tile_size {tile_size}")


def tile_layout(size, tile_size, overlap):
    """Tiles covering [0, size) along one side.

    Args:
        size: int or int32 scalar tensor, the side's length.
        tile_size, overlap: int (`check_tiling`).

    Returns:
        (origins int32 (count,), length int32 scalar): as few tiles as `tile_size`
        allows, all `length` long (a multiple of `TILE_MULTIPLE` when that fits), the
        first at 0 and the last ending at `size`.
    """
    size = tf.convert_to_tensor(size, tf.int32)
    count = tf.maximum(1, -((overlap - size) // (tile_size - overlap)))
    length = -(-(size + (count - 1) * overlap) // count)
    rounded = -(-length // TILE_MULTIPLE) * TILE_MULTIPLE
    length = tf.where((count > 1) & (rounded <= tile_size), rounded, length)
    origins = tf.range(count) * (size - length) // tf.maximum(count - 1, 1)
    return origins, length


def blend_weights(size, tile_size, overlap):
    """Along one side: the tiles' origins (`tile_layout`) and their 1-D weights,
    float32 (count, length): raised-cosine ramps over min(overlap, length / 2)
    pixels where a tile meets another, 1 elsewhere, divided by their sum over the
    tiles (each pixel's weights along the side add up to 1)."""
    size = tf.convert_to_tensor(size, tf.int32)
    origins, length = tile_layout(size, tile_size, overlap)
    ramp = tf.minimum(overlap, length // 2)
    position = tf.range(length)
    rising = 0.5 - 0.5 * tf.cos(math.pi * (tf.cast(position, tf.float32) + 0.5)
                                / tf.cast(tf.maximum(ramp, 1), tf.float32))
    start = tf.where(position < ramp, rising, 1.0)  # the ramp up, then flat
    end = tf.reverse(start, [0])
    weights = (tf.where(origins[:, None] > 0, start[None], 1.0)
               * tf.where(origins[:, None] + length < size, end[None], 1.0))
    pixels = origins[:, None] + position[None]
    total = tf.math.unsorted_segment_sum(weights, pixels, size)
    return origins, weights / tf.gather(total, pixels)


def tiled_in_graph(network, views, tile_size, overlap):
    """`network` on float32 views (n, h, w, 3) (one, or the dual triple) in blended
    tiles, inside a graph (a `tf.while_loop`, one tile at a time): peak memory
    follows the tile, plus the photo's float buffers. Returns float32 (n, h, w, 3)."""
    height, width = tf.shape(views[0])[1], tf.shape(views[0])[2]
    rows, row_weights = blend_weights(height, tile_size, overlap)
    cols, col_weights = blend_weights(width, tile_size, overlap)
    tile_height, tile_width = tf.shape(row_weights)[1], tf.shape(col_weights)[1]
    count = tf.size(rows) * tf.size(cols)

    def one_tile(index, total):
        row, col = index // tf.size(cols), index % tf.size(cols)
        top, left = rows[row], cols[col]
        tiles = [tf.slice(view, [0, top, left, 0], [-1, tile_height, tile_width, -1])
                 for view in views]
        weight = row_weights[row][:, None, None] * col_weights[col][None, :, None]
        blended = network(tiles) * weight
        return index + 1, total + tf.pad(blended, [
            [0, 0], [top, height - top - tile_height], [left, width - left - tile_width],
            [0, 0]])

    _, total = tf.while_loop(lambda index, _: index < count, one_tile,
                             [tf.constant(0), tf.zeros_like(views[0])],
                             shape_invariants=[tf.TensorShape([]),
                                               tf.TensorShape([None, None, None, 3])],
                             parallel_iterations=1)
    return total
