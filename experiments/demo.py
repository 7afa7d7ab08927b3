r"""A local web page that deblurs a photo and shows its blur map (Gradio).

pip install -e ".[demo]"
python -m experiments.demo [--port=7860] [--checkpoint=... --model=...] [--share]

Open the printed address (127.0.0.1; --share asks Gradio for a public link, off by
default), drop in a photo (PNG or JPEG, 8 or 16-bit, any size up to --max_megapixels)
or pick an example, and get: the deblurred photo beside the input (a before/after
slider), downloads of the result as an 8-bit PNG (and a 16-bit PNG for a 16-bit
photo), and the blur map: per pixel, the first KPAC block's attention-weighted
dilation rate, coloured over the photo (an attention map, not a calibrated depth or
blur radius). Photos above --tile_above_megapixels are deblurred in tiles, with
progress. --checkpoint takes whatever experiments.deblur takes (unset: the bundled
model, trained on synthetic defocus, not DPDD); the dual network asks for its three
views.
"""

import importlib.util
import os
import tempfile

from absl import flags

from kpac_tf.data import images, pixels
from kpac_tf.deploy import blur_map, deblurring, examples

from .common_flags import (CHECKPOINT as _CHECKPOINT, LOGGING, MAX_MEGAPIXELS as
                           _MAX_MEGAPIXELS, MAX_MEGAPIXELS_DEFAULTS, MODEL as _MODEL,
                           deblurrer_from_flags, run_app, value_or)

_PORT = flags.DEFINE_integer("port", 7860, "Port on 127.0.0.1.")
_SHARE = flags.DEFINE_boolean("share", False, "Ask Gradio for a public share link.")
_TILE_ABOVE = flags.DEFINE_float("tile_above_megapixels", 4.0,
                                 "Photos larger than this are deblurred in 1024-px tiles.")
TILE_SIZE = 1024
VIEWS = ("centre", "left", "right")


def model_description(checkpoint, deblurrer):
    if checkpoint is None:
        return (f"the bundled {deblurrer.name}, trained on synthetic defocus, not DPDD "
                "(give --checkpoint for another)")
    return f"{deblurrer.name} from {checkpoint}"


def read_views(paths, count, max_pixels):
    """The uploaded files as RGB photos of one size and depth, each read by content
    with its size checked from the header before decoding; ValueError (shown on the
    page) for anything else."""
    paths = [p for p in (paths or []) if p]
    if len(paths) != count:
        raise ValueError(f"this network takes {count} photo{'s' if count > 1 else ''} "
                         f"({', '.join(VIEWS[:count]) if count > 1 else 'one photo'}); "
                         f"got {len(paths)}")
    photos = []
    for path in paths:
        name = os.path.basename(path)  # the upload's name, not the server's copy
        try:
            photos.append(pixels.photo_to_rgb(images.read_image(path, max_pixels)))
        except images.PhotoTooLarge as e:  # refused from the header, before decoding
            raise ValueError(f"{name} is {e.header.describe()}, above the limit of "
                             f"{max_pixels / 1e6:g} MP (--max_megapixels)") from None
        except images.ImageReadError as e:
            raise ValueError(str(e).replace(path, name)) from None
    if len({(p.shape, p.dtype) for p in photos}) > 1:
        raise ValueError("the three views differ in size or bit depth: "
                         + ", ".join(f"{p.shape[1]}x{p.shape[0]} {p.dtype}" for p in photos))
    return photos


def deblur_page(deblurrer, photos, work_dir, tile_above, on_tile=None):
    """Deblurs `photos` (one, or the dual triple) for the page.

    Returns:
        (before uint8, after uint8, blur-map picture uint8 or None, [download paths]:
        the 8-bit PNG, then the 16-bit PNG for 16-bit photos).
    """
    centre = photos[0]
    tile = TILE_SIZE if centre.shape[0] * centre.shape[1] > tile_above else None
    sharp = deblurring.deblur(deblurrer, tuple(photos) if len(photos) == 3 else centre,
                              tile_size=tile, on_tile=on_tile)
    eight_bit = pixels.to_uint8(sharp)
    os.makedirs(work_dir, exist_ok=True)
    downloads = [os.path.join(work_dir, "deblurred_8bit.png")]
    images.write_png(downloads[0], eight_bit)
    if sharp.dtype == "uint16":
        downloads.append(os.path.join(work_dir, "deblurred_16bit.png"))
        images.write_png(downloads[1], sharp)
    rates = (blur_map.blur_map(deblurrer.keras_model, tuple(photos) if len(photos) == 3
                               else centre) if deblurrer.keras_model is not None else None)
    picture = blur_map.draw_blur_map(centre, *rates) if rates is not None else None
    return pixels.to_uint8(centre), eight_bit, picture, downloads


