"""A picture of an evaluation (`report.png`): each image's input PSNR against its
output PSNR (above the diagonal: improved), the distribution of PSNR gains, and crops
(blurry | output | sharp) of the images with the largest and the smallest gains, each
where the model changed its error most.

`Report.add` is `scoring.evaluate`'s `observe` callback: it keeps every image's two
PSNRs and, while the evaluation streams, only the crops of the current extremes.
"""

import dataclasses
import heapq
import math

import numpy as np

from kpac_tf.data import images

CROP = 160
"""Side of the crops shown, in pixels (smaller images are shown whole)."""


@dataclasses.dataclass(order=True)
class _Crop:
    key: float  # the gain, signed so that the smallest key is dropped first
    name: str = dataclasses.field(compare=False)
    gain: float = dataclasses.field(compare=False)
    panel: np.ndarray = dataclasses.field(compare=False)  # (s, 3 s + 2 gap, 3) uint8


def _where_changed(blurry, output, sharp, size, largest):
    """(top, left) of the size x size window where the output's squared error fell
    most below the input's (`largest`), or rose most above it."""
    change = (np.square(blurry - sharp) - np.square(output - sharp)).sum(axis=-1)
    if not largest:
        change = -change
    total = np.pad(change.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    sums = (total[size:, size:] - total[:-size, size:] - total[size:, :-size]
            + total[:-size, :-size])
    return np.unravel_index(np.argmax(sums), sums.shape)


class Report:
    """Collects an evaluation for `draw` (see the module docstring).

    Args:
        count: how many images with the largest and with the smallest gains to show.
    """

    def __init__(self, count=2):
        self.count = count
        self.psnrs = []  # (name, input PSNR, output PSNR)
        self._best, self._worst = [], []  # heaps of _Crop

    def add(self, score, blurry, output, sharp):
        """One scored image: its `scoring.ImageScore` and (h, w, 3) images in [0, 1]."""
        self.psnrs.append((score.name, score.input_psnr, score.psnr))
        gain = score.psnr - score.input_psnr
        if not math.isfinite(gain):
            return
        blurry, output, sharp = (np.asarray(x, np.float64) for x in (blurry, output, sharp))
        size = min(CROP, *sharp.shape[:2])
        for heap, largest in ((self._best, True), (self._worst, False)):
            key = gain if largest else -gain
            if len(heap) == self.count and key <= heap[0].key:
                continue
            top, left = _where_changed(blurry, output, sharp, size, largest)
            gap = np.ones((size, 2, 3))
            panel = np.concatenate([x for image in (blurry, output, sharp) for x in
                                    (image[top:top + size, left:left + size], gap)][:-1],
                                   axis=1)
            crop = _Crop(key, score.name, gain, np.round(panel * 255).astype(np.uint8))
            (heapq.heappushpop if len(heap) == self.count else heapq.heappush)(heap, crop)

    def draw(self, path, title):
        """Writes the picture to `path` (PNG, atomically); returns `path`, or None when
        no image was scored."""
        if not self.psnrs:
            return None
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.ticker import MaxNLocator

        finite = [(x, y) for _, x, y in self.psnrs if math.isfinite(x) and math.isfinite(y)]
        inputs, outputs = (np.array(v) for v in zip(*finite)) if finite else ([], [])
        gains = np.asarray(outputs) - np.asarray(inputs)
        best = sorted(self._best, reverse=True)
        worst = [c for c in sorted(self._worst, reverse=True)
                 if c.name not in {b.name for b in best}]
        rows = max(len(best), len(worst), 1)
        figure = Figure(figsize=(12, 4.2 + 2.2 * rows), dpi=100)
        FigureCanvasAgg(figure)
        grid = figure.add_gridspec(1 + rows, 2, height_ratios=[4] + [2.2] * rows)
        figure.suptitle(f"{title}: {len(self.psnrs)} images, mean gain "
                        f"{gains.mean() if len(gains) else math.nan:+.2f} dB", fontsize=12)

        scatter = figure.add_subplot(grid[0, 0])
        if finite:
            low, high = min(inputs.min(), outputs.min()), max(inputs.max(), outputs.max())
            pad = max((high - low) * 0.05, 0.1)
            scatter.plot([low - pad, high + pad], [low - pad, high + pad], color="0.6",
                         linestyle="--", label="no change")
            scatter.scatter(inputs, outputs, s=18, c=np.where(gains >= 0, "tab:blue",
                                                              "tab:red"))
            scatter.set_xlim(low - pad, high + pad)
            scatter.set_ylim(low - pad, high + pad)
            scatter.legend(loc="upper left")
        scatter.set_xlabel("blurry input PSNR (dB)")
        scatter.set_ylabel("output PSNR (dB)")
        scatter.set_title("per image (above the diagonal: improved)")

        spread = figure.add_subplot(grid[0, 1])
        if len(gains):
            spread.hist(gains, bins=min(30, max(5, len(gains) // 2)), color="tab:blue")
            spread.axvline(0, color="0.4", linestyle="--")
            spread.axvline(gains.mean(), color="tab:orange", label=f"mean {gains.mean():+.2f}")
            spread.legend(loc="upper right")
        spread.set_xlabel("PSNR gain: output - input (dB)")
        spread.set_ylabel("images")
        spread.yaxis.set_major_locator(MaxNLocator(integer=True))
        spread.set_title(f"gains ({int(np.sum(gains > 0))} of {len(gains)} images improved)")

        for column, (crops, kind) in enumerate(((best, "largest"), (worst, "smallest"))):
            for row, crop in enumerate(crops):
                axes = figure.add_subplot(grid[1 + row, column])
                axes.imshow(crop.panel, interpolation="nearest")
                axes.set_axis_off()
                axes.set_title(f"{kind} gain: {crop.name} {crop.gain:+.2f} dB   "
                               "(blurry | output | sharp)", fontsize=9)
        figure.tight_layout()
        figure.canvas.draw()
        picture = np.asarray(figure.canvas.buffer_rgba())[..., :3]
        images.write_png(path, picture)
        return path
