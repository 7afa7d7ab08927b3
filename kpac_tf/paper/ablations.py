"""The paper's ablations (Tables 1-3): every variant trained with identical data, steps
and seed, then scored on the test split, beside the paper's numbers, and compared
image by image with the table's reference variant (the paper's model: the variant
without overrides) with a 95% paired bootstrap interval."""

import os
import re

from kpac_tf.evaluation import comparison, scoring
from kpac_tf.models.networks import build_model
from kpac_tf.training import loop, run_folder, settings


# Variant name -> (build_model overrides, paper PSNR in dB, paper parameters in M).
TABLES = {
    1: {"w/o weight sharing": (dict(share_weights=False), 24.78, 2.50),
        "w/ weight sharing": ({}, 25.21, 1.58)},
    2: {"baseline (7 residual blocks)": (dict(block_type="residual", num_blocks=7),
                                         24.59, 2.26),
        "ACs": (dict(scale_attention=False, shape_attention=False), 24.74, 1.33),
        "ACs + shape": (dict(scale_attention=False), 24.98, 1.33),
        "ACs + scale": (dict(shape_attention=False), 25.03, 1.58),
        "ACs + scale + shape": ({}, 25.21, 1.58)},
    3: {f"{n} KPAC block{'s' if n > 1 else ''}": (dict(num_blocks=n), psnr, params)
        for n, psnr, params in ((1, 24.82, 1.05), (2, 25.21, 1.58), (3, 25.25, 2.11),
                                (4, 25.14, 2.64))},
}


def _slug(name):
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def reference_variant(table):
    """The variant of `table` that is the paper's model (no overrides)."""
    return next(variant for variant, (overrides, _, _) in TABLES[table].items()
                if not overrides)


def run_table(table, output, preset=None, model=None, channels=None, **budget):
    """Trains and scores every variant of `table`; returns {variant: result}, each
    with `versus_reference`: `comparison.compare` of its test images against the
    reference variant's (`comparison.as_json`; None for the reference itself).

    `budget` holds `TrainConfig` settings shared by all variants (steps, data, seed).
    """
    model = model or "single_2level"
    results, per_image = {}, {}
    for variant, (overrides, paper_psnr, paper_params) in TABLES[table].items():
        overrides = dict(overrides, **({"channels": channels} if channels else {}))
        model_dir = os.path.join(output, f"table{table}", _slug(variant))
        config = settings.make_config(preset, model_dir=model_dir, model=model,
                                      model_overrides=overrides, **budget)
        final = loop.train(config)
        per_image[variant] = scoring.read_per_image(
            run_folder.path(model_dir, run_folder.TEST_PER_IMAGE))
        results[variant] = dict(
            psnr=final["psnr"], ssim=final["ssim"], input_psnr=final["input_psnr"],
            params=build_model(model, **overrides).count_params(),
            paper_psnr=paper_psnr, paper_params_m=paper_params)
    reference = reference_variant(table)
    for variant, result in results.items():
        result["versus_reference"] = None if variant == reference else comparison.as_json(
            comparison.compare(per_image[variant], per_image[reference]))
    return results


def format_table(table, results, budget):
    """`run_table`'s results as printed lines (str), ours beside the paper's."""
    reference = reference_variant(table)
    lines = [f"Table {table} on {budget['dataset']} ({budget['steps']} steps, "
             f"seed {budget['seed']}); paper numbers are DPDD after 200k steps",
             f"{'variant':<30} {'PSNR':>7} {'vs reference (95% CI)':<36} {'SSIM':>6} "
             f"{'params':>9} | {'paper PSNR':>10} {'paper M':>7}"]
    for variant, r in results.items():
        if r["versus_reference"] is None:
            versus = "reference"
        elif "psnr" not in r["versus_reference"]:
            versus = "n/a (under 2 finite images)"
        else:
            versus = comparison.format_difference("psnr", comparison.Difference(
                **r["versus_reference"]["psnr"]["difference"]))
        lines.append(f"{variant:<30} {r['psnr']:7.2f} {versus:<36} {r['ssim']:6.3f} "
                     f"{r['params'] / 1e6:8.2f}M | {r['paper_psnr']:10.2f} "
                     f"{r['paper_params_m']:7.2f}")
    first = next(iter(results.values()))
    lines.append(f"blurry input PSNR {first['input_psnr']:.2f} dB; each variant's PSNR "
                 f"minus {reference!r}'s, image by image, with a 95% paired bootstrap "
                 "interval (within noise: it holds 0)")
    return "\n".join(lines)
