"""Table 4 of the paper: its layout, and its numbers (DPDD test set) beside ours."""

from kpac_tf.utils.tables import text_table

# The paper's Table 4 (DPDD test set) and Table 3's blurry input, for comparison.
PAPER_TABLE4 = {"single_2level": dict(psnr=25.24, ssim=0.845, lpips=0.229, params=1.58),
                "single_3level": dict(psnr=25.24, ssim=0.842, lpips=0.225, params=2.06)}
PAPER_INPUT = dict(psnr=23.92, ssim=0.812)


def format_table(summary, model_name, params, with_paper=False):
    """The paper's Table 4 layout; with_paper adds the paper's rows (DPDD only)."""
    rows = [("Model", "PSNR", "SSIM", "LPIPS", "Params (M)")]
    if with_paper:
        rows.append(("Blurry input (paper)", f"{PAPER_INPUT['psnr']:.2f}",
                     f"{PAPER_INPUT['ssim']:.3f}", "-", "-"))
    def lpips_cell(key):
        return "n/a" if summary.get(key) is None else f"{summary[key]:.3f}"

    rows.append(("Blurry input (ours)", f"{summary['input_psnr']:.2f}",
                 f"{summary['input_ssim']:.3f}", lpips_cell("input_lpips"), "-"))
    paper = PAPER_TABLE4.get(model_name)
    if with_paper and paper:
        rows.append((f"{model_name} (paper)", f"{paper['psnr']:.2f}", f"{paper['ssim']:.3f}",
                     f"{paper['lpips']:.3f}", f"{paper['params']:.2f}"))
    rows.append((f"{model_name} (ours)", f"{summary['psnr']:.2f}", f"{summary['ssim']:.3f}",
                 lpips_cell("lpips"), f"{params / 1e6:.2f}" if params else "-"))
    return text_table(rows)


def format_protocols(summaries, model_name, source_bit_depth=None):
    """Table 4's row (the blurry input's and the model's PSNR, SSIM, LPIPS) under
    each scoring protocol (`scoring.evaluate`'s `protocols`), the one chosen first;
    the paper's numbers are 8-bit (its 16-to-8-bit conversion and SSIM window are
    unstated; its authors' code reads images with Pillow, high_byte). An 8-bit
    `source_bit_depth` is said: the conversion has nothing to convert there."""
    def cell(summary, key, digits):
        value = summary.get(key)
        return "n/a" if value is None else f"{value:.{digits}f}"

    rows = [("Protocol", "Input PSNR", "Input SSIM", "PSNR", "SSIM", "LPIPS")]
    for summary in summaries:
        rows.append((summary["label"], cell(summary, "input_psnr", 2),
                     cell(summary, "input_ssim", 3), cell(summary, "psnr", 2),
                     cell(summary, "ssim", 3), cell(summary, "lpips", 3)))
    lines = [f"{model_name} (ours) under each scoring protocol (the first: as chosen)",
             text_table(rows)]
    if source_bit_depth == 8:
        lines.append("(8-bit images: round and high_byte see the same pixels; 16-bit "
                     "scores the output at 16 bits against the 8-bit target)")
    return "\n".join(lines)
