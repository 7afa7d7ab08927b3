"""Evaluation: an authors' npz on a DPDD-layout folder, datasets, bad images."""

import json
import shutil

import numpy as np
import pytest
from absl.testing import flagsaver
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from experiments import evaluate
from kpac_tf import build_model, checkpoints, evaluation, images, save_tf1_npz

from test_data import DPDD_DUMMY



def run_app(capsys, **values):
    with flagsaver.flagsaver(**values):
        evaluate.main(["evaluate"])
    return capsys.readouterr().out


def test_authors_npz_on_a_dpdd_layout_folder(reference_dir, tmp_path, capsys):
    archive = DPDD_DUMMY / "dd_dp_dataset_canon"
    printed = run_app(capsys, checkpoint=str(reference_dir / "tf1_2level_weights.npz"),
                      model="single_2level", input_dir=str(archive), split="test",
                      output_dir=str(tmp_path))
    assert "single_2level (ours)" in printed and "LPIPS: unavailable" in printed
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["images"] == 2 and metrics["lpips"] is None
    rows = (tmp_path / "per_image.csv").read_text().splitlines()
    assert rows[0] == "name,psnr,ssim,mae,input_psnr,input_ssim,input_mae"
    # Independent check: scikit-image on the written 8-bit output and the 8-bit target.
    for row in rows[1:]:
        name, psnr, ssim = row.split(",")[:3]
        output = images.read_image(tmp_path / "images" / f"{name}.png") / 255.0
        target = np.round(images.read_image(archive / "test_c" / "target" / f"{name}.png")
                          / 257.0) / 255.0
        assert float(psnr) == pytest.approx(
            peak_signal_noise_ratio(target, output, data_range=1), abs=1e-3)
        assert float(ssim) == pytest.approx(
            structural_similarity(target, output, data_range=1, channel_axis=-1), abs=1e-3)


def test_dual_model_on_a_dpdd_layout_folder(tmp_path, capsys):
    save_tf1_npz(build_model("dual", channels=4), tmp_path / "dual.npz")
    model = build_model("dual", channels=4)
    checkpoints.load_tf1_npz(model, tmp_path / "dual.npz")
    items = evaluate.folder_items(str(DPDD_DUMMY / "dd_dp_dataset_canon"), "val", dual=True)
    summary = evaluation.evaluate(model, items, str(tmp_path / "out"))
    assert summary["images"] == 2 and np.isfinite(summary["psnr"])


def test_bad_images_abort_or_are_skipped(tmp_path, capsys):
    archive = tmp_path / "archive"
    shutil.copytree(DPDD_DUMMY / "dd_dp_dataset_canon", archive)
    (archive / "test_c" / "source" / "1P0ATE01.png").write_bytes(b"not a png")
    model = build_model("single_2level", channels=4)
    model.save(tmp_path / "m.keras")
    common = dict(checkpoint=str(tmp_path / "m.keras"), input_dir=str(archive),
                  split="test")
    with pytest.raises(SystemExit, match="1P0ATE01.*not a readable image.*--skip_bad"):
        run_app(capsys, output_dir=str(tmp_path / "a"), **common)
    assert not (tmp_path / "a" / "metrics.json").exists()
    printed = run_app(capsys, output_dir=str(tmp_path / "b"), skip_bad=True, **common)
    assert "skipped 1P0ATE01" in printed
    metrics = json.loads((tmp_path / "b" / "metrics.json").read_text())
    assert metrics["images"] == 1 and metrics["skipped"][0][0] == "1P0ATE01"


def test_blurry_sharp_folders_of_odd_sizes(tmp_path, rng):
    for folder in ("blurry", "sharp"):
        (tmp_path / folder).mkdir()
    for name, (h, w) in {"a": (37, 50), "b": (21, 19)}.items():
        sharp = rng.randint(0, 256, (h, w, 3)).astype(np.uint8)
        images.write_png(tmp_path / "sharp" / f"{name}.png", sharp)
        images.write_png(tmp_path / "blurry" / f"{name}.png", sharp // 2)
    items = evaluate.folder_items(str(tmp_path), "test", dual=False)
    summary = evaluation.evaluate(build_model("single_3level", channels=4), items,
                                  str(tmp_path / "out"))
    assert summary["images"] == 2
    assert images.read_image(tmp_path / "out" / "images" / "a.png").shape == (37, 50, 3)


def test_synthetic_split_with_a_training_run(tmp_path, capsys):
    from kpac_tf import training

    data_dir = str(tmp_path / "tfds")
    run = tmp_path / "run"
    training.train(training.make_config(
        None, model_dir=str(run), dataset="synthetic", dataset_config="tiny",
        data_dir=data_dir, steps=1, batch_size=2, crop_size=32,
        model_overrides={"channels": 4}, eval_images=1))
    printed = run_app(capsys, checkpoint=str(run), dataset="synthetic",
                      dataset_config="tiny", data_dir=data_dir, split="test",
                      output_dir=str(tmp_path / "out"))
    assert "Blurry input (ours)" in printed
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["images"] == 3
    assert len(list((tmp_path / "out" / "images").glob("*.png"))) == 3


def test_table_shows_the_paper_for_dpdd():
    summary = dict(psnr=25.0, ssim=0.84, input_psnr=23.9, input_ssim=0.81)
    table = evaluation.format_table(summary, "single_2level", 1_578_277, with_paper=True)
    assert "single_2level (paper)  25.24  0.845  0.229" in table
    assert "Blurry input (paper)" in table and "1.58" in table
    assert "(paper)" not in evaluation.format_table(summary, "dual", 2_061_493)


def test_to_8bit_flag_reaches_the_scored_images(tmp_path, capsys):
    archive = DPDD_DUMMY / "dd_dp_dataset_canon"
    build_model("single_2level", channels=4).save(tmp_path / "m.keras")
    eight_bit = {"round": lambda x: np.round(x / 257.0), "high_byte": lambda x: x >> 8}
    scores = {}
    for to_8bit, convert in eight_bit.items():
        out = tmp_path / to_8bit
        run_app(capsys, checkpoint=str(tmp_path / "m.keras"), input_dir=str(archive),
                split="test", output_dir=str(out), to_8bit=to_8bit)
        assert json.loads((out / "metrics.json").read_text())["to_8bit"] == to_8bit
        rows = (out / "per_image.csv").read_text().splitlines()[1:]
        for row in rows:
            name, input_psnr = row.split(",")[0], float(row.split(",")[4])
            blurry, sharp = (convert(images.read_image(archive / "test_c" / folder /
                                                       f"{name}.png")) / 255.0
                             for folder in ("source", "target"))
            assert input_psnr == pytest.approx(
                peak_signal_noise_ratio(sharp, blurry, data_range=1), abs=1e-3)
            scores[to_8bit, name] = input_psnr
    assert scores["round", "1P0ATE00"] != scores["high_byte", "1P0ATE00"]