def example_files(folder):
    """Two bundled examples: scikit-image's chelsea and coffee, defocused from the top
    (in focus) to the bottom (radius 4 px); written once into `folder`."""
    os.makedirs(folder, exist_ok=True)
    paths = []
    for photo in examples.PHOTOS:
        path = os.path.join(folder, f"{photo}_defocused.png")
        if not os.path.exists(path):
            images.write_png(path, examples.defocused(photo, 4.0)[0])
        paths.append(path)
    return paths


def build_page(deblurrer, description, max_pixels, tile_above, work_dir):
    """The Gradio page (gradio.Blocks)."""
    import gradio as gr

    count = deblurrer.num_inputs
    with gr.Blocks(title="kpac-tf: defocus deblurring") as page:
        gr.Markdown("# KPAC defocus deblurring\n"
                    f"Model: **{description}**. Photos: PNG or JPEG, 8 or 16-bit, up to "
                    f"{max_pixels / 1e6:g} MP (larger than {tile_above / 1e6:g} MP: "
                    "deblurred in tiles).")
        names = VIEWS if count == 3 else ("photo",)
        uploads = [gr.File(label=f"{name} view" if count == 3 else name,
                           file_count="single", type="filepath", elem_id=f"upload_{name}")
                   for name in names]
        if count == 1:
            gr.Examples([[path] for path in example_files(os.path.join(work_dir, "examples"))],
                        inputs=uploads, label="examples (defocused from the top down)")
        run = gr.Button("Deblur", variant="primary", elem_id="deblur")
        slider = gr.ImageSlider(label="before | after (drag)", type="numpy",
                                elem_id="before_after")
        downloads = gr.File(label="downloads", file_count="multiple", elem_id="downloads")
        gr.Markdown(f"**Blur map**: {blur_map.MEANING}.")
        picture = gr.Image(label="blur map", type="numpy", elem_id="blur_map")

        def respond(*paths, progress=gr.Progress()):
            try:
                photos = read_views(paths, count, max_pixels)
                before, after, drawn, files = deblur_page(
                    deblurrer, photos, tempfile.mkdtemp(dir=work_dir), tile_above,
                    lambda done, total: progress(done / total,
                                                 desc=f"tile {done} of {total}"))
            except ValueError as e:
                raise gr.Error(str(e)) from None
            return (before, after), files, drawn

        run.click(respond, inputs=uploads, outputs=[slider, downloads, picture])
    return page


def main(argv):
    del argv  # run_app refuses extra arguments
    if importlib.util.find_spec("gradio") is None:
        raise SystemExit('demo: Gradio is not installed: pip install -e ".[demo]" (from a '
                         'clone) or pip install "kpac-tf[demo]"')
    try:
        deblurrer = deblurrer_from_flags()
    except (ValueError, FileNotFoundError) as e:
        raise SystemExit(f"demo: {e}") from None
    work_dir = tempfile.mkdtemp(prefix="kpac_demo_")
    max_pixels = value_or(_MAX_MEGAPIXELS, MAX_MEGAPIXELS_DEFAULTS["demo"]) * 1e6
    page = build_page(deblurrer, model_description(_CHECKPOINT.value, deblurrer),
                      max_pixels, _TILE_ABOVE.value * 1e6, work_dir)
    page.queue().launch(server_name="127.0.0.1", server_port=_PORT.value,
                        share=_SHARE.value, allowed_paths=[work_dir],
                        show_error=True)


FLAG_GROUPS = {
    "Model": [_CHECKPOINT, _MODEL],
    "Page": [_PORT, _SHARE, _MAX_MEGAPIXELS, _TILE_ABOVE],
    "Logging": LOGGING,
}

if __name__ == "__main__":
    run_app(main)
