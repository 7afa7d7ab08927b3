"""The paper's key idea, Sec. 3 (Eqs. 3-5, Figs. 1, 2, 4): spatial inverse kernels.

Kernels are float64 numpy arrays with odd sides, centred; images are float64
(h, w) or (h, w, c) in [0, 1]. Convolutions use reflect padding.
"""

import numpy as np

from kpac_tf.data import pixels
from kpac_tf.evaluation import metrics
from kpac_tf.evaluation.wiener import centered_pad_to
from kpac_tf.rendering import defocus
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


# The paper's numbers for Eqs. 4 and 5 (Sec. 3.2) and the dilated inverse (Sec. 4.1).
PAPER = {"psnr_scaled_inverse_vs_inverse_of_scaled": 51.09,
         "psnr_inverse_of_scaled_to_sharp": 21.64, "psnr_scaled_inverse_to_sharp": 21.59,
         "psnr_dilated_vs_scaled_inverse": 53.74, "accuracy_alpha_half": 0.874,
         "accuracy_nnls": 0.925}


def gray_photo(name):
    """A scikit-image bundled photo as grey float64 (h, w) in [0, 1]."""
    from skimage import color, data

    image = getattr(data, name)()
    if image.ndim == 3:
        return np.asarray(color.rgb2gray(image[..., :3]), np.float64)
    return pixels.to_unit(image, np.float64)


def _psnr(a, b):
    """PSNR (dB) of grey float64 (h, w) images in [0, 1]."""
    return float(metrics.psnr(a[..., None], b[..., None]))


def _odd(x):
    x = int(np.ceil(x))
    return x + 1 - x % 2


def eqs_4_and_5(sharp, radius, snr, support, lanczos_a):
    """Eqs. 4 and 5 (and the dilated inverse of Sec. 4.1) on one grey image `sharp`
    (float64 (h, w) in [0, 1]) for a disc kernel of `radius` px, a Wiener inverse of
    side `support` and `snr`, Lanczos-`lanczos_a` resampling.

    Returns:
        ({quantity: value} as `PAPER` names them, plus `psnr_blurry_to_sharp` and
        `nnls_alphas`), {figure name: float64 image in [0, 1]}.
    """
    k = defocus.aperture_kernel(radius)
    k_inv = wiener_inverse(k, support, snr)

    def scaled(kernel, s):
        return lanczos_upsample(kernel, s, lanczos_a) / s ** 2

    # Eq. 4 at s = 5 (Fig. 1) and the dilated inverse (Fig. 4).
    s = 5
    blur = scaled(k, s)
    blurry = convolve(sharp, blur)
    inverse_of_scaled = convolve(blurry, wiener_inverse(blur, _odd(support * s), snr))
    scaled_inverse = convolve(blurry, scaled(k_inv, s))
    dilated_inverse = convolve(blurry, dilate(k_inv, s))
    numbers = {
        "psnr_blurry_to_sharp": _psnr(blurry, sharp),
        "psnr_scaled_inverse_vs_inverse_of_scaled": _psnr(scaled_inverse, inverse_of_scaled),
        "psnr_inverse_of_scaled_to_sharp": _psnr(inverse_of_scaled, sharp),
        "psnr_scaled_inverse_to_sharp": _psnr(scaled_inverse, sharp),
        "psnr_dilated_vs_scaled_inverse": _psnr(dilated_inverse, scaled_inverse),
    }
    # Eq. 5 (Fig. 2): blur at s = 3.5, inverse kernels at s = 3 and 4.
    blurry = convolve(sharp, scaled(k, 3.5))
    results = [convolve(blurry, scaled(k_inv, si)) for si in (3.0, 4.0)]
    target = convolve(blurry, scaled(k_inv, 3.5))
    half = 0.5 * results[0] + 0.5 * results[1]
    alphas = nnls_alphas(results, target)
    fitted = alphas[0] * results[0] + alphas[1] * results[1]
    numbers.update(accuracy_alpha_half=approximation_accuracy(half, target),
                   accuracy_nnls=approximation_accuracy(fitted, target),
                   nnls_alphas=[float(a) for a in alphas])
    figures = {"fig1_blurry": convolve(sharp, blur), "fig1b_inverse_of_scaled":
               inverse_of_scaled, "fig1c_scaled_inverse": scaled_inverse,
               "fig4a_dilated_inverse": dilated_inverse, "fig2a_blurry_3.5": blurry,
               "fig2d_blend_half": half, "fig2e_target_3.5": target}
    return numbers, figures
