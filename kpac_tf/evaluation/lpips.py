"""LPIPS v0.1 with the AlexNet trunk (Zhang et al. 2018), from the reference's own
PyTorch weight files, read without PyTorch and without running code from them.

Table 4 of the paper reports LPIPS next to PSNR and SSIM. The reference
implementation (PyPI `lpips` 0.1.4, GitHub `richzhang/PerceptualSimilarity`,
`lpips.LPIPS(net="alex", version="0.1")`) computes, for two images in [-1, 1]:

1. a fixed scaling layer, `(x - shift) / scale` with shift [-.030, -.088, -.188]
   and scale [.458, .448, .450];
2. torchvision's AlexNet `features` up to relu5, keeping the five ReLU outputs:
   conv1 11x11 stride 4 padding 2 (64), 3x3 stride-2 max pool, conv2 5x5 padding 2
   (192), max pool, conv3 / conv4 / conv5 3x3 padding 1 (384, 256, 256); PyTorch's
   arithmetic: zero padding on both sides, pools without padding, sizes rounded
   down (`floor((n + 2p - k) / s) + 1`), reproduced here by `tf.pad` + VALID;
3. per layer: features divided by their length over channels plus 1e-10, squared
   difference of the two images' features, a 1x1 linear head without bias (the
   v0.1 `lin{k}.model.1.weight`, shape (1, C, 1, 1)), mean over space;
4. the sum of the five layers.

Weights come from two files nothing here downloads:

- `alexnet`: torchvision's ImageNet AlexNet, `alexnet-owt-7be5be79.pth` (in
  `~/.cache/torch/hub/checkpoints/` for anyone who ran torchvision's
  `alexnet(weights="IMAGENET1K_V1")` or `lpips.LPIPS(net="alex")`); only
  `features.{0,3,6,8,10}.{weight,bias}` are read, the classifier's storages never are.
- `linear`: the `lpips` package's `weights/v0.1/alex.pth` (inside its wheel).

The files are read by `kpac_tf.checkpoints.pytorch.read_torch_state_dict`
(without PyTorch, never running code from them).

Example:
>>> metric = LPIPS.from_files(alexnet="alexnet-owt-7be5be79.pth", linear="alex.pth")
>>> metric(restored, sharp)            # float32 (N, H, W, 3) in [-1, 1] -> (N,)
"""

import importlib.util
import os

import numpy as np
import tensorflow as tf

from kpac_tf.checkpoints.errors import CheckpointError
from kpac_tf.checkpoints.pytorch import read_torch_state_dict


SHIFT = (-.030, -.088, -.188)


SCALE = (.458, .448, .450)


EPS = 1e-10


# torchvision's AlexNet `features`, up to relu5: (state-dict prefix, output
# channels, input channels, kernel, stride, padding, 3x3 stride-2 max pool before).
ALEXNET_CONVS = (
    ("features.0", 64, 3, 11, 4, 2, False),
    ("features.3", 192, 64, 5, 1, 2, True),
    ("features.6", 384, 192, 3, 1, 1, True),
    ("features.8", 256, 384, 3, 1, 1, False),
    ("features.10", 256, 256, 3, 1, 1, False),
)


LINEAR_KEYS = tuple(f"lin{k}.model.1.weight" for k in range(5))


LAYER_CHANNELS = tuple(conv[1] for conv in ALEXNET_CONVS)


ALEXNET_ORIGIN = ("torchvision's ImageNet AlexNet weights, alexnet-owt-7be5be79.pth "
                  "(~/.cache/torch/hub/checkpoints/)")


LINEAR_ORIGIN = "the lpips package's weights/v0.1/alex.pth"


ALEXNET_FILE = "alexnet-owt-7be5be79.pth"


