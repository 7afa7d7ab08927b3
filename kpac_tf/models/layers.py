"""Keras layers of KPAC (Son et al., "Single Image Defocus Deblurring Using
Kernel-Sharing Parallel Atrous Convolutions", ICCV 2021).

All tensors are float NHWC. Every convolution is 'SAME'; hidden activations are
LeakyReLU with slope 0.2 and weights start from N(0, 0.04), as in the authors' code.
"""

import keras
import tensorflow as tf

LEAKY_SLOPE = 0.2
WEIGHT_STDDEV = 0.04


def default_kernel_initializer():
    """The authors' weight initialiser: N(0, 0.04). Biases start at zero."""
    return keras.initializers.RandomNormal(stddev=WEIGHT_STDDEV)


def conv2d(filters, kernel_size, name, strides=1, dilation_rate=1,
           activation="leaky_relu", use_bias=True, kernel_initializer=None, dtype=None):
    """A 'SAME' Conv2D with the authors' defaults (LeakyReLU 0.2, N(0, 0.04) init)."""
    return keras.layers.Conv2D(
        filters, kernel_size, strides=strides, padding="same",
        dilation_rate=dilation_rate, activation=activation, use_bias=use_bias,
        kernel_initializer=kernel_initializer or default_kernel_initializer(),
        name=name, dtype=dtype)


