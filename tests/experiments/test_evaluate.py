"""experiments/evaluate: an authors' npz on a DPDD-layout folder, datasets, bad
images, --limit, --to_8bit and the LPIPS column."""

import json
import shutil

import numpy as np
import pytest
from absl.testing import flagsaver
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from experiments import evaluate
from kpac_tf import build_model
from kpac_tf.data import images
from tests.test_case import DPDD_DUMMY, count_examples_read


def dummy_scenes(split="test"):
    """{scene name: (source, target)} of the dummy DPDD archive, its sorted folders
    paired by position as DPDD's loaders do (a target has a name of its own)."""
    folder = DPDD_DUMMY / "dd_dp_dataset_canon" / f"{split}_c"
    sources, targets = (sorted((folder / kind).glob("*.png")) for kind in ("source",
                                                                            "target"))
    return {source.stem: (source, target) for source, target in zip(sources, targets)}


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
    scenes = dummy_scenes()
    assert sorted(row.split(",")[0] for row in rows[1:]) == sorted(scenes)
    for row in rows[1:]:
        name, psnr, ssim = row.split(",")[:3]
        output = images.read_image(tmp_path / "images" / f"{name}.png") / 255.0
        target = np.round(images.read_image(scenes[name][1]) / 257.0) / 255.0
        assert float(psnr) == pytest.approx(
            peak_signal_noise_ratio(target, output, data_range=1), abs=1e-3)
        assert float(ssim) == pytest.approx(
            structural_similarity(target, output, data_range=1, channel_axis=-1), abs=1e-3)


def test_bad_images_abort_or_are_skipped(tmp_path, capsys):
    archive = tmp_path / "archive"
    shutil.copytree(DPDD_DUMMY / "dd_dp_dataset_canon", archive)
    bad = sorted(dummy_scenes())[1]
    (archive / "test_c" / "source" / f"{bad}.png").write_bytes(b"not a png")
    model = build_model("single_2level", channels=4)
    model.save(tmp_path / "m.keras")
    common = dict(checkpoint=str(tmp_path / "m.keras"), input_dir=str(archive),
                  split="test")
    with pytest.raises(SystemExit, match=f"{bad}.*not a PNG or JPEG image.*--skip_bad"):
        run_app(capsys, output_dir=str(tmp_path / "a"), **common)
    assert not (tmp_path / "a" / "metrics.json").exists()
    printed = run_app(capsys, output_dir=str(tmp_path / "b"), skip_bad=True, **common)
    assert f"skipped {bad}" in printed
    metrics = json.loads((tmp_path / "b" / "metrics.json").read_text())
    assert metrics["images"] == 1 and metrics["skipped"][0][0] == bad


def test_synthetic_split_with_a_training_run(tmp_path, capsys):
    from kpac_tf.training import loop, settings

    data_dir = str(tmp_path / "tfds")
    run = tmp_path / "run"
    loop.train(settings.make_config(
        None, model_dir=str(run), dataset="synthetic", dataset_config="tiny",
        data_dir=data_dir, steps=1, batch_size=2, crop_size=32,
        model_overrides={"channels": 4}, eval_images=1))
    printed = run_app(capsys, checkpoint=str(run), dataset="synthetic",
                      dataset_config="tiny", data_dir=data_dir, split="test",
                      output_dir=str(tmp_path / "out"))
    assert "Blurry input (ours)" in printed
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["images"] == 3
    assert len(list((tmp_path / "out" / "images").glob("*.png"))) == 3


def test_to_8bit_flag_reaches_the_scored_images(tmp_path, capsys):
    archive = DPDD_DUMMY / "dd_dp_dataset_canon"
    build_model("single_2level", channels=4).save(tmp_path / "m.keras")
    eight_bit = {"round": lambda x: np.round(x / 257.0), "high_byte": lambda x: x >> 8}
    scenes = dummy_scenes()
    scores = {}
    for to_8bit, convert in eight_bit.items():
        out = tmp_path / to_8bit
        run_app(capsys, checkpoint=str(tmp_path / "m.keras"), input_dir=str(archive),
                split="test", output_dir=str(out), to_8bit=to_8bit)
        assert json.loads((out / "metrics.json").read_text())["to_8bit"] == to_8bit
        rows = (out / "per_image.csv").read_text().splitlines()[1:]
        for row in rows:
            name, input_psnr = row.split(",")[0], float(row.split(",")[4])
            blurry, sharp = (convert(images.read_image(path)) / 255.0
                             for path in scenes[name])
            assert input_psnr == pytest.approx(
                peak_signal_noise_ratio(sharp, blurry, data_range=1), abs=1e-3)
            scores[to_8bit, name] = input_psnr
    first = sorted(scenes)[0]
    assert scores["round", first] != scores["high_byte", first]


def test_limit_reads_only_the_first_scenes_of_a_folder(tmp_path, capsys, monkeypatch):
    archive = DPDD_DUMMY / "dd_dp_dataset_canon"
    build_model("single_2level", channels=4).save(tmp_path / "m.keras")
    read = []
    real_read = images.read_image
    monkeypatch.setattr(images, "read_image", lambda path: read.append(path) or
                        real_read(path))
    run_app(capsys, checkpoint=str(tmp_path / "m.keras"), input_dir=str(archive),
            split="test", output_dir=str(tmp_path / "out"), limit=1)
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["images"] == 1
    assert len(read) == 2  # one scene: its blurry centre and its target
    with pytest.raises(SystemExit, match="--limit=-1"):
        run_app(capsys, checkpoint=str(tmp_path / "m.keras"), input_dir=str(archive),
                output_dir=str(tmp_path / "neg"), limit=-1)