def find_files(alexnet=None, linear=None):
    """The two weight files: the paths given, else where torchvision and the lpips
    package keep them (`$TORCH_HOME/hub/checkpoints/alexnet-owt-7be5be79.pth`,
    TORCH_HOME defaulting to ~/.cache/torch; `<lpips package>/weights/v0.1/alex.pth`,
    located without importing it).

    Returns:
        (alexnet path, linear path), both existing files.

    Raises:
        FileNotFoundError: naming each missing file and where it comes from.
    """
    if not alexnet:
        cache = os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache"))
        torch_home = os.environ.get("TORCH_HOME", os.path.join(cache, "torch"))
        alexnet = os.path.join(torch_home, "hub", "checkpoints", ALEXNET_FILE)
    if not linear:
        spec = importlib.util.find_spec("lpips")
        linear = (os.path.join(os.path.dirname(spec.origin), "weights", "v0.1", "alex.pth")
                  if spec and spec.origin else "<lpips package>/weights/v0.1/alex.pth")
    alexnet, linear = os.fspath(alexnet), os.fspath(linear)
    missing = []
    if not os.path.isfile(alexnet):
        missing.append(f"{alexnet}: torchvision's ImageNet AlexNet ({ALEXNET_FILE}; "
                       "torchvision saves it in ~/.cache/torch/hub/checkpoints/ when "
                       "alexnet(weights='IMAGENET1K_V1') first runs); give it with "
                       "--lpips_alexnet")
    if not os.path.isfile(linear):
        missing.append(f"{linear}: LPIPS v0.1's linear heads (weights/v0.1/alex.pth "
                       "inside the lpips package: pip install lpips==0.1.4, or "
                       "pip download lpips==0.1.4 --no-deps and unzip); give it with "
                       "--lpips_linear")
    if missing:
        raise FileNotFoundError("LPIPS needs " + "; and ".join(missing))
    return alexnet, linear


def _trunk_size(n):
    """Spatial size after conv1, pool1 and pool2 (PyTorch's floor arithmetic)."""
    n = (n + 2 * 2 - 11) // 4 + 1
    n = (n - 3) // 2 + 1
    return (n - 3) // 2 + 1


# The smallest height and width the trunk takes: relu5 must keep one pixel.
MIN_SIZE = next(n for n in range(1, 64) if _trunk_size(n) >= 1)  # 31


def _expected_shapes():
    shapes = {}
    for prefix, out, cin, k, *_ in ALEXNET_CONVS:
        shapes[f"{prefix}.weight"] = (out, cin, k, k)
        shapes[f"{prefix}.bias"] = (out,)
    return shapes


TRUNK_SHAPES = _expected_shapes()


LINEAR_SHAPES = {key: (1, c, 1, 1) for key, c in zip(LINEAR_KEYS, LAYER_CHANNELS)}


class LPIPS:
    """LPIPS v0.1 (AlexNet) distance between image batches, as the reference computes it.

    Args:
        trunk: {torchvision name: array} with `features.{0,3,6,8,10}.{weight,bias}`
            in PyTorch layouts (weights (out, in, kh, kw)).
        linear: {`lin{k}.model.1.weight`: array of shape (1, C_k, 1, 1)}.

    Use `LPIPS.from_files` to read the two published files. Calling the object on
    two float NHWC batches in [-1, 1] of the same shape (N, H, W, 3), H and W at
    least `MIN_SIZE` (31), returns float32 (N,) distances; `per_layer` returns the
    five layers' contributions (N, 5), whose sum over layers is the distance.
    Works eagerly and inside `tf.function`, for any N, H and W.
    """

    min_size = MIN_SIZE

    def __init__(self, trunk, linear):
        _check_shapes(trunk, TRUNK_SHAPES, "trunk", ValueError)
        _check_shapes(linear, LINEAR_SHAPES, "linear", ValueError)
        self._convs = []
        for prefix, _, _, _, stride, padding, pool in ALEXNET_CONVS:
            kernel = np.transpose(np.asarray(trunk[f"{prefix}.weight"], np.float32),
                                  (2, 3, 1, 0))  # (out, in, kh, kw) -> HWIO
            self._convs.append((tf.constant(kernel),
                                tf.constant(np.asarray(trunk[f"{prefix}.bias"], np.float32)),
                                stride, padding, pool))
        self._heads = [tf.constant(np.asarray(linear[key], np.float32).reshape(-1))
                       for key in LINEAR_KEYS]
        self._shift = tf.constant(SHIFT, tf.float32)
        self._scale = tf.constant(SCALE, tf.float32)

    @classmethod
    def from_files(cls, alexnet, linear):
        """Reads torchvision's AlexNet weights and lpips' v0.1 linear heads.

        Args:
            alexnet: str or PathLike. `alexnet-owt-7be5be79.pth` (torchvision).
            linear: str or PathLike. `weights/v0.1/alex.pth` (the lpips package).

        Raises:
            CheckpointError: naming the file: missing, not a PyTorch file, hostile,
                a needed tensor absent (says which, and which file holds it) or of
                the wrong shape.
        """
        trunk = read_torch_state_dict(alexnet, names=TRUNK_SHAPES)
        _check_shapes(trunk, TRUNK_SHAPES, os.fspath(alexnet), CheckpointError,
                      origin=ALEXNET_ORIGIN)
        heads = read_torch_state_dict(linear, names=LINEAR_SHAPES)
        _check_shapes(heads, LINEAR_SHAPES, os.fspath(linear), CheckpointError,
                      origin=LINEAR_ORIGIN)
        return cls(trunk, heads)

    def features(self, images):
        """The five ReLU outputs (NHWC float32) of the scaled images."""
        x = (images - self._shift) / self._scale
        outputs = []
        for kernel, bias, stride, padding, pool in self._convs:
            if pool:
                x = tf.nn.max_pool2d(x, ksize=3, strides=2, padding="VALID")
            x = tf.pad(x, [[0, 0], [padding, padding], [padding, padding], [0, 0]])
            x = tf.nn.relu(tf.nn.conv2d(x, kernel, strides=stride, padding="VALID") + bias)
            outputs.append(x)
        return outputs

    def per_layer(self, in0, in1):
        """Each layer's contribution to the distance: float32 (N, 5)."""
        in0, in1 = _check_inputs(in0, in1)
        layers = []
        for f0, f1, head in zip(self.features(in0), self.features(in1), self._heads):
            diff = tf.square(_unit_length(f0) - _unit_length(f1))
            layers.append(tf.reduce_mean(tf.reduce_sum(diff * head, axis=-1), axis=[1, 2]))
        return tf.stack(layers, axis=1)

    def __call__(self, in0, in1):
        """LPIPS distances, float32 (N,)."""
        return tf.reduce_sum(self.per_layer(in0, in1), axis=1)