@keras.saving.register_keras_serializable(package="kpac_tf")
class KPACBlock(keras.layers.Layer):
    """Kernel-sharing parallel atrous convolution block (paper Fig. 3, Eq. 7).

    One k x k kernel (`shared_kernel`, HWIO) is applied with `tf.nn.conv2d` at each
    dilation rate; each branch goes through LeakyReLU, is weighted per pixel by its
    scale-attention map and per channel by the shape-attention vector shared by all
    branches, and the concatenated branches are fused by a 3x3 convolution.

    Args:
        filters: int. Channels of each atrous branch (c/2 in Eq. 6). Defaults to 48.
        output_filters: int. Channels of the fused output (c). Defaults to 96.
        kernel_size: int. Size k of the shared atrous kernel. Defaults to 5.
        dilation_rates: tuple of int. One branch per rate, concatenated in this
            order. Defaults to (1, 2, 3, 4, 5).
        share_weights: bool. True: one kernel variable for every rate (KPAC).
            False: one kernel per rate (Table 1's "w/o weight sharing").
            Defaults to True.
        scale_attention: bool. Per-pixel weight map per rate. Defaults to True.
        shape_attention: bool. Per-channel weights shared by all rates.
            Defaults to True.
        scale_attention_filters: tuple of int. Widths of the four 5x5 convolutions
            (dilation 2) of the scale-attention branch. Defaults to (32, 32, 16, 16).
        shape_attention_filters: int or None. Width of the shape-attention
            bottleneck; None means `filters // 4`. Defaults to None.
        kernel_initializer: initializer for every kernel. Defaults to N(0, 0.04).
        **kwargs: base `keras.layers.Layer` arguments, e.g. `name`.

    Call arguments:
        inputs: float tensor (batch, height, width, channels), any height and width.

    Returns:
        float tensor (batch, height, width, output_filters).

    Example:
    >>> block = KPACBlock(filters=8, output_filters=16)
    >>> block(tf.zeros((1, 32, 32, 16))).shape
    TensorShape([1, 32, 32, 16])
    """

    def __init__(self, filters=48, output_filters=96, kernel_size=5,
                 dilation_rates=(1, 2, 3, 4, 5), share_weights=True,
                 scale_attention=True, shape_attention=True,
                 scale_attention_filters=(32, 32, 16, 16),
                 shape_attention_filters=None, kernel_initializer=None, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.output_filters = int(output_filters)
        self.kernel_size = int(kernel_size)
        self.dilation_rates = tuple(int(r) for r in dilation_rates)
        self.share_weights = bool(share_weights)
        self.scale_attention = bool(scale_attention)
        self.shape_attention = bool(shape_attention)
        self.scale_attention_filters = tuple(int(f) for f in scale_attention_filters)
        self.shape_attention_filters = (None if shape_attention_filters is None
                                        else int(shape_attention_filters))
        self.kernel_initializer = keras.initializers.get(
            kernel_initializer or default_kernel_initializer())
        if not self.dilation_rates or min(self.dilation_rates) < 1:
            raise ValueError(
                f"dilation_rates must be a non-empty list of rates >= 1, got {dilation_rates}")
        if self.kernel_size < 1 or self.filters < 1 or self.output_filters < 1:
            raise ValueError(
                f"kernel_size, filters and output_filters must be >= 1, got "
                f"{kernel_size}, {filters}, {output_filters}")

        def make(*args, **kw):
            return conv2d(*args, kernel_initializer=self.kernel_initializer,
                          dtype=self.dtype_policy, **kw)

        # Sublayers and kernels live in named attributes (not lists) so TensorFlow
        # checkpoints track them too; the list properties below give them in order.
        self._scale_names, self._shape_names = [], []
        if self.scale_attention:
            for i, width in enumerate(self.scale_attention_filters):
                self._scale_names.append(f"sca_dc{i + 1}")
                setattr(self, self._scale_names[-1],
                        make(width, 5, dilation_rate=2, name=self._scale_names[-1]))
            self._scale_names.append("sca_c2")
            self.sca_c2 = make(len(self.dilation_rates), 5, activation="sigmoid",
                               name="sca_c2")
        if self.shape_attention:
            bottleneck = self.shape_attention_filters or max(self.filters // 4, 1)
            self._shape_names = ["sha_c1", "sha_c2"]
            self.sha_c1 = make(bottleneck, 1, name="sha_c1")
            self.sha_c2 = make(self.filters, 1, activation="sigmoid", name="sha_c2")
        self.fuse_conv = make(self.output_filters, 3, name="cf")
        self._kernel_names = (["shared_kernel"] if self.share_weights
                              else [f"kernel_rate{r}" for r in self.dilation_rates])

    @property
    def scale_convs(self):
        """The scale-attention convolutions, input to output."""
        return [getattr(self, name) for name in self._scale_names]

    @property
    def shape_convs(self):
        """The two shape-attention 1x1 convolutions."""
        return [getattr(self, name) for name in self._shape_names]

    @property
    def atrous_kernels(self):
        """The atrous kernel variables: one if shared, else one per rate."""
        return [getattr(self, name) for name in self._kernel_names]

    @property
    def num_rates(self):
        return len(self.dilation_rates)

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels is None:
            raise ValueError(
                f"KPACBlock needs a known channel count, got input shape {input_shape}")
        kernel_shape = (self.kernel_size, self.kernel_size, channels, self.filters)
        for name in self._kernel_names:
            setattr(self, name, self.add_weight(name=name, shape=kernel_shape,
                                                initializer=self.kernel_initializer))
        shape = tuple(input_shape)
        for conv in self.scale_convs:
            conv.build(shape)
            shape = conv.compute_output_shape(shape)
        shape = (input_shape[0], 1, 1, channels)
        for conv in self.shape_convs:
            conv.build(shape)
            shape = conv.compute_output_shape(shape)
        self.fuse_conv.build(tuple(input_shape[:-1]) + (self.filters * self.num_rates,))

    def _ensure_built(self, inputs):
        """Builds the block when an accessor is called before the block itself."""
        if not self.built:
            self.build(tuple(inputs.shape))

    def scale_attention_maps(self, inputs):
        """Per-pixel scale attention (batch, height, width, num_rates) in (0, 1)."""
        if not self.scale_attention:
            raise ValueError(f"{self.name} was built with scale_attention=False")
        self._ensure_built(inputs)
        x = inputs
        for conv in self.scale_convs:
            x = conv(x)
        return x

    def shape_attention_vector(self, inputs):
        """Channel weights (batch, 1, 1, filters) in (0, 1), shared by all rates."""
        if not self.shape_attention:
            raise ValueError(f"{self.name} was built with shape_attention=False")
        self._ensure_built(inputs)
        x = tf.reduce_mean(inputs, axis=[1, 2], keepdims=True)
        for conv in self.shape_convs:
            x = conv(x)
        return x

    def call(self, inputs, scale_attention_maps=None):
        """Runs the block; `scale_attention_maps` (batch, h, w, num_rates), when given,
        replaces the learned maps (the modulation experiment of the paper's Fig. 8)."""
        alpha = scale_attention_maps
        if alpha is None and self.scale_attention:
            alpha = self.scale_attention_maps(inputs)
        beta = self.shape_attention_vector(inputs) if self.shape_attention else None
        branches = []
        for i, rate in enumerate(self.dilation_rates):
            kernel = self.atrous_kernels[0 if self.share_weights else i]
            y = tf.nn.conv2d(inputs, tf.cast(kernel, inputs.dtype), strides=1,
                             padding="SAME", dilations=rate)
            y = tf.nn.leaky_relu(y, alpha=LEAKY_SLOPE)
            if alpha is not None:
                y = y * alpha[..., i:i + 1]
            if beta is not None:
                y = y * beta
            branches.append(y)
        return self.fuse_conv(tf.concat(branches, axis=-1))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.output_filters,)

    def get_config(self):
        config = super().get_config()
        config.update({
            "filters": self.filters,
            "output_filters": self.output_filters,
            "kernel_size": self.kernel_size,
            "dilation_rates": list(self.dilation_rates),
            "share_weights": self.share_weights,
            "scale_attention": self.scale_attention,
            "shape_attention": self.shape_attention,
            "scale_attention_filters": list(self.scale_attention_filters),
            "shape_attention_filters": self.shape_attention_filters,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
        })
        return config


@keras.saving.register_keras_serializable(package="kpac_tf")
class ResidualBlock(keras.layers.Layer):
    """Plain residual block, the KPAC-free baseline of the paper's Table 2.

    `x + conv3x3(lrelu(conv3x3(x)))`, both convolutions with bias.

    Args:
        filters: int. Channels of the two convolutions; must equal the input's.
            Defaults to 96.
        kernel_size: int. Defaults to 3.
        kernel_initializer: Defaults to N(0, 0.04).
        **kwargs: base `keras.layers.Layer` arguments.

    Call arguments:
        inputs: float tensor (batch, height, width, filters).

    Returns:
        float tensor of the input's shape.

    Example:
    >>> ResidualBlock(filters=16)(tf.zeros((1, 8, 8, 16))).shape
    TensorShape([1, 8, 8, 16])
    """

    def __init__(self, filters=96, kernel_size=3, kernel_initializer=None, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.kernel_size = int(kernel_size)
        self.kernel_initializer = keras.initializers.get(
            kernel_initializer or default_kernel_initializer())
        self.conv1 = conv2d(self.filters, self.kernel_size, name="conv1",
                            kernel_initializer=self.kernel_initializer,
                            dtype=self.dtype_policy)
        self.conv2 = conv2d(self.filters, self.kernel_size, name="conv2", activation=None,
                            kernel_initializer=self.kernel_initializer,
                            dtype=self.dtype_policy)

    def build(self, input_shape):
        if input_shape[-1] != self.filters:
            raise ValueError(
                f"ResidualBlock(filters={self.filters}) needs {self.filters} input "
                f"channels, got input shape {input_shape}")
        self.conv1.build(input_shape)
        self.conv2.build(input_shape)

    def call(self, inputs):
        return inputs + self.conv2(self.conv1(inputs))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
        })
        return config


