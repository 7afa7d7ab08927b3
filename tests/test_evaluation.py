"""Evaluation: an authors' npz on a DPDD-layout folder, datasets, bad images."""

import json
import logging
import shutil

import numpy as np
import pytest
from absl.testing import flagsaver
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from test_data import DPDD_DUMMY

from experiments import evaluate
from kpac_tf import Deblurrer, build_model, save_tf1_npz
from kpac_tf.checkpoints import tf1_npz
from kpac_tf.data import images
from kpac_tf.evaluation import items as evaluation_items, scoring
from kpac_tf.paper import table4


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


def test_dual_model_on_a_dpdd_layout_folder(tmp_path, capsys):
    save_tf1_npz(build_model("dual", channels=4), tmp_path / "dual.npz")
    model = build_model("dual", channels=4)
    tf1_npz.load_tf1_npz(model, tmp_path / "dual.npz")
    items = evaluation_items.folder_items(str(DPDD_DUMMY / "dd_dp_dataset_canon"), "val",
                                          dual=True)
    summary = scoring.evaluate(Deblurrer.from_keras(model), items, str(tmp_path / "out"))
    assert summary["images"] == 2 and np.isfinite(summary["psnr"])


def test_bad_images_abort_or_are_skipped(tmp_path, capsys):
    archive = tmp_path / "archive"
    shutil.copytree(DPDD_DUMMY / "dd_dp_dataset_canon", archive)
    bad = sorted(dummy_scenes())[1]
    (archive / "test_c" / "source" / f"{bad}.png").write_bytes(b"not a png")
    model = build_model("single_2level", channels=4)
    model.save(tmp_path / "m.keras")
    common = dict(checkpoint=str(tmp_path / "m.keras"), input_dir=str(archive),
                  split="test")
    with pytest.raises(SystemExit, match=f"{bad}.*not a readable image.*--skip_bad"):
        run_app(capsys, output_dir=str(tmp_path / "a"), **common)
    assert not (tmp_path / "a" / "metrics.json").exists()
    printed = run_app(capsys, output_dir=str(tmp_path / "b"), skip_bad=True, **common)
    assert f"skipped {bad}" in printed
    metrics = json.loads((tmp_path / "b" / "metrics.json").read_text())
    assert metrics["images"] == 1 and metrics["skipped"][0][0] == bad