def _unit_length(features):
    norm = tf.sqrt(tf.reduce_sum(tf.square(features), axis=-1, keepdims=True))
    return features / (norm + EPS)


def _check_inputs(in0, in1):
    in0, in1 = tf.convert_to_tensor(in0), tf.convert_to_tensor(in1)
    for x in (in0, in1):
        if not x.dtype.is_floating:
            raise ValueError(f"LPIPS takes float images in [-1, 1], got {x.dtype.name}; "
                             "convert integer images with kpac_tf.data.pixels.to_network")
        if x.shape.rank != 4 or x.shape[-1] not in (3, None):
            raise ValueError(f"LPIPS takes image batches (N, H, W, 3), got shape {x.shape}")
    if in0.shape.is_fully_defined() and in1.shape.is_fully_defined():
        if in0.shape != in1.shape:
            raise ValueError(f"LPIPS compares images of one shape, got {in0.shape} "
                             f"and {in1.shape}")
    for size in in0.shape[1:3]:
        if size is not None and size < MIN_SIZE:
            raise ValueError(f"LPIPS (AlexNet) needs images of at least {MIN_SIZE}x"
                             f"{MIN_SIZE} pixels, got {in0.shape[1]}x{in0.shape[2]}")
    in0, in1 = tf.cast(in0, tf.float32), tf.cast(in1, tf.float32)
    if not (in0.shape.is_fully_defined() and in1.shape.is_fully_defined()):
        checks = [tf.debugging.assert_equal(tf.shape(in0), tf.shape(in1),
                                            message="LPIPS compares images of one shape"),
                  tf.debugging.assert_greater_equal(
                      tf.shape(in0)[1:3], MIN_SIZE,
                      message=f"LPIPS (AlexNet) needs images of at least {MIN_SIZE}x"
                              f"{MIN_SIZE} pixels"),
                  tf.debugging.assert_equal(tf.shape(in0)[3], 3,
                                            message="LPIPS takes 3-channel images")]
        with tf.control_dependencies(checks):
            in0, in1 = tf.identity(in0), tf.identity(in1)
    return in0, in1


def _check_shapes(tensors, shapes, source, error, origin=None):
    for key, shape in shapes.items():
        if key not in tensors:
            where = f"; it comes from {origin}" if origin else ""
            found = sorted(tensors)
            raise error(f"{source}: no tensor '{key}'{where}. Found {len(found)} of the "
                        f"needed tensors: {found[:6]}{' ...' if len(found) > 6 else ''}")
        if tuple(np.shape(tensors[key])) != shape:
            raise error(f"{source}: tensor '{key}' has shape {tuple(np.shape(tensors[key]))}, "
                        f"expected {shape}" + (f" (as in {origin})" if origin else ""))


def metric_or_reason(alexnet=None, linear=None):
    """(LPIPS or None, why None): the files given, or found where torchvision and
    lpips keep them (`find_files`). A file that was given must exist
    (FileNotFoundError); files merely not found give (None, the reason)."""
    try:
        return LPIPS.from_files(*find_files(alexnet, linear)), None
    except FileNotFoundError as e:
        if alexnet or linear:
            raise
        return None, str(e)