@keras.saving.register_keras_serializable(package="kpac_tf")
class SizeCheck(keras.layers.Layer):
    """Identity that raises when height or width is not a multiple of `multiple`.

    The encoder halves the resolution `log2(multiple)` times and the decoder doubles
    it back, so only such sizes reproduce the input's shape.

    Args:
        multiple: int. Required divisor of height and width.
        **kwargs: base `keras.layers.Layer` arguments.

    Call arguments:
        inputs: tensor (batch, height, width, channels).

    Returns:
        `inputs` unchanged. Raises ValueError for a static bad size; a dynamic one
        (inside a graph with unknown sizes) fails with InvalidArgumentError.
    """

    def __init__(self, multiple, **kwargs):
        super().__init__(**kwargs)
        self.multiple = int(multiple)

    def _message(self, height, width):
        return (f"{self.name}: height and width must be multiples of {self.multiple} "
                f"for this network, got {height}x{width}; pad or crop the image "
                f"(kpac_tf's inference helpers pad automatically)")

    def call(self, inputs):
        height, width = inputs.shape[1], inputs.shape[2]
        if height is not None and width is not None:
            if height % self.multiple or width % self.multiple:
                raise ValueError(self._message(height, width))
            return inputs
        size = tf.shape(inputs)[1:3]
        check = tf.debugging.assert_equal(
            size % self.multiple, 0, message=self._message("?", "?"))
        with tf.control_dependencies([check]):
            return tf.identity(inputs)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"multiple": self.multiple})
        return config
