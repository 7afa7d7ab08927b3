"""Tiles of a photo for the network: their layout, their blending weights, the tiled
forward pass in Python (`predict_tiled`, one tile at a time with progress) and inside
a graph (`tiled_in_graph`, the served one), and the memory either way takes
(`memory_needed`). The layout and the weights are TensorFlow ops, so both paths cut
the same tiles and blend them with the same weights.

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
# Pixels neighbouring tiles share by default. A tile's output differs from the whole
# photo's most near its edges (the network reaches far, and its shape attention pools
# over the whole tile): on five photos at 3000x2000 in 1024-px tiles, overlap 96 gave
# 3.8 dB more tile-vs-whole PSNR on average than 64 for 6% more network work at 24 MP
# (128: 1.5 dB more again, for 6% more). benchmarks/tiled_memory.py measures it.
OVERLAP = 96


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
    tiles, inside a graph (`tf.while_loop`s, one tile at a time): peak memory follows
    the tile, plus the photo's float buffers. Each row of tiles is summed into a strip
    as tall as a tile and the strips into the photo, so a tile costs its strip's
    pixels, not the photo's. Returns float32 (n, h, w, 3)."""
    batch, height, width = (tf.shape(views[0])[i] for i in range(3))
    rows, row_weights = blend_weights(height, tile_size, overlap)
    cols, col_weights = blend_weights(width, tile_size, overlap)
    tile_height, tile_width = tf.shape(row_weights)[1], tf.shape(col_weights)[1]
    any_image = [tf.TensorShape([]), tf.TensorShape([None, None, None, 3])]

    def one_row(row, total):
        top = rows[row]

        def one_tile(col, strip):
            left = cols[col]
            tiles = [tf.slice(view, [0, top, left, 0], [-1, tile_height, tile_width, -1])
                     for view in views]
            weight = row_weights[row][:, None, None] * col_weights[col][None, :, None]
            blended = network(tiles) * weight
            return col + 1, strip + tf.pad(
                blended, [[0, 0], [0, 0], [left, width - left - tile_width], [0, 0]])

        _, strip = tf.while_loop(lambda col, _: col < tf.size(cols), one_tile,
                                 [tf.constant(0), tf.zeros([batch, tile_height, width, 3])],
                                 shape_invariants=any_image, parallel_iterations=1)
        return row + 1, total + tf.pad(
            strip, [[0, 0], [top, height - top - tile_height], [0, 0], [0, 0]])

    _, total = tf.while_loop(lambda row, _: row < tf.size(rows), one_row,
                             [tf.constant(0), tf.zeros_like(views[0])],
                             shape_invariants=any_image, parallel_iterations=1)
    return total


# Peak memory of deblurring one photo, per pixel, beyond the model itself: measured
# with the bundled single_3level in float32 on 1.5-24 MP photos (bfloat16 takes about
# 370 bytes per pixel whole); benchmarks/tiled_memory.py measures it again.
WHOLE_BYTES_PER_PIXEL = 700   # the network on the whole photo
TILED_BYTES_PER_PIXEL = 65    # the photo's float buffers while tiles run


def memory_needed(height, width, tile_size=None):
    """Bytes deblurring a height x width photo takes at its peak, whole (`tile_size`
    None) or in tiles (the photo's buffers plus one tile run whole)."""
    if tile_size is None:
        return height * width * WHOLE_BYTES_PER_PIXEL
    tile = min(tile_size, height) * min(tile_size, width)
    return height * width * TILED_BYTES_PER_PIXEL + tile * WHOLE_BYTES_PER_PIXEL


def predict_tiled(deblurrer, inputs, tile_size, overlap=OVERLAP, on_tile=None):
    """Runs `deblurrer` tile by tile and blends overlapping tiles smoothly.

    Peak memory follows the tile, not the photo. The tiles and their weights are the
    served graph's (`tiled_in_graph`): at most `tile_size` on a side,
    as few as fit and all of one size, overlapping by at least `overlap` pixels and
    blended with raised-cosine weights, so no seam shows.

    Args:
        deblurrer: `Deblurrer`.
        inputs: numpy float32 (1, h, w, 3) in [-1, 1], or the dual triple.
        tile_size: int, tile side in pixels.
        overlap: int, pixels shared by neighbouring tiles (< tile_size / 2).
        on_tile: callable or None, called as `on_tile(done, total)` after each tile
            (progress for a page or a bar).

    Returns:
        numpy float32 (1, h, w, 3).
    """
    views = inputs if isinstance(inputs, (tuple, list)) else (inputs,)
    height, width = views[0].shape[1:3]
    check_tiling(tile_size, overlap)
    rows, row_weights = (t.numpy() for t in blend_weights(height, tile_size, overlap))
    cols, col_weights = (t.numpy() for t in blend_weights(width, tile_size, overlap))
    total = np.zeros((1, height, width, 3), np.float32)
    tiles = [(row, col) for row in range(len(rows)) for col in range(len(cols))]
    for done, (row, col) in enumerate(tiles, 1):
        top, left = rows[row], cols[col]
        wy, wx = row_weights[row], col_weights[col]
        window = (slice(None), slice(top, top + len(wy)), slice(left, left + len(wx)))
        tile_views = tuple(v[window] for v in views)
        out = np.asarray(deblurrer.network(tile_views if len(views) == 3
                                           else tile_views[0]))
        total[window] += out * (wy[:, None, None] * wx[None, :, None])
        if on_tile is not None:
            on_tile(done, len(tiles))
    return total
