"""SavedModel export for TF Serving, loaded in a fresh process; deblur and export apps."""

import json
import os
import pathlib
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from absl.testing import flagsaver

from experiments import deblur as deblur_app, export as export_app
from kpac_tf import build_model, deblur, load_deblurrer, save_tf1_npz
from kpac_tf.data import images
from kpac_tf.deploy.export import export_saved_model

REPO = pathlib.Path(__file__).resolve().parents[1]



@pytest.mark.parametrize("name", ["single_2level", "dual"])
def test_export_serves_any_size_in_a_fresh_process(tmp_path, name, rng):
    model = build_model(name, channels=4)
    path = export_saved_model(model, str(tmp_path / "serving"))
    assert path.endswith(os.path.join("serving", "1"))
    keys = ["center", "left", "right"] if name == "dual" else ["images"]
    views = [rng.randint(0, 256, (2, 101, 157, 3)).astype(np.uint8) for _ in keys]
    np.savez(tmp_path / "views.npz", *views)
    views16 = [rng.randint(0, 65536, (2, 101, 157, 3)).astype(np.uint16) for _ in keys]
    np.savez(tmp_path / "views16.npz", *views16)
    script = textwrap.dedent(f"""
        import json, os
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
        import numpy as np, tensorflow as tf
        loaded = tf.saved_model.load({path!r})
        views = list(np.load({str(tmp_path / 'views.npz')!r}).values())
        keys = {keys!r}
        out8 = loaded.signatures["serving_default"](
            **{{k: tf.constant(v) for k, v in zip(keys, views)}})["deblurred"]
        outf = loaded.signatures["float"](
            **{{k: tf.constant(v / 255.0, tf.float32) for k, v in zip(keys, views)}})["deblurred"]
        views16 = list(np.load({str(tmp_path / 'views16.npz')!r}).values())
        out16 = loaded.signatures["serving_uint16"](
            **{{k: tf.constant(v) for k, v in zip(keys, views16)}})["deblurred"]
        np.savez({str(tmp_path / 'out.npz')!r}, u8=out8.numpy(), f=outf.numpy(), u16=out16.numpy())
        print(json.dumps(sorted(loaded.signatures)))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == [
        "float", "serving_default", "serving_uint16"]
    served = np.load(tmp_path / "out.npz")
    expected = deblur(model, tuple(views) if name == "dual" else views[0])
    assert served["u8"].dtype == np.uint8 and served["u8"].shape == (2, 101, 157, 3)
    # Same values up to rounding at an 8-bit boundary (graph vs eager float order).
    difference = np.abs(served["u8"].astype(int) - expected.astype(int))
    assert difference.max() <= 1 and (difference == 0).mean() > 0.999
    np.testing.assert_allclose(served["f"] * 2 - 1, _keras_any_size(model, views),
                               atol=2e-5)
    assert served["u16"].dtype == np.uint16 and served["u16"].shape == (2, 101, 157, 3)
    expected16 = deblur(model, tuple(views16) if name == "dual" else views16[0])
    assert np.abs(served["u16"].astype(int) - expected16.astype(int)).max() <= 2


def _keras_any_size(model, views):
    from kpac_tf.deploy.deblurring import Deblurrer

    inputs = [v.astype(np.float32) / 127.5 - 1 for v in views]
    out = Deblurrer.from_keras(model)(tuple(inputs) if len(inputs) == 3 else inputs[0])
    return np.clip(np.asarray(out), -1, 1)


def test_saved_model_cli_lists_the_signatures(tmp_path):
    path = export_saved_model(build_model("single_3level", channels=4), str(tmp_path))
    cli = pathlib.Path(sys.executable).with_name("saved_model_cli")
    command = [str(cli)] if cli.exists() else [
        sys.executable, "-m", "tensorflow.python.tools.saved_model_cli"]
    result = subprocess.run(command + ["show", "--all", "--dir", path], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    for expected in ("signature_def['serving_default']", "signature_def['float']",
                     "signature_def['serving_uint16']", "inputs['images']",
                     "outputs['deblurred']", "dtype: DT_UINT8", "dtype: DT_UINT16"):
        assert expected in result.stdout


def test_versions_are_never_overwritten(tmp_path):
    model = build_model("single_2level", channels=4)
    assert export_saved_model(model, str(tmp_path)).endswith("1")
    assert export_saved_model(model, str(tmp_path)).endswith("2")
    with pytest.raises(FileExistsError, match="already exists"):
        export_saved_model(model, str(tmp_path), version=2)
    assert sorted(os.listdir(tmp_path)) == ["1", "2"]


def test_npz_to_served_model_to_deblurred_folder(tmp_path, rng):
    """The user path: authors' npz -> export -> deblur a folder with the SavedModel."""
    npz = tmp_path / "weights.npz"
    save_tf1_npz(build_model("single_2level"), npz)
    with flagsaver.flagsaver(checkpoint=str(npz), model="single_2level",
                             export_dir=str(tmp_path / "serving")):
        export_app.main(["export"])
    photos = tmp_path / "photos"
    photos.mkdir()
    images.write_png(photos / "odd.png", rng.randint(0, 65536, (45, 67, 3)).astype(np.uint16))
    images.write_png(photos / "rgba.png", rng.randint(0, 256, (32, 40, 4)).astype(np.uint8))
    with flagsaver.flagsaver(checkpoint=str(tmp_path / "serving" / "1"), model=None,
                             input=str(photos), output=str(tmp_path / "out")):
        deblur_app.main(["deblur"])
    odd = images.read_image(tmp_path / "out" / "odd.png")
    assert odd.dtype == np.uint16 and odd.shape == (45, 67, 3)
    keras_out = deblur(load_deblurrer(str(npz), "single_2level"),
                       images.read_image(photos / "odd.png"))
    assert np.abs(odd.astype(int) - keras_out.astype(int)).max() <= 2
    rgba = images.read_image(tmp_path / "out" / "rgba.png")
    np.testing.assert_array_equal(rgba[..., 3], images.read_image(photos / "rgba.png")[..., 3])
    # The evaluation app takes the SavedModel too.
    from test_data import DPDD_DUMMY

    from experiments import evaluate as evaluate_app

    with flagsaver.flagsaver(checkpoint=str(tmp_path / "serving" / "1"), model=None,
                             input_dir=str(DPDD_DUMMY / "dd_dp_dataset_canon"),
                             split="val", output_dir=str(tmp_path / "eval")):
        evaluate_app.main(["evaluate"])
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["images"] == 2


def test_deblur_app_never_overwrites_and_reports_bad_files(tmp_path, rng):
    model = build_model("single_2level", channels=4)
    model.save(tmp_path / "m.keras")
    photos = tmp_path / "photos"
    photos.mkdir()
    images.write_png(photos / "a.png", rng.randint(0, 256, (20, 30, 3)).astype(np.uint8))
    (photos / "broken.png").write_bytes(b"nope")
    common = dict(checkpoint=str(tmp_path / "m.keras"), model=None, input=str(photos))
    with flagsaver.flagsaver(output=str(photos), **common):
        with pytest.raises(SystemExit, match="refusing to overwrite the input .*a.png"):
            deblur_app.main(["deblur"])
    with flagsaver.flagsaver(output=str(tmp_path / "out"), save_attention=True, **common):
        with pytest.raises(SystemExit, match="1 of 2 images failed"):
            deblur_app.main(["deblur"])
    assert sorted(os.listdir(tmp_path / "out")) == ["a.png", "a_attention.png"]
    attention = images.read_image(tmp_path / "out" / "a_attention.png")
    assert attention.shape == (20, 30 * 5, 1)  # five rates side by side
    single = tmp_path / "single.png"
    with flagsaver.flagsaver(checkpoint=str(tmp_path / "m.keras"), model=None,
                             input=str(photos / "a.png"), output=str(single)):
        deblur_app.main(["deblur"])
    assert images.read_image(single).shape == (20, 30, 3)
