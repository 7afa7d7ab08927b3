"""Non-blind Wiener deconvolution, the classical baseline a learned model must beat:
each synthetic test image deconvolved with a disc of its true mean blur radius.

Images are float64 (h, w) or (h, w, c) in [0, 1]; kernels centred, odd sides.
"""

import numpy as np

from kpac_tf.data import pixels
from kpac_tf.evaluation import scoring
from kpac_tf.rendering import defocus

# The SNRs tried by default: the best over the split is the baseline.
SNRS = (3.0, 10.0, 30.0, 100.0, 300.0, 1000.0)


def wiener_deconvolve(image, kernel, snr):
    """Non-blind Wiener deconvolution of (h, w[, c]) in [0, 1] by a centred kernel.

    Works in the frequency domain on the image mirrored to (2h, 2w), which is
    periodic without jumps, so borders do not ring. Returns the input's shape.
    """
    image = np.asarray(image, np.float64)
    flat = image[..., None] if image.ndim == 2 else image
    height, width = flat.shape[:2]
    mirrored = np.pad(flat, ((0, height), (0, width), (0, 0)), mode="symmetric")
    spectrum = np.fft.fft2(np.fft.ifftshift(centered_pad_to(kernel, mirrored.shape[:2])))
    gain = np.conj(spectrum) / (np.abs(spectrum) ** 2 + 1.0 / snr)
    restored = np.real(np.fft.ifft2(np.fft.fft2(mirrored, axes=(0, 1)) * gain[..., None],
                                    axes=(0, 1)))[:height, :width]
    return restored[..., 0] if image.ndim == 2 else restored


def centered_pad_to(kernel, shape):
    """Zero-pads a centred odd kernel to `shape` (h, w), centred at (h // 2, w // 2)."""
    out = np.zeros(shape)
    top, left = shape[0] // 2 - kernel.shape[0] // 2, shape[1] // 2 - kernel.shape[1] // 2
    out[top:top + kernel.shape[0], left:left + kernel.shape[1]] = kernel
    return out


def wiener_scores(builder, snrs):
    """{snr: summary} of Wiener deconvolution with the true mean radius, per SNR."""
    scores = {snr: [] for snr in snrs}
    for example in builder.as_dataset(split="test"):
        blurry, sharp = example["blurry"].numpy(), example["sharp"].numpy()  # uint8
        unit = pixels.to_unit(blurry, np.float64)
        kernel = defocus.aperture_kernel(float(example["blur_radius"].numpy().mean()))
        for snr in snrs:
            linear = wiener_deconvolve(unit ** defocus.GAMMA, kernel, snr)
            restored = np.clip(linear, 0, 1) ** (1 / defocus.GAMMA)
            scores[snr].append(scoring.score_image(
                example["name"].numpy().decode(), pixels.to_network(blurry)[None],
                pixels.unit_to_network(restored)[None], pixels.to_network(sharp)[None]))
    return {snr: scoring.summarize(s) for snr, s in scores.items()}


def best_snr(scores):
    """The SNR of `wiener_scores`' result with the highest mean PSNR."""
    return max(scores, key=lambda snr: scores[snr]["psnr"])
