"""experiments/demo: the page in a real browser (Debian's headless Chromium, driven by
Playwright), served by the app in its own process: upload, deblur, download (byte for
byte what `load_deblurrer()` gives), the blur map, a bundled example, and a file that
is not an image. KPAC_DEMO_SCREENSHOT=PATH also saves the page after the example
(docs/images/demo.png is made so)."""

import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest

from kpac_tf import load_deblurrer
from kpac_tf.data import images
from tests.test_case import REPO, streamed_png

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# As root, with this machine's closed network: no sandbox, no background connections.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]

needs_chromium = pytest.mark.skipif(
    not os.path.exists(CHROMIUM), reason="needs Debian's chromium (apt-get install "
    "chromium; .ci/run installs it)")


def test_the_dual_network_takes_three_views_and_says_what_it_refuses(tmp_path, rng):
    """The page's own steps, without a browser: three views of one size for the dual
    network (deblurred, with a blur map); a wrong count, mixed sizes and a photo over
    the limit are sentences."""
    from experiments import demo
    from kpac_tf import Deblurrer, build_model

    paths = []
    for view in demo.VIEWS:
        paths.append(tmp_path / f"{view}.png")
        images.write_png(paths[-1], rng.randint(0, 65536, (24, 32, 3)).astype(np.uint16))
    dual = Deblurrer.from_keras(build_model("dual", channels=4))
    photos = demo.read_views([str(p) for p in paths], 3, 1e6)
    before, after, picture, files = demo.deblur_page(dual, photos, str(tmp_path / "out"),
                                                     4e6)
    assert before.dtype == after.dtype == np.uint8 and after.shape == (24, 32, 3)
    assert picture.shape[1] == 900 and [os.path.basename(f) for f in files] == [
        "deblurred_8bit.png", "deblurred_16bit.png"]
    with pytest.raises(ValueError, match=r"takes 3 photos \(centre, left, right\); got 1"):
        demo.read_views([str(paths[0])], 3, 1e6)
    images.write_png(tmp_path / "small.png", np.zeros((8, 8, 3), np.uint16))
    with pytest.raises(ValueError, match="the three views differ in size or bit depth"):
        demo.read_views([str(paths[0]), str(paths[1]), str(tmp_path / "small.png")], 3, 1e6)
    with pytest.raises(ValueError, match=r"centre.png is 32x24 \(0.0 MP\), above the limit "
                                         r"of 0.0005 MP \(--max_megapixels\)"):
        demo.read_views([str(paths[0])], 1, 500)


def test_oversized_or_mislabelled_uploads_are_refused_before_decoding(tmp_path,
                                                                     monkeypatch):
    """A 400 MP PNG of a few MB is refused from its header; a WebP named .png that
    declares 100 MP (as frames x height once passed a 50 MP limit) is named WebP."""
    from experiments import demo

    streamed_png(tmp_path / "huge.png", 20000, 20000)
    decoded = []
    monkeypatch.setattr(images.tf.io, "decode_png", lambda *a, **k: decoded.append(a))
    with pytest.raises(ValueError, match=re.escape(
            "huge.png is 20000x20000 (400.0 MP), above the limit of 50 MP "
            "(--max_megapixels)")):
        demo.read_views([str(tmp_path / "huge.png")], 1, 50e6)
    vp8x = b"VP8X" + struct.pack("<I", 10) + bytes(4) + (9999).to_bytes(3, "little") * 2
    (tmp_path / "big.png").write_bytes(b"RIFF" + struct.pack("<I", 4 + len(vp8x)) + b"WEBP"
                                       + vp8x)
    with pytest.raises(ValueError, match=re.escape(
            "big.png: not a PNG or JPEG image (it holds WebP)")):
        demo.read_views([str(tmp_path / "big.png")], 1, 50e6)
    assert decoded == []


_SERVER_LOG = {}  # where the demo server of this module writes its log


