"""The authors' three KPAC networks as Keras functional models (paper Fig. 5).

Layer names echo the authors' TF1 scopes (`c0`, `c3_2`, `kpac_0`, `cm_1`, `d1`, ...),
so converting their checkpoints is a table (see `kpac_tf.checkpoints`).
"""

import keras

from kpac_tf.models.layers import (KPACBlock, ResidualBlock, SizeCheck, conv2d,
                                   default_kernel_initializer)

MODEL_NAMES = ("single_2level", "single_3level", "dual")
BLOCK_TYPES = ("kpac", "residual")

# Encoder/decoder structure per network: number of stride-2 levels.
_LEVELS = {"single_2level": 2, "single_3level": 3, "dual": 3}


def size_multiple(name):
    """Height and width of inputs to network `name` must be multiples of this."""
    _check_name(name)
    return 2 ** _LEVELS[name]


def _check_name(name):
    if name not in MODEL_NAMES:
        raise ValueError(f"Unknown model name {name!r}; choose one of {MODEL_NAMES}")


def _deconv(filters, name, dtype=None):
    """4x4 stride-2 'SAME' transposed convolution with LeakyReLU (kernel [4, 4, out, in])."""
    return keras.layers.Conv2DTranspose(
        filters, 4, strides=2, padding="same", activation="leaky_relu",
        kernel_initializer=default_kernel_initializer(), name=name, dtype=dtype)


def apply_encoder(x, channels, levels, dtype=None):
    """Encoder of Fig. 5. Returns (features, skips), skips ordered shallow to deep.

    x: (batch, h, w, in) -> features (batch, h / 2**levels, w / 2**levels, 2 * channels).
    `dtype`: every layer's dtype policy (as for `build_model`).
    """
    x = conv2d(channels, 5, name="c0", dtype=dtype)(x)
    x = conv2d(channels, 3, name="c0_2", dtype=dtype)(x)
    skips = [x]
    widths = [channels, 2 * channels, 2 * channels][:levels]
    for level, width in enumerate(widths, start=2):
        x = conv2d(width, 3, strides=2, name=f"c{level}", dtype=dtype)(x)
        x = conv2d(width, 3, name=f"c{level}_2", dtype=dtype)(x)
        skips.append(x)
    return x, skips[:-1]


def apply_blocks(x, num_blocks, block_type, block_kwargs, dtype=None):
    """`num_blocks` blocks in series, densely concatenated with their input.

    x: (batch, h, w, c) -> (batch, h, w, c * (num_blocks + 1)).
    """
    stack = [x]
    for i in range(num_blocks):
        if block_type == "kpac":
            x = KPACBlock(output_filters=x.shape[-1], name=f"kpac_{i}", dtype=dtype,
                          **block_kwargs)(x)
        else:
            x = ResidualBlock(filters=x.shape[-1], name=f"residual_{i}", dtype=dtype)(x)
        stack.append(x)
    return keras.layers.Concatenate(name="dense_concat", dtype=dtype)(stack)


def apply_decoder(x, skips, channels, dtype=None):
    """Middle convs and decoder of Fig. 5, returning the 3-channel residual.

    Decoder level names follow the authors: d0 (3-level only), d1, d2.
    """
    x = conv2d(2 * channels, 3, name="cm_1", dtype=dtype)(x)
    x = conv2d(2 * channels, 3, name="cm_2", dtype=dtype)(x)
    widths = {"d0": 2 * channels, "d1": channels, "d2": channels}
    names = ["d0", "d1", "d2"][-len(skips):]
    for name, skip in zip(names, reversed(skips)):
        x = _deconv(widths[name], name, dtype)(x)
        x = keras.layers.Concatenate(name=f"{name}_concat", dtype=dtype)([x, skip])
        if name != "d2":
            x = conv2d(widths[name], 3, name=f"{name}_2", dtype=dtype)(x)
    return conv2d(3, 5, activation=None, name="d2_2", dtype=dtype)(x)


