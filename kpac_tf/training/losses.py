"""Training losses, by name: MAE and the perceptual loss on VGG19 `conv4_4` (Keras
layer `block4_conv4`) features (paper Sec. 4.2), and Charbonnier.

A run's objective is a weighted sum of named losses, `{name: weight}` (`--loss=
mae:1,perceptual:0.0007`, `parse_objective`). Each name in `LOSSES` maps to a
builder: `build(config) -> loss`, where `loss(y_true, y_pred)` takes network-range
images, float (batch, h, w, 3) in [-1, 1], and returns one value per example,
float32 (batch,), for `tf.nn.compute_average_loss`. A new loss is one function and
one `LOSSES` entry (`register_loss` adds one from outside the package).
"""

import math
import os

import keras
import tensorflow as tf

VGG19_WEIGHTS_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"
VGG19_WEIGHTS_URL = ("https://storage.googleapis.com/tensorflow/keras-applications/"
                     "vgg19/" + VGG19_WEIGHTS_FILE)
PERCEPTUAL_LAYER = "block4_conv4"


def mae_per_example(y_true, y_pred):
    """Mean absolute error per example: (batch,)."""
    return tf.reduce_mean(tf.abs(tf.cast(y_true, tf.float32) - tf.cast(y_pred, tf.float32)),
                          axis=[1, 2, 3])


CHARBONNIER_EPSILON = 1e-3


def charbonnier_per_example(y_true, y_pred):
    """Charbonnier loss per example, mean of sqrt(d^2 + eps^2) with d the difference
    of [-1, 1] images and eps `CHARBONNIER_EPSILON` (a smooth L1, as later
    deblurring work trains with): (batch,)."""
    difference = tf.cast(y_true, tf.float32) - tf.cast(y_pred, tf.float32)
    return tf.reduce_mean(tf.sqrt(tf.square(difference) + CHARBONNIER_EPSILON ** 2),
                          axis=[1, 2, 3])


def default_vgg19_weights_path():
    """Where Keras keeps the ImageNet VGG19 no-top weights it downloads."""
    return os.path.join(os.path.expanduser("~"), ".keras", "models", VGG19_WEIGHTS_FILE)


def vgg19_feature_extractor(weights_path=None):
    """Frozen VGG19 up to `block4_conv4`, with ImageNet weights from a local file.

    Args:
        weights_path: str or None. A local copy of Keras' `VGG19_WEIGHTS_FILE`
            (None: Keras' cache, `default_vgg19_weights_path()`).

    Raises:
        FileNotFoundError: the weights file is missing; the message says where to
            get it. Training never proceeds with random VGG weights.
    """
    path = weights_path or default_vgg19_weights_path()
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"VGG19 ImageNet weights not found at {path}. The perceptual loss needs "
            f"Keras' {VGG19_WEIGHTS_FILE} (download it from {VGG19_WEIGHTS_URL} on a "
            "machine with internet access) passed with --vgg19_weights=PATH or put in "
            f"{os.path.dirname(default_vgg19_weights_path())}; or train without it "
            "(--loss=mae:1)")
    vgg = keras.applications.VGG19(include_top=False, weights=None)
    vgg.load_weights(path)
    extractor = keras.Model(vgg.input, vgg.get_layer(PERCEPTUAL_LAYER).output,
                            name="vgg19_block4_conv4")
    extractor.trainable = False
    return extractor


class PerceptualLoss:
    """Mean squared distance of VGG19 `block4_conv4` features, per example.

    Images in [-1, 1] are clipped to [0, 1] (as the authors' VGG input), scaled to
    [0, 255] and preprocessed the Keras VGG way (RGB -> BGR, ImageNet means).

    Args:
        extractor: model from `vgg19_feature_extractor`.

    Call arguments:
        y_true, y_pred: float (batch, h, w, 3) in [-1, 1].

    Returns:
        float32 (batch,).
    """

    def __init__(self, extractor):
        self.extractor = extractor

    def features(self, images):
        images = tf.clip_by_value((tf.cast(images, tf.float32) + 1.0) / 2.0, 0.0, 1.0)
        return self.extractor(keras.applications.vgg19.preprocess_input(images * 255.0))

    def __call__(self, y_true, y_pred):
        difference = self.features(y_true) - self.features(y_pred)
        return tf.reduce_mean(tf.square(difference), axis=[1, 2, 3])


# name -> build(config): the loss function (see the module docstring). Builders get
# the run's `TrainConfig` for what they need (the VGG19 weights file).
LOSSES = {
    "mae": lambda config: mae_per_example,
    "charbonnier": lambda config: charbonnier_per_example,
    "perceptual": lambda config: PerceptualLoss(vgg19_feature_extractor(config.vgg19_weights)),
}


def register_loss(name, build):
    """Adds loss `name` (`build(config) -> loss(y_true, y_pred) -> (batch,)`) to
    `LOSSES`, for `--loss=name:weight`; a name already taken is refused."""
    if name in LOSSES or name == "loss":  # "loss" names the objective itself
        raise ValueError(f"a loss named {name!r} exists already")
    LOSSES[name] = build


def parse_objective(text):
    """`{name: weight}` from "mae:1,perceptual:0.0007" (a dict is checked and
    returned as floats); ValueError naming what is wrong: an unknown name (the known
    ones listed), a weight that is not a positive number, a name given twice, or
    nothing at all."""
    if isinstance(text, dict):
        items = list(text.items())
    else:
        items = []
        for part in str(text).split(","):
            name, _, weight = part.strip().partition(":")
            items.append((name.strip(), weight.strip() or "1"))
    objective = {}
    for name, weight in items:
        if name not in LOSSES:
            raise ValueError(f"loss {name!r} is not one of {', '.join(sorted(LOSSES))} "
                             "(write --loss=NAME:WEIGHT,...)")
        if name in objective:
            raise ValueError(f"loss {name!r} is given twice")
        try:
            value = float(weight)
        except (TypeError, ValueError):
            value = math.nan
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"loss {name!r}: the weight must be a positive number, got "
                             f"{weight!r}")
        objective[name] = value
    if not objective:
        raise ValueError("the objective names no loss (write --loss=NAME:WEIGHT,...)")
    return objective


def format_objective(objective):
    """"mae:1,perceptual:0.0007" from `{name: weight}` (the flag's spelling)."""
    return ",".join(f"{name}:{weight:g}" for name, weight in objective.items())
