"""Training losses (paper Sec. 4.2): MAE, and the perceptual loss on VGG19
`conv4_4` (Keras layer `block4_conv4`) features.

Losses return one value per example, for `tf.nn.compute_average_loss`; inputs are
network-range images, float (batch, h, w, 3) in [-1, 1].
"""

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
            f"{os.path.dirname(default_vgg19_weights_path())}; or train with "
            "--perceptual_weight=0")
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
