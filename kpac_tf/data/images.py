"""Reading and writing photos: PNG and JPEG, 8- or 16-bit, EXIF orientation applied.

Arrays are numpy (height, width, channels) uint8 or uint16, channels 1, 3 or 4.
"""

import os

import numpy as np
import tensorflow as tf

from kpac_tf.utils.files import atomic_output

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")


class ImageReadError(ValueError):
    """A file could not be read as an image; the message names it."""


def _exif_orientation(path):
    from PIL import Image

    try:
        with Image.open(path) as image:
            return int(image.getexif().get(0x0112, 1))
    except Exception:  # no or broken EXIF: display as stored
        return 1


_ORIENTATIONS = {  # EXIF orientation -> how to make the stored array upright
    2: lambda a: a[:, ::-1],                          # mirror left-right
    3: lambda a: a[::-1, ::-1],                       # rotate 180
    4: lambda a: a[::-1],                             # mirror top-bottom
    5: lambda a: np.swapaxes(a, 0, 1),                # transpose
    6: lambda a: np.rot90(a, -1),                     # rotate 90 clockwise
    7: lambda a: np.swapaxes(a[::-1, ::-1], 0, 1),    # transverse
    8: lambda a: np.rot90(a, 1),                      # rotate 90 counter-clockwise
}


def _orient(array, orientation):
    """Applies an EXIF orientation (1-8) so the array is upright."""
    transform = _ORIENTATIONS.get(orientation)
    return np.ascontiguousarray(transform(array)) if transform else array


def read_image(path):
    """Reads a PNG (8/16-bit) or JPEG, upright per its EXIF orientation.

    Returns:
        numpy uint8 or uint16 (height, width, channels), channels 1, 3 or 4.

    Raises:
        ImageReadError: missing, unsupported or unreadable file (named).
    """
    path = os.fspath(path)
    if not path.lower().endswith(IMAGE_EXTENSIONS):
        raise ImageReadError(f"{path}: not a PNG or JPEG file")
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ImageReadError(f"{path}: cannot read ({e.strerror})") from None
    try:
        if data[:8] == b"\x89PNG\r\n\x1a\n":
            sixteen = len(data) > 24 and data[24] == 16  # IHDR bit depth
            image = tf.io.decode_png(data, dtype=tf.uint16 if sixteen else tf.uint8)
        else:
            image = tf.io.decode_jpeg(data)
    except (tf.errors.InvalidArgumentError, ValueError) as e:
        reason = getattr(e, "message", str(e)).strip().splitlines()[0]
        raise ImageReadError(f"{path}: not a readable image ({reason})") from None
    return _orient(image.numpy(), _exif_orientation(path))


def as_rgb(image):
    """A photo (h, w) or (h, w, c) with c in 1-4 -> (h, w, 3): grey repeated, alpha
    dropped (numpy, same dtype)."""
    image = np.asarray(image)
    image = image[..., None] if image.ndim == 2 else image
    return image[..., :3] if image.shape[-1] >= 3 else np.repeat(image[..., :1], 3, axis=-1)


def write_png(path, image, compression=-1):
    """Writes uint8/uint16 (h, w, c) as PNG, atomically; `compression` is the zlib
    level, 0-9 (-1: zlib's default, 6)."""
    image = np.asarray(image)
    if image.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"write_png needs uint8 or uint16, got {image.dtype}")
    if image.ndim == 2:
        image = image[..., None]
    with atomic_output(path) as tmp, open(tmp, "wb") as f:
        f.write(tf.io.encode_png(image, compression=compression).numpy())


def list_images(folder):
    """Sorted image files (PNG/JPEG) directly in `folder`."""
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"{folder}: no such folder")
    return sorted(os.path.join(folder, name) for name in os.listdir(folder)
                  if name.lower().endswith(IMAGE_EXTENSIONS))


def scene_name(path, strip_side=False):
    """A file's scene id: its stem, without a trailing _L / _R for dual-pixel views."""
    stem = os.path.splitext(os.path.basename(os.fspath(path)))[0]
    if strip_side and stem.upper().endswith(("_L", "_R")):
        stem = stem[:-2]
    return stem


def pair_views(folders, label="images", by="name"):
    """Matches the files of several view folders into scenes.

    Args:
        folders: dict view -> folder (epath.Path or str); the first view leads.
        label: str, prefix of error messages (e.g. "DPDD").
        by: "name" matches files by scene name (user folders such as blurry/ +
            sharp/; views named "left"/"right" may carry DPDD's _L / _R suffixes).
            "position" pairs the folders' sorted file lists index by index, as the
            official DPDD loaders do (there a scene's target has a name of its own:
            test_c/source/1P0A0917.png pairs with test_c/target/1P0A0916.png).

    Returns:
        [(scene name, {view: path})], sorted by name: the lead file's stem
        (without _L / _R).

    Raises:
        FileNotFoundError: a folder is missing or empty, or (by name) a scene lacks
            a view; the message names the file and the folder searched.
        ValueError: (by position) the folders hold different numbers of files (the
            message lists every folder with its count); `by` is unknown.
    """
    from etils import epath

    if by not in ("name", "position"):
        raise ValueError(f'pair_views: by must be "name" or "position", got {by!r}')
    files = {}
    for view, folder in folders.items():
        folder = epath.Path(folder)
        if not folder.exists():
            raise FileNotFoundError(f"{label} folder missing: {folder}")
        files[view] = sorted((p for p in folder.iterdir()
                              if p.suffix.lower() in IMAGE_EXTENSIONS),
                             key=lambda p: p.name)
        if not files[view]:
            raise FileNotFoundError(f"{label} folder has no PNG or JPEG files: {folder}")
    if by == "position":
        return _pair_by_position(folders, files, label)
    views = list(folders)
    found = {view: {scene_name(p, view in ("left", "right")): p for p in paths}
             for view, paths in files.items()}
    lead = found[views[0]]
    for view in views[1:]:
        for name in sorted(lead):
            if name not in found[view]:
                raise FileNotFoundError(
                    f"{label}: {lead[name]} has no {view} view in {folders[view]}")
        extra = sorted(set(found[view]) - set(lead))
        if extra:
            raise FileNotFoundError(f"{label}: {found[view][extra[0]]} has no "
                                    f"{views[0]} image in {folders[views[0]]}")
    return [(name, {view: found[view][name] for view in views}) for name in sorted(lead)]


def _pair_by_position(folders, files, label):
    """pair_views(by="position"): file i (sorted by name) of every folder is scene i."""
    counts = {view: len(paths) for view, paths in files.items()}
    if len(set(counts.values())) > 1:
        listing = ", ".join(f"{folders[view]} {count}" for view, count in counts.items())
        raise ValueError(
            f"{label}: the view folders hold different numbers of images, so they cannot "
            f"be paired by position (file i of each sorted folder is scene i): {listing}. "
            "Every folder needs exactly one image per scene; restore the missing files "
            "or remove the extra ones.")
    lead = next(iter(folders))
    return [(scene_name(path, lead in ("left", "right")),
             {view: files[view][i] for view in folders})
            for i, path in enumerate(files[lead])]
