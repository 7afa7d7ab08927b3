"""Scoring protocols: how the images of an evaluation reach the metrics.

DPDD numbers in the literature differ by protocol as much as by model, along three
choices, each a field of `Protocol`:

- `bit_depth`: 8 (the paper's, and most single-image papers'): 16-bit sources are
  brought to 8 bits for the network and the target, and the output is quantised to
  8 bits, as saving an 8-bit PNG would; 16 (Restormer's dual-pixel protocol): the
  network sees the 16-bit input and the output, quantised to 16 bits, is scored
  against the 16-bit target (scoring the unquantised float output instead moves PSNR
  by about 1e-5 dB). An 8-bit source (the synthetic set) is the same input either
  way; only the output's quantisation differs.
- `to_8bit`: how 16-bit values become 8-bit (`kpac_tf.data.pixels.TO_8BIT`: "round",
  ours, or "high_byte", Pillow's, as the authors' evaluation reads images); None at 16
  bits, and no effect on 8-bit sources.
- `ssim`: "uniform" (scikit-image's defaults, DPDNet's `metrics.py`) or "gaussian"
  (Wang et al.'s window, BasicSR / MATLAB), see `metrics.ssim`.

Scores are computed in float64 on images in [0, 1], as DPDNet's `metrics.py` does.
"""

import dataclasses

import tensorflow as tf

from kpac_tf.data import pixels
from kpac_tf.evaluation import metrics

BIT_DEPTHS = (8, 16)


@dataclasses.dataclass(frozen=True)
class Protocol:
    """One way of scoring (see the module docstring); the default is the paper's."""

    bit_depth: int = 8
    to_8bit: str | None = "round"
    ssim: str = "uniform"

    def __post_init__(self):
        if self.bit_depth not in BIT_DEPTHS:
            raise ValueError(f"bit depth must be one of {BIT_DEPTHS}, got {self.bit_depth!r}")
        metrics.check_ssim_window(self.ssim)
        if self.bit_depth == 16:
            object.__setattr__(self, "to_8bit", None)  # nothing becomes 8-bit
        else:
            pixels.check_to_8bit(self.to_8bit)

    @property
    def label(self):
        """"8-bit (round), SSIM uniform", "16-bit, SSIM gaussian"."""
        depth = "16-bit" if self.bit_depth == 16 else f"8-bit ({self.to_8bit})"
        return f"{depth}, SSIM {self.ssim}"

    def as_dict(self):
        return dataclasses.asdict(self)

    def conversion(self, image):
        """What the network's input depends on for `image` (as `network_input` takes
        it): protocols with equal conversions feed the network the same input."""
        dtype = tf.as_dtype((image[0] if isinstance(image, (tuple, list)) else image).dtype)
        if dtype == tf.uint16:
            return (self.bit_depth, self.to_8bit)
        return dtype.name  # an 8-bit source, or an input given in [-1, 1]

    def network_input(self, image):
        """Image(s) (a tensor, or the dual triple) -> float32 in [-1, 1] at the
        protocol's depth: uint8 / uint16 are converted, floats (already in [-1, 1])
        pass."""
        if isinstance(image, (tuple, list)):
            return tuple(self.network_input(view) for view in image)
        image = tf.convert_to_tensor(image)
        if image.dtype.is_floating:
            return tf.cast(image, tf.float32)
        if self.bit_depth == 16:
            return pixels.to_network(image)
        return pixels.to_8bit_network(image, self.to_8bit)

    def unit(self, image):
        """An image as the metrics see it: float64 in [0, 1] at the protocol's depth.
        Integer images (uint8 / uint16) are reduced to 8 bits when the protocol is
        8-bit; float network outputs in [-1, 1] are quantised to the protocol's depth."""
        return metrics.quantised_unit(image, self.bit_depth, self.to_8bit or "round",
                                      tf.float64)


PAPER = Protocol()
"""The paper's protocol (and ours by default): 8-bit, `round`, uniform SSIM."""

ALL = tuple(Protocol(depth, to_8bit, window) for depth, choices in
            ((8, pixels.TO_8BIT), (16, (None,))) for to_8bit in choices
            for window in metrics.SSIM_WINDOWS)
"""Every protocol `experiments.evaluate --all_protocols` scores, paper's first."""


def requested(bit_depth, to_8bit, ssim, every=False):
    """The protocols an app's flags ask for: the chosen one, then (`every`) the rest
    of `ALL`. `to_8bit` None: the default ("round"); another at 16 bits, where
    nothing becomes 8-bit, is refused rather than ignored."""
    to_8bit = PAPER.to_8bit if to_8bit is None else to_8bit
    if int(bit_depth) == 16 and to_8bit != PAPER.to_8bit:
        raise ValueError(f"--to_8bit={to_8bit} has no effect with --bit_depth=16 (nothing "
                         "becomes 8-bit there): give one of the two")
    chosen = Protocol(int(bit_depth), to_8bit, ssim)
    return (chosen,) + (tuple(p for p in ALL if p != chosen) if every else ())