def test_limit_decodes_no_dataset_example_past_it(tmp_path, capsys, monkeypatch):
    """The TFDS path slices the split before anything is read: with --limit=1 the
    builder's dataset yields one example, not the prefetched next."""
    from kpac_tf.data import pipelines

    data_dir = str(tmp_path / "tfds")
    read = count_examples_read(
        pipelines.prepare("dpdd", data_dir, "single", manual_dir=DPDD_DUMMY), monkeypatch)
    build_model("single_2level", channels=4).save(tmp_path / "m.keras")
    common = dict(checkpoint=str(tmp_path / "m.keras"), dataset="dpdd", data_dir=data_dir,
                  manual_dir=str(DPDD_DUMMY), split="test")
    run_app(capsys, output_dir=str(tmp_path / "one"), limit=1, **common)
    assert len(read) == 1
    assert json.loads((tmp_path / "one" / "metrics.json").read_text())["images"] == 1
    read.clear()
    run_app(capsys, output_dir=str(tmp_path / "all"), limit=5, **common)  # past the end
    assert len(read) == 2
    assert json.loads((tmp_path / "all" / "metrics.json").read_text())["images"] == 2


@pytest.fixture
def pairs_dir(tmp_path, rng):
    """blurry/ + sharp/ folders of two 40x48 pairs (big enough for LPIPS)."""
    for folder in ("sharp", "blurry"):
        (tmp_path / "pairs" / folder).mkdir(parents=True)
    for name in ("a", "b"):
        sharp = rng.randint(0, 256, (40, 48, 3)).astype(np.uint8)
        images.write_png(tmp_path / "pairs" / "sharp" / f"{name}.png", sharp)
        images.write_png(tmp_path / "pairs" / "blurry" / f"{name}.png", sharp // 2 + 60)
    build_model("single_2level", channels=4).save(tmp_path / "m.keras")
    return tmp_path / "pairs"


def test_lpips_column_from_the_two_weight_files(reference_dir, pairs_dir, tmp_path, capsys):
    files = dict(lpips_alexnet=str(reference_dir / "lpips_alex_alexnet_trunk.pth"),
                 lpips_linear=str(reference_dir / "lpips_v0.1_alex.pth"))
    out = tmp_path / "out"
    printed = run_app(capsys, checkpoint=str(tmp_path / "m.keras"), input_dir=str(pairs_dir),
                      output_dir=str(out), **files)
    assert "LPIPS: unavailable" not in printed
    summary = json.loads((out / "metrics.json").read_text())
    rows = (out / "per_image.csv").read_text().splitlines()
    assert rows[0].endswith(",lpips,input_lpips")
    values = [float(row.split(",")[-2]) for row in rows[1:]]
    assert summary["lpips"] == pytest.approx(np.mean(values), abs=1e-6)
    assert 0 < summary["lpips"] and 0 < summary["input_lpips"]
    assert f"{summary['lpips']:.3f}" in printed.split("(ours)")[-1]


def test_lpips_says_which_file_is_missing(pairs_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "no_torch"))
    printed = run_app(capsys, checkpoint=str(tmp_path / "m.keras"), input_dir=str(pairs_dir),
                      output_dir=str(tmp_path / "out"))
    assert "LPIPS: unavailable" in printed and "alexnet-owt-7be5be79.pth" in printed
    assert "weights/v0.1/alex.pth" in printed
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["lpips"] is None
    with pytest.raises(SystemExit, match="missing.pth"):
        run_app(capsys, checkpoint=str(tmp_path / "m.keras"), input_dir=str(pairs_dir),
                output_dir=str(tmp_path / "out2"), lpips_alexnet=str(tmp_path / "missing.pth"))


def test_every_protocol_side_by_side_with_the_one_chosen_recorded(tmp_path, capsys):
    """--all_protocols on 16-bit scenes: Table 4's row under each protocol, the chosen
    one first and named; metrics.json records the protocol; the images are written at
    the chosen depth; report.png is drawn; the dummy archive's random (unpaired)
    images are warned about."""
    archive = DPDD_DUMMY / "dd_dp_dataset_canon"
    build_model("single_2level", channels=4).save(tmp_path / "m.keras")
    out = tmp_path / "out"
    printed = run_app(capsys, checkpoint=str(tmp_path / "m.keras"), input_dir=str(archive),
                      split="test", output_dir=str(out), bit_depth="16", ssim="gaussian",
                      all_protocols=True)
    assert "Scored 16-bit, SSIM gaussian" in printed
    table = printed.split("under each scoring protocol")[1].splitlines()
    assert [row.split("  ")[0] for row in table[3:9]] == [
        "16-bit, SSIM gaussian", "8-bit (round), SSIM uniform", "8-bit (round), SSIM gaussian",
        "8-bit (high_byte), SSIM uniform", "8-bit (high_byte), SSIM gaussian",
        "16-bit, SSIM uniform"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["protocol"] == {"bit_depth": 16, "to_8bit": None, "ssim": "gaussian"}
    assert len(metrics["protocols"]) == 6 and metrics["source_bit_depth"] == 16
    assert images.read_image(next((out / "images").glob("*.png"))).dtype == np.uint16
    assert images.read_image(out / "report.png").shape[2] == 3
    assert "warning: the blurry input scores below 15 dB against its target on 2 of 2 " \
        "images" in printed
    assert f"{out}/report.png" in printed
