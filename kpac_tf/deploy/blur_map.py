"""The blur map of a photo: per pixel, the scale-attention-weighted dilation rate of
the network's first KPAC block, i.e. which of its dilations (how large a blur) the
network treats that pixel for (the paper's Figs. 6 and 8). It is an attention map,
not a calibrated depth or blur radius.
"""

import numpy as np

from kpac_tf.data import pixels
from kpac_tf.models.forward import block_attention, weighted_dilation

BLOCK = "kpac_0"
MEANING = ("attention-weighted dilation rate of the first KPAC block: which dilation, "
           "i.e. how large a blur, the network treats each pixel for (an attention map, "
           "not a calibrated depth or blur radius)")


def blur_map(model, photo):
    """The blur map of `photo` for a network.

    Args:
        model: keras.Model from `kpac_tf.build_model` (a `Deblurrer`'s `keras_model`).
        photo: uint8 or uint16 (h, w, 3), or for the dual network the (center, left,
            right) triple.

    Returns:
        (float32 (h, w) in [min rate, max rate], the block's rates (tuple of int)), or
        None when the network has no scale attention.
    """
    views = photo if isinstance(photo, (tuple, list)) else (photo,)
    inputs = tuple(pixels.to_network(np.asarray(view))[None] for view in views)
    maps = block_attention(model, inputs if len(inputs) > 1 else inputs[0]).get(BLOCK)
    if maps is None:
        return None
    rates = model.get_layer(BLOCK).dilation_rates
    return weighted_dilation(maps, rates).astype(np.float32), rates


def draw_blur_map(photo, rates_map, rates, opacity=0.6):
    """A picture of a blur map over its photo: the photo in grey, the map coloured
    over it (viridis: dark blue the smallest rate, yellow the largest) and a legend
    naming what it shows.

    Args:
        photo: uint8 or uint16 (h, w, 3).
        rates_map, rates: `blur_map`'s result.
        opacity: float in [0, 1], the colours' weight over the photo.

    Returns:
        uint8 (H, W, 3) picture (the photo's aspect, about 900 px wide, with the legend).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    grey = np.asarray(pixels.to_unit(np.asarray(photo)), np.float64).mean(-1)
    height, width = grey.shape
    figure = Figure(figsize=(9, 9 * height / width + 1.1), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_axes([0.02, 0.2, 0.96, 0.78])
    axes.imshow(grey, cmap="gray", vmin=0, vmax=1, interpolation="bilinear")
    shown = axes.imshow(rates_map, cmap="viridis", vmin=min(rates), vmax=max(rates),
                        alpha=opacity, interpolation="nearest")
    axes.set_axis_off()
    legend = figure.add_axes([0.1, 0.09, 0.8, 0.035])
    bar = figure.colorbar(shown, cax=legend, orientation="horizontal", ticks=list(rates))
    bar.set_label("dilation rate (1: small blur ... " f"{max(rates)}: large blur)")
    figure.text(0.5, 0.015, "attention-weighted dilation of the first KPAC block; an "
                "attention map, not a calibrated depth or blur radius", ha="center",
                fontsize=8, color="0.3")
    figure.canvas.draw()
    return np.asarray(figure.canvas.buffer_rgba())[..., :3].copy()