@pytest.fixture(scope="module")
def demo_address(tmp_path_factory):
    """The demo app (bundled model) on a free port of 127.0.0.1, until the module ends."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(tmp_path_factory.mktemp("demo") / "server.log", "w+")
    _SERVER_LOG["path"] = log.name
    server = subprocess.Popen([sys.executable, "-m", "experiments.demo", f"--port={port}"],
                              cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    address = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.time() + 180
        while True:
            try:
                urllib.request.urlopen(address, timeout=2)
                break
            except OSError:
                log.seek(0)
                assert server.poll() is None and time.time() < deadline, log.read()[-3000:]
                time.sleep(0.5)
        yield address
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


@pytest.fixture
def page(demo_address):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(accept_downloads=True, viewport={"width": 1200,
                                                                  "height": 1600})
        page.goto(demo_address)
        page.locator("#upload_photo").wait_for(timeout=60_000)
        yield page
        browser.close()


def upload(page, path):
    clear = page.locator("#upload_photo button[aria-label='Clear']")
    if clear.count():
        clear.first.click()
    with page.expect_file_chooser() as chooser:
        page.locator("#upload_photo button").first.click()
    chooser.value.set_files(str(path))
    wait_for_photo(page, path.name)


def wait_for_photo(page, name):
    """Waits until the upload field holds `name`: a file or example reaches it through
    the server, and a Deblur clicked before then sends no photo (it happened in CI:
    'this network takes 1 photo (one photo); got 0')."""
    page.locator(f"#upload_photo td.filename[aria-label='{name}']").wait_for(timeout=60_000)


def downloads(page, folder):
    """Clicks each download link once the result is there; returns {name: bytes}."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    links = page.locator("#downloads a")
    try:
        links.first.wait_for(timeout=120_000)
    except PlaywrightTimeout:
        with open(_SERVER_LOG["path"]) as log:
            raise AssertionError("no download after 120 s; the page says: "
                                 f"{page.inner_text('body')[-1500:]}\nthe server's log "
                                 f"ends: {log.read()[-3000:]}") from None
    saved = {}
    for index in range(links.count()):
        with page.expect_download() as info:
            links.nth(index).click()
        path = folder / info.value.suggested_filename
        info.value.save_as(str(path))
        saved[path.name] = path.read_bytes()
    return saved


@needs_chromium
def test_a_photo_deblurred_in_the_browser_is_load_deblurrers_byte_for_byte(page, tmp_path):
    """A 16-bit photo: the 8-bit and 16-bit downloads are the PNGs of what
    `load_deblurrer()` computes, the blur map is drawn, the model is named."""
    from skimage import data

    photo = (data.astronaut()[100:148, 180:244].astype(np.uint16) * 257)  # 16-bit, 64x48
    images.write_png(tmp_path / "photo.png", photo)
    assert "trained on synthetic defocus, not DPDD" in page.inner_text("body")
    upload(page, tmp_path / "photo.png")
    page.click("#deblur")
    got = downloads(page, tmp_path)
    assert sorted(got) == ["deblurred_16bit.png", "deblurred_8bit.png"]
    expected = load_deblurrer()(photo)
    images.write_png(tmp_path / "expected_16bit.png", expected)
    images.write_png(tmp_path / "expected_8bit.png", np.round(expected / 257).astype(np.uint8))
    assert got["deblurred_16bit.png"] == (tmp_path / "expected_16bit.png").read_bytes()
    assert got["deblurred_8bit.png"] == (tmp_path / "expected_8bit.png").read_bytes()
    blur_map = page.locator("#blur_map img")
    blur_map.wait_for(timeout=60_000)
    assert blur_map.evaluate("image => image.naturalWidth") == 900  # the map and its legend
    assert "not a calibrated depth or blur radius" in page.inner_text("body")
    assert page.locator("#before_after img").count() >= 1


@needs_chromium
def test_an_example_and_a_file_that_is_not_an_image(page, tmp_path):
    page.get_by_text("chelsea_defocused.png").first.click()
    wait_for_photo(page, "chelsea_defocused.png")
    page.click("#deblur")
    assert "deblurred_8bit.png" in downloads(page, tmp_path)
    page.locator("#blur_map img").wait_for(timeout=60_000)
    example_link = page.locator("#downloads a").first.get_attribute("href")
    if os.environ.get("KPAC_DEMO_SCREENSHOT"):
        page.screenshot(path=os.environ["KPAC_DEMO_SCREENSHOT"], full_page=True)
    (tmp_path / "notes.txt").write_text("not a photo")
    upload(page, tmp_path / "notes.txt")
    page.click("#deblur")
    page.get_by_text("notes.txt: not a PNG or JPEG image (it holds text)").first.wait_for(
        timeout=30_000)
    # The page stays up: the next photo is deblurred.
    images.write_png(tmp_path / "small.png", np.full((40, 40, 3), 100, np.uint8))
    upload(page, tmp_path / "small.png")
    page.click("#deblur")
    page.wait_for_function("old => { const a = document.querySelector('#downloads a'); "
                           "return a && a.href !== old; }", arg=example_link, timeout=60_000)
    got = downloads(page, tmp_path)["deblurred_8bit.png"]
    images.write_png(tmp_path / "expected.png", load_deblurrer()(
        images.read_image(tmp_path / "small.png")))
    assert got == (tmp_path / "expected.png").read_bytes()
