"""The paper's key idea, Sec. 3 (Eqs. 3-5, Figs. 1, 2, 4): spatial inverse kernels.

Kernels are float64 numpy arrays with odd sides, centred; images are float64
(h, w) or (h, w, c) in [0, 1]. Convolutions use reflect padding.
"""

import numpy as np

from kpac_tf.evaluation.wiener import centered_pad_to
from kpac_tf.rendering.defocus import convolve_same


def convolve(image, kernel):
    """'Same' convolution of an image (h, w[, c]) with a centred odd kernel."""
    image = np.asarray(image, np.float64)
    flat = image[..., None] if image.ndim == 2 else image
    out = convolve_same(flat, np.asarray(kernel, np.float64))
    return out[..., 0] if image.ndim == 2 else out


def wiener_inverse(kernel, size, snr):
    """Spatial Wiener pseudo-inverse kernel k† (Eq. 3 with SNR regularisation).

    k† = F^-1( conj(F(k)) / (|F(k)|^2 + 1/snr) ), computed on a (size, size) grid
    and returned centred with side `size` (odd): the finite support of the inverse.
    """
    if size % 2 == 0:
        raise ValueError(f"size must be odd, got {size}")
    padded = np.fft.ifftshift(centered_pad_to(kernel, (size, size)))
    spectrum = np.fft.fft2(padded)
    inverse = np.conj(spectrum) / (np.abs(spectrum) ** 2 + 1.0 / snr)
    return np.real(np.fft.fftshift(np.fft.ifft2(inverse)))


def _lanczos(x, a=3):
    x = np.asarray(x, np.float64)
    out = np.sinc(x) * np.sinc(x / a)
    return np.where(np.abs(x) < a, out, 0.0)


def lanczos_upsample(kernel, scale, a=3):
    """k↑s: a kernel resampled `scale` times larger with a Lanczos-`a` filter [7].

    The centre stays the centre; the output side is the odd size covering the
    scaled support. Values are interpolated, so the sum grows by about scale^2:
    the paper's (1/s^2) k↑s restores it.
    """
    n = kernel.shape[0]
    half_in = n // 2
    half_out = int(np.ceil((half_in + a) * scale))
    positions = np.arange(-half_out, half_out + 1) / scale   # output taps in input units
    taps = np.arange(-half_in, half_in + 1)
    weights = _lanczos(positions[:, None] - taps[None, :], a)  # (out, in)
    return weights @ kernel @ weights.T


def dilate(kernel, rate):
    """k↑/s: the kernel with rate - 1 zeros between taps (an atrous kernel)."""
    n = kernel.shape[0]
    out = np.zeros((rate * (n - 1) + 1,) * 2)
    out[::rate, ::rate] = kernel
    return out


def approximation_accuracy(approx, target, floor=0.05):
    """The paper's footnote 1: 1 - MAE(1, x_hat / x_s), over pixels where the target
    exceeds `floor` (the ratio is meaningless near black)."""
    mask = target > floor
    return float(1.0 - np.mean(np.abs(1.0 - approx[mask] / target[mask])))


def nnls_alphas(results, target):
    """Non-negative least-squares weights alpha_i with target ~ sum_i alpha_i results_i."""
    from scipy.optimize import nnls

    matrix = np.stack([r.ravel() for r in results], axis=1)
    alphas, _ = nnls(matrix, target.ravel())
    return alphas
