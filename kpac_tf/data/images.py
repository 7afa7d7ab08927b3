"""Reading and writing photos: PNG and JPEG, 8- or 16-bit, EXIF orientation applied.

Arrays are numpy (height, width, channels) uint8 or uint16, channels 1, 3 or 4.
Paths may be local or anywhere TensorFlow's filesystem layer reads (gs://, ...).
"""

import contextlib
import dataclasses
import io
import os
import re
import stat
import struct
import warnings
import zlib

import numpy as np
import tensorflow as tf

from kpac_tf.utils.files import atomic_output, error_reason, is_remote

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")


class ImageReadError(ValueError):
    """A file could not be read as a photo; the message names it and says why."""


class PhotoTooLarge(ImageReadError):
    """A photo's header declares more pixels than the caller's limit (read before
    decoding). Attributes: `header` (`ImageHeader`), `max_pixels`."""

    def __init__(self, message, header, max_pixels):
        super().__init__(message)
        self.header, self.max_pixels = header, max_pixels


@dataclasses.dataclass(frozen=True)
class ImageHeader:
    """What a photo file's first bytes declare, before any pixel is decoded.

    Attributes:
        format: "PNG" or "JPEG".
        height, width: int, pixels as stored (before EXIF orientation).
        channels: int, 1-4 as stored (a palette PNG counts 3).
        bit_depth: int, bits per sample (PNG 1-16, JPEG 8 or 12).
        frames: int, 1, or an animated PNG's frame count.
    """
    format: str
    height: int
    width: int
    channels: int
    bit_depth: int
    frames: int = 1

    @property
    def pixels(self):
        return self.height * self.width

    def describe(self):
        """e.g. "20000x20000 (400.0 MP)"."""
        return f"{self.width}x{self.height} ({self.pixels / 1e6:.1f} MP)"


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_OTHER_FORMATS = (  # (offset, magic bytes, name): formats named when refused
    (0, b"GIF87a", "GIF"), (0, b"GIF89a", "GIF"), (0, b"BM", "BMP"),
    (0, b"II*\x00", "TIFF"), (0, b"MM\x00*", "TIFF"), (0, b"%PDF", "PDF"),
    (0, b"\x00\x00\x00\x0cjP  ", "JPEG 2000"), (0, b"\xff\x4f\xff\x51", "JPEG 2000"),
    (0, b"8BPS", "Photoshop"), (0, b"PK\x03\x04", "ZIP"), (0, b"\x1f\x8b", "gzip"),
    (0, b"qoif", "QOI"), (0, b"\xff\x0a", "JPEG XL"), (4, b"ftypheic", "HEIC"),
    (4, b"ftypheix", "HEIC"), (4, b"ftypmif1", "HEIF"), (4, b"ftypavif", "AVIF"),
)
_PNG_CHANNELS = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}  # colour type -> channels
_JPEG_SOF = set(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # frame headers, any coding
_FILE_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
               (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
               (stat.S_ISBLK, "a block device"))


def _format_name(head):
    """The format a file's first bytes show ("PNG", "JPEG", "WebP", ...) or None."""
    if head.startswith(PNG_SIGNATURE):
        return "PNG"
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "animated WebP" if _webp_animated(head) else "WebP"
    for offset, magic, name in _OTHER_FORMATS:
        if head[offset:offset + len(magic)] == magic:
            return name
    if head and all(32 <= b < 127 or b in b"\t\n\r" for b in head[:64]):
        return "text"
    return None


def _webp_animated(head):
    """True for an extended WebP whose VP8X flags mark an animation."""
    return head[12:16] == b"VP8X" and len(head) > 20 and bool(head[20] & 0x02)


def _png_chunks(f):
    """(type, length) of a PNG's chunks after IHDR up to its first IDAT; `f` is at
    the chunk's data when one is yielded."""
    for _ in range(1000):
        top = f.read(8)
        if len(top) < 8 or top[4:8] == b"IDAT":
            return
        start = f.tell()
        yield top[4:8], struct.unpack(">I", top[:4])[0]
        f.seek(start + struct.unpack(">I", top[:4])[0] + 4)


def _png_chunk(kind, data):
    """One PNG chunk: length, type, data, CRC."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(
        ">I", zlib.crc32(kind + data))


def _open(path):
    """`path` opened for reading bytes: a local file, or through `tf.io.gfile`."""
    return tf.io.gfile.GFile(path, "rb") if is_remote(path) else open(path, "rb")


@contextlib.contextmanager
def _reading(path):
    """Turns a failed read of `path` (OSError, or TensorFlow's for a remote path)
    into ImageReadError naming it."""
    try:
        yield
    except (OSError, tf.errors.OpError) as e:
        raise ImageReadError(f"{path}: cannot read ({error_reason(e)})") from None


def png_text(path):
    """The tEXt entries before a PNG's image data, {keyword: value}; {} for a file
    that is not a readable PNG (or not a regular file)."""
    try:
        check_regular_file(path)
        with _open(path) as f:
            if f.read(len(PNG_SIGNATURE) + 25)[:len(PNG_SIGNATURE)] != PNG_SIGNATURE:
                return {}
            entries = {}
            for kind, length in _png_chunks(f):
                if kind == b"tEXt":
                    keyword, _, value = f.read(length).partition(b"\0")
                    entries[keyword.decode("latin-1")] = value.decode("latin-1")
            return entries
    except (ImageReadError, OSError, tf.errors.OpError, struct.error):
        return {}


def _png_header(f, path):
    """ImageHeader of a PNG file positioned after its signature: IHDR, then the chunks
    before the first IDAT (an acTL chunk there makes it an animated PNG)."""
    chunk = f.read(25)
    if len(chunk) < 25 or chunk[4:8] != b"IHDR":
        raise ImageReadError(f"{path}: not a readable image (PNG without its IHDR header)")
    width, height, depth, colour = struct.unpack(">IIBB", chunk[8:18])
    if colour not in _PNG_CHANNELS or not width or not height:
        raise ImageReadError(f"{path}: not a readable image (PNG header declares "
                             f"{width}x{height}, colour type {colour})")
    frames = 1
    for kind, _ in _png_chunks(f):
        if kind == b"acTL":
            frames = struct.unpack(">I", f.read(4))[0]
            break
    return ImageHeader("PNG", height, width, _PNG_CHANNELS[colour], depth, frames)


def _jpeg_header(f, path):
    """ImageHeader of a JPEG file positioned after its SOI marker: the first frame
    header (SOFn) among the marker segments."""
    stray = 0
    while stray < 65536:
        byte = f.read(1)
        if not byte:
            break
        if byte != b"\xff":  # stray bytes between segments: skipped, as libjpeg does
            stray += 1
            continue
        code = f.read(1)
        while code == b"\xff":  # fill bytes before a marker code
            code = f.read(1)
        if not code:
            break
        code = code[0]
        if code == 0x01 or 0xD0 <= code <= 0xD8:  # markers without a length
            continue
        if code in (0xD9, 0xDA):  # end of image, or scan data before any frame header
            break
        size = f.read(2)
        if len(size) < 2:
            break
        length = struct.unpack(">H", size)[0]
        if code in _JPEG_SOF:
            data = f.read(6)
            if len(data) < 6:
                break
            depth, height, width, channels = struct.unpack(">BHHB", data)
            if not height or not width:
                break
            return ImageHeader("JPEG", height, width, channels, depth)
        f.seek(length - 2, io.SEEK_CUR)
    raise ImageReadError(f"{path}: not a readable image (JPEG without a frame header: "
                         "truncated or damaged)")


def check_regular_file(path):
    """ImageReadError naming what `path` is unless it is a regular file (or a link to
    one): reading a FIFO would wait for ever, a device for ever more bytes. A remote
    path (gs://, ...) holds only files and folders."""
    if is_remote(path):
        with _reading(path):
            if tf.io.gfile.stat(path).is_directory:
                raise ImageReadError(f"{path}: a folder, not a photo file")
        return
    try:
        mode = os.stat(path).st_mode
    except OSError as e:
        raise ImageReadError(f"{path}: cannot read ({e.strerror})") from None
    for test, kind in _FILE_KINDS:
        if test(mode):
            raise ImageReadError(f"{path}: {kind}, not a photo file")


def _exif_orientation(data):
    """The EXIF orientation (1-8) of a file's bytes; 1 when it has none."""
    from PIL import Image

    try:
        with warnings.catch_warnings():  # sizes were checked before decoding
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                return int(image.getexif().get(0x0112, 1))
    except Exception:  # no or broken EXIF, or past Pillow's own limit: as stored
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


def file_format(path):
    """The format a file's first bytes show: "PNG", "JPEG", another format's name
    ("WebP", "GIF", "text", ...) or None; ImageReadError if it is not a regular
    file or cannot be read."""
    path = os.fspath(path)
    check_regular_file(path)
    with _reading(path), _open(path) as f:
        return _format_name(f.read(32))


def read_header(path):
    """What a photo file declares, read from its first bytes (nothing is decoded).

    The format comes from the content, never the name. Only regular files are
    opened.

    Returns:
        `ImageHeader`.

    Raises:
        ImageReadError: not a regular file, unreadable, not a PNG or JPEG (the message
            names what it holds: WebP, GIF, text, ...), an animated PNG, or a damaged
            header.
    """
    path = os.fspath(path)
    check_regular_file(path)
    try:
        with _reading(path), _open(path) as f:
            head = f.read(32)
            name = _format_name(head)
            if name in ("PNG", "JPEG"):
                f.seek(len(PNG_SIGNATURE) if name == "PNG" else 2)
                header = (_png_header if name == "PNG" else _jpeg_header)(f, path)
    except struct.error:  # a chunk or segment cut short
        raise ImageReadError(f"{path}: not a readable {name} image (its header is cut "
                             "short)") from None
    if not head:
        raise ImageReadError(f"{path}: empty file, not a PNG or JPEG image")
    if name not in ("PNG", "JPEG"):
        held = f"it holds {name}" if name else "its content is no image format we know"
        raise ImageReadError(f"{path}: not a PNG or JPEG image ({held})")
    if header.frames != 1:
        raise ImageReadError(f"{path}: an animated PNG of {header.frames} frames; save "
                             "the frame to deblur as a still PNG")
    return header


def _decode_error(error):
    """TensorFlow's decode error as a short reason, without its op and node names."""
    text = getattr(error, "message", str(error)).strip().splitlines()[0]
    text = re.sub(r"\{\{[^}]*\}\}|\[Op:[^\]]*\].*$", "", text).strip()
    text = re.sub(r"^\w+::\w+ failed\.", "", text)  # the library call that failed
    return text.strip(" .:") or "damaged data"


def read_image(path, max_pixels=None):
    """Reads a PNG (8/16-bit) or JPEG, upright per its EXIF orientation.

    The format comes from the file's first bytes, not its name. With `max_pixels`
    the header's size is checked before any pixel is decoded.

    Args:
        path: str or PathLike, a regular file.
        max_pixels: int or None, the largest height x width accepted.

    Returns:
        numpy uint8 or uint16 (height, width, channels), channels 1-4.

    Raises:
        PhotoTooLarge: the header declares more than `max_pixels` pixels.
        ImageReadError: missing, not a regular file, not a PNG or JPEG (named),
            animated, or unreadable (the reason in a few words).
    """
    path = os.fspath(path)
    header = read_header(path)
    if max_pixels is not None and header.pixels > max_pixels:
        raise PhotoTooLarge(f"{path}: {header.describe()}, above the limit of "
                            f"{max_pixels / 1e6:g} MP", header, max_pixels)
    with _reading(path), _open(path) as f:
        data = f.read()
    try:
        if header.format == "PNG":
            image = tf.io.decode_png(data, dtype=tf.uint16 if header.bit_depth == 16
                                     else tf.uint8)
        else:
            image = tf.io.decode_jpeg(data, dct_method="INTEGER_ACCURATE")
    except (tf.errors.InvalidArgumentError, ValueError) as e:
        raise ImageReadError(f"{path}: not a readable {header.format} image "
                             f"({_decode_error(e)})") from None
    if image.shape.rank != 3 or not 1 <= image.shape[-1] <= 4 or 0 in image.shape:
        raise ImageReadError(f"{path}: decodes to shape {tuple(image.shape)}, not one "
                             "frame of 1-4 channels")
    return _orient(image.numpy(), _exif_orientation(data))


def write_png(path, image, compression=-1, text=None, replace=True):
    """Writes uint8/uint16 (h, w, c) as PNG, atomically and flushed to the disk;
    `compression` is the zlib level, 0-9 (-1: zlib's default, 6); `text`, {keyword:
    value} (Latin-1), is written as tEXt entries after the header (`png_text` reads
    them); `replace=False` never replaces a file at `path` (FileExistsError; see
    `atomic_output`)."""
    image = np.asarray(image)
    if image.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"write_png needs uint8 or uint16, got {image.dtype}")
    if image.ndim == 2:
        image = image[..., None]
    with atomic_output(path, replace) as tmp, open(tmp, "wb") as f:
        data = tf.io.encode_png(image, compression=compression).numpy()
        header_end = len(PNG_SIGNATURE) + 25  # the signature and the IHDR chunk
        entries = b"".join(_png_chunk(b"tEXt", f"{k}\0{v}".encode("latin-1", "replace"))
                           for k, v in (text or {}).items())
        f.write(data[:header_end] + entries + data[header_end:])
        f.flush()
        os.fsync(f.fileno())


def list_images(folder):
    """The image files (named .png / .jpg / .jpeg) directly in `folder` (a str or a
    path object such as `epath.Path`; local, or gs:// and the like), sorted by name,
    as paths of the same kind; FileNotFoundError if there is no such folder."""
    if not tf.io.gfile.isdir(os.fspath(folder)):
        raise FileNotFoundError(f"{folder}: no such folder")
    names = sorted(name for name in tf.io.gfile.listdir(os.fspath(folder))
                   if name.lower().endswith(IMAGE_EXTENSIONS))
    return [os.path.join(folder, name) if isinstance(folder, str) else folder / name
            for name in names]


def scene_name(path, strip_side=False):
    """A file's scene id: its stem, without a trailing _L / _R for dual-pixel views."""
    stem = os.path.splitext(os.path.basename(os.fspath(path)))[0]
    if strip_side and stem.upper().endswith(("_L", "_R")):
        stem = stem[:-2]
    return stem


def pair_views(folders, label="images", by="name"):
    """Matches the files of several view folders into scenes.

    Args:
        folders: dict view -> folder (epath.Path or str, local or gs://); the first
            view leads.
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
    if by not in ("name", "position"):
        raise ValueError(f'pair_views: by must be "name" or "position", got {by!r}')
    files = {}
    for view, folder in folders.items():
        try:
            files[view] = list_images(folder)
        except FileNotFoundError:
            raise FileNotFoundError(f"{label} folder missing: {folder}") from None
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
