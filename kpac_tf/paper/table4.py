"""Table 4 of the paper: its layout, and its numbers (DPDD test set) beside ours."""

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
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                       for i, (cell, w) in enumerate(zip(row, widths))) for row in rows]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)