def test_blurry_sharp_folders_of_odd_sizes(tmp_path, rng):
    for folder in ("blurry", "sharp"):
        (tmp_path / folder).mkdir()
    for name, (h, w) in {"a": (37, 50), "b": (21, 19)}.items():
        sharp = rng.randint(0, 256, (h, w, 3)).astype(np.uint8)
        images.write_png(tmp_path / "sharp" / f"{name}.png", sharp)
        images.write_png(tmp_path / "blurry" / f"{name}.png", sharp // 2)
    items = evaluation_items.folder_items(str(tmp_path), "test", dual=False)
    deblurrer = Deblurrer.from_keras(build_model("single_3level", channels=4))
    summary = scoring.evaluate(deblurrer, items, str(tmp_path / "out"))
    assert summary["images"] == 2
    assert images.read_image(tmp_path / "out" / "images" / "a.png").shape == (37, 50, 3)


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


def test_table_shows_the_paper_for_dpdd():
    summary = dict(psnr=25.0, ssim=0.84, input_psnr=23.9, input_ssim=0.81)
    table = table4.format_table(summary, "single_2level", 1_578_277, with_paper=True)
    assert "single_2level (paper)  25.24  0.845  0.229" in table
    assert "Blurry input (paper)" in table and "1.58" in table
    assert "(paper)" not in table4.format_table(summary, "dual", 2_061_493)


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


def test_evaluate_takes_one_scene_at_a_time(tmp_path, caplog):
    """A stream of items is never drawn ahead: item i is taken only after item i - 1
    was scored and written, and each is loaded once, when its turn comes."""
    loads = []

    def stream(out):
        for i in range(3):
            assert len(list((out / "images").glob("*.png"))) == i, "drew ahead"

            def load(i=i):
                loads.append(i)
                x = np.full((1, 8, 12, 3), 0.1 * i, np.float32)
                return x, x
            yield f"scene{i}", load

    model = Deblurrer.from_keras(build_model("single_2level", channels=4))
    summary = scoring.evaluate(model, stream(tmp_path / "a"), str(tmp_path / "a"),
                                  count=3)
    assert summary["images"] == 3 and loads == [0, 1, 2]
    items = scoring.Items(3, lambda: stream(tmp_path / "b"))
    assert len(items) == 3 and len(loads) == 3  # the count costs no loading
    assert scoring.evaluate(model, items, str(tmp_path / "b"))["images"] == 3
    # No count: the progress bar runs without a total, and closes with the final count.
    with caplog.at_level(logging.INFO, logger="absl"):
        assert scoring.evaluate(model, stream(tmp_path / "c"), str(tmp_path / "c"))[
            "images"] == 3
    assert loads == [0, 1, 2] * 3
    assert caplog.records[-1].getMessage().startswith("3 images, ")


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


def _count_examples_read(builder, monkeypatch):
    """Names of the examples the builder's datasets yield, as they are read."""
    import tensorflow as tf

    read = []
    real_as_dataset = type(builder).as_dataset

    def counting_as_dataset(self, *args, **kwargs):
        def count(example):
            name = tf.py_function(lambda n: read.append(n.numpy()) or n,
                                  [example["name"]], tf.string)
            return {**example, "name": tf.ensure_shape(name, [])}
        return real_as_dataset(self, *args, **kwargs).map(count)

    monkeypatch.setattr(type(builder), "as_dataset", counting_as_dataset)
    return read


def test_limit_decodes_no_dataset_example_past_it(tmp_path, capsys, monkeypatch):
    """The TFDS path slices the split before anything is read: with --limit=1 the
    builder's dataset yields one example, not the prefetched next."""
    from kpac_tf.data import pipelines

    data_dir = str(tmp_path / "tfds")
    read = _count_examples_read(
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


def test_dataset_stream_reads_at_most_two_scenes_ahead(tmp_path, monkeypatch):
    """While one scene is scored, the split is not read far ahead: the scene in hand,
    the one prefetched and the one being decoded (with TFDS's and tf.data's default
    buffering, 4-6 of these 6 examples were read by then)."""
    import time

    from kpac_tf.data import pipelines

    data_dir = str(tmp_path / "tfds")
    read = _count_examples_read(pipelines.prepare("synthetic", data_dir, "tiny"), monkeypatch)
    items = evaluation_items.dataset_items("synthetic", "tiny", data_dir, None, "train",
                                   "single_2level")
    assert len(items) == 6 and not read  # counted from metadata, nothing read
    stream = iter(items)
    next(stream)
    time.sleep(1.0)  # time for any read-ahead to happen
    assert len(read) <= 3
    assert len(list(stream)) == 5 and len(read) == 6


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


def test_lpips_scores_match_the_lpips_package(reference_dir, tmp_path):
    """The LPIPS column against what the reference `lpips` package computed for the
    same image pairs (tests/data/lpips_alex_io.npz), not against our own metric:
    evaluation scores 8-bit images, which moves these distances by at most 1.3e-5."""
    from kpac_tf.evaluation.lpips import LPIPS

    io = np.load(reference_dir / "lpips_alex_io.npz")
    metric = LPIPS.from_files(reference_dir / "lpips_alex_alexnet_trunk.pth",
                              reference_dir / "lpips_v0.1_alex.pth")
    outputs = iter(io["in0"])
    items = [(f"pair{i}", lambda i=i: (io["in1"][i:i + 1], io["in1"][i:i + 1]))
             for i in range(len(io["in0"]))]
    summary = scoring.evaluate(lambda inputs: next(outputs)[None], items,
                               str(tmp_path / "out"), lpips=metric)
    rows = (tmp_path / "out" / "per_image.csv").read_text().splitlines()[1:]
    np.testing.assert_allclose([float(row.split(",")[-2]) for row in rows],
                               io["distance"], atol=5e-5)
    assert summary["input_lpips"] == 0  # the "blurry" input is the sharp image itself


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


def test_table_shows_our_lpips_beside_the_papers():
    summary = dict(psnr=25.0, ssim=0.84, input_psnr=23.9, input_ssim=0.81, lpips=0.2314,
                   input_lpips=0.3456)
    table = table4.format_table(summary, "single_2level", 1_578_277, with_paper=True)
    assert "single_2level (paper)  25.24  0.845  0.229" in table
    assert "single_2level (ours)   25.00  0.840  0.231" in table
    assert "Blurry input (ours)" in table and "0.346" in table