def build_model(name, *, channels=48, num_blocks=2, kernel_size=5, num_dilations=5,
                share_weights=True, scale_attention=True, shape_attention=True,
                block_type="kpac", dtype=None):
    """Builds one of the authors' KPAC networks, or an ablation of it.

    The defaults give exactly the published networks (1,578,277 / 2,057,893 /
    2,061,493 parameters). The overrides are the paper's design axes (Tables 1-3).

    Args:
        name: str. "single_2level", "single_3level" or "dual".
        channels: int. Base width c (48 in the paper).
        num_blocks: int. KPAC (or residual) blocks in series (Table 3: 1-4).
        kernel_size: int. Size of the shared atrous kernel (5).
        num_dilations: int. Atrous branches, at rates 1..num_dilations (5).
        share_weights: bool. One kernel for every rate (Table 1).
        scale_attention: bool. Per-pixel scale attention (Table 2).
        shape_attention: bool. Channel shape attention (Table 2).
        block_type: str. "kpac", or "residual" for Table 2's baseline of plain
            residual blocks (two 3x3 convs); the paper's 2.26M-parameter baseline
            is `block_type="residual", num_blocks=7`.
        dtype: str or None. Every layer's Keras dtype policy: "float32",
            "mixed_bfloat16" / "mixed_float16" (float32 weights, low-precision
            compute); None: Keras' global policy (float32 unless changed). Inputs
            are float32 either way; the output is in the compute dtype.

    Returns:
        A `keras.Model`. Single networks take one float32 tensor (batch, h, w, 3) in
        [-1, 1]; "dual" takes `[center, left, right]`, each (batch, h, w, 3). Output:
        (batch, h, w, 3), the deblurred image in [-1, 1] (not clipped). h and w must
        be multiples of `size_multiple(name)` (4 for 2-level, 8 otherwise).

    Example:
    >>> model = build_model("single_2level")
    >>> model.count_params()
    1578277
    """
    _check_name(name)
    if block_type not in BLOCK_TYPES:
        raise ValueError(f"block_type must be one of {BLOCK_TYPES}, got {block_type!r}")
    for arg, value in (("channels", channels), ("num_blocks", num_blocks),
                       ("kernel_size", kernel_size), ("num_dilations", num_dilations)):
        if int(value) != value or value < 1:
            raise ValueError(f"{arg} must be a positive integer, got {value!r}")
    multiple = size_multiple(name)
    image_shape = (None, None, 3)
    if name == "dual":
        inputs = [keras.Input(image_shape, name=n) for n in ("center", "left", "right")]
        center, left, right = [SizeCheck(multiple, name=f"size_check_{n}", dtype=dtype)(t)
                               for n, t in zip(("center", "left", "right"), inputs)]
        x = keras.layers.Concatenate(name="dual_pixels", dtype=dtype)([left, right])
    else:
        inputs = keras.Input(image_shape, name="image")
        center = x = SizeCheck(multiple, name="size_check", dtype=dtype)(inputs)
    x, skips = apply_encoder(x, channels, _LEVELS[name], dtype)
    block_kwargs = dict(filters=channels, kernel_size=kernel_size,
                        dilation_rates=tuple(range(1, num_dilations + 1)),
                        share_weights=share_weights, scale_attention=scale_attention,
                        shape_attention=shape_attention)
    x = apply_blocks(x, num_blocks, block_type, block_kwargs, dtype)
    residual = apply_decoder(x, skips, channels, dtype)
    outputs = keras.layers.Add(name="add_input", dtype=dtype)([residual, center])
    return keras.Model(inputs, outputs, name=name)


def build_args(model):
    """(name, overrides) with which `build_model(name, **overrides)` builds `model`
    again (a network it built, loaded from anywhere), read from its layers; e.g. to
    build it in another dtype: `build_model(name, dtype=..., **overrides)`, then
    `set_weights(model.get_weights())`.

    Raises:
        ValueError: `model` is not one of `build_model`'s networks.
    """
    _check_name(model.name)
    refused = ValueError(f"model {model.name!r} is not one build_model builds (its layers "
                         "differ from every setting of the network's arguments)")
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    blocks = [layer for layer in model.layers if isinstance(layer, (KPACBlock, ResidualBlock))]
    if not convs or not blocks:
        raise refused
    overrides = dict(channels=convs[0].filters, num_blocks=len(blocks))
    if blocks and isinstance(blocks[0], ResidualBlock):
        overrides["block_type"] = "residual"
    elif blocks:
        block = blocks[0]
        overrides.update(kernel_size=block.kernel_size, num_dilations=block.num_rates,
                         share_weights=block.share_weights,
                         scale_attention=block.scale_attention,
                         shape_attention=block.shape_attention)
    rebuilt = build_model(model.name, **overrides)
    ignored = {"name": None, "dtype": None}
    same_blocks = all(b.get_config() | ignored == r.get_config() | ignored
                      for b, r in zip(blocks, (layer for layer in rebuilt.layers if isinstance(
                          layer, (KPACBlock, ResidualBlock)))))
    if not same_blocks or [w.shape for w in rebuilt.weights] != [w.shape for w in model.weights]:
        raise refused
    return model.name, overrides


def center_view(inputs):
    """The blurry (centre) image of a model input: the tensor, or the first of a tuple."""
    return inputs[0] if isinstance(inputs, (tuple, list)) else inputs
