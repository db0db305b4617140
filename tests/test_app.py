"""``keysynth app``: pure helpers (photo loading, safe zip extraction, generator zip) without a
browser, and the web app itself in headless Chromium (Selenium + Debian's chromium-driver).

The browser tests start ``keysynth app --checkpoint TINY_MODEL`` on a free port in a subprocess;
the tiny untrained model has threshold 0, so every pixel is key and the mask is never empty.
``KEYSYNTH_APP_SCREENSHOTS=1`` (tiny model) or ``=CHECKPOINT`` (a trained model) makes
``test_write_docs_screenshots`` write docs/app_segment.png, docs/app_generator.png and
docs/app_evaluate.png (otherwise it is skipped); ``KEYSYNTH_APP_SCREENSHOT_PHOTO`` picks the photo
of the Segment tab.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import socket
import stat
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from keysynth.app_core import AppInputError, dataset_root, load_photo, safe_extract_zip, segment_files

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = os.environ.get("KEYSYNTH_APP_SCREENSHOTS", "")


# ----------------------------------------------------------------------------- fixtures / helpers
@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """A tiny untrained model folder with threshold 0 (every pixel is key)."""
    import torch

    from real_eval.model_io import build_model, default_model_spec, save_model_dir

    torch.manual_seed(0)
    spec = default_model_spec(image_size=64, decoder_width=16)
    out = tmp_path_factory.mktemp("model") / "tiny"
    return save_model_dir(build_model(spec), spec, out, {"threshold": 0.0, "figures": {"note": "untrained"}})


def _photo(path: Path, size=(320, 240), seed: int = 0, **save) -> Path:
    rng = np.random.default_rng(seed)
    w, h = size
    img = np.zeros((h, w, 3), np.uint8)
    img[:] = (90, 120, 150)
    img[h // 3:2 * h // 3, w // 4:3 * w // 4] = rng.integers(150, 255, 3)
    Image.fromarray(img).save(path, **save)
    return path


def _zip(path: Path, members: dict) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():  # name: str or zipfile.ZipInfo (kept as written)
            zf.writestr(name, data)
    return path


def _masks_set_zip(path: Path, n: int = 2, top: str = "set/") -> Path:
    members = {}
    for i in range(n):
        buf = io.BytesIO()
        Image.fromarray(np.full((48, 64, 3), 60 + 40 * i, np.uint8)).save(buf, "PNG")
        members[f"{top}images/p{i}.png"] = buf.getvalue()
        m = np.zeros((48, 64), np.uint8)
        m[10:30, 20:40] = 255
        buf = io.BytesIO()
        Image.fromarray(m).save(buf, "PNG")
        members[f"{top}masks/p{i}.png"] = buf.getvalue()
    return _zip(path, members)


# ----------------------------------------------------------------------------- pure helpers
def test_load_photo_errors(tmp_path):
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "notes.jpg").write_text("not an image")
    good = _photo(tmp_path / "good.jpg")
    (tmp_path / "cut.jpg").write_bytes(good.read_bytes()[:300])
    Image.new("RGB", (8, 8)).save(tmp_path / "p.gif")
    cases = {"empty.jpg": "empty (0 bytes)", "notes.jpg": "not a readable image", "cut.jpg": "cannot be decoded",
             "p.gif": "not supported", "missing.png": "does not exist"}
    for name, words in cases.items():
        with pytest.raises(AppInputError, match=words.replace("(", r"\(").replace(")", r"\)")):
            load_photo(tmp_path / name)
    with pytest.raises(AppInputError, match="too large"):
        load_photo(good, max_pixels=1000)
    Image.new("1", (13000, 12000)).save(tmp_path / "huge.png")  # 156 megapixels, a small file
    with pytest.raises(AppInputError, match="too large"):
        load_photo(tmp_path / "huge.png")


def test_load_photo_orientation_downscale_and_modes(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, shown rotated 90 degrees: portrait
    img, info = load_photo(_photo(tmp_path / "rot.jpg", size=(80, 40), exif=exif))
    assert img.shape == (80, 40, 3) and img.dtype == np.uint8 and info["original_size"] == (40, 80)
    img, info = load_photo(_photo(tmp_path / "big.jpg", size=(1800, 1200)), max_side=300)
    assert max(img.shape[:2]) == 300 and info["downscaled"] and info["original_size"] == (1800, 1200)
    img, _ = load_photo(_photo(tmp_path / "big.png", size=(900, 600)), max_side=300)
    assert img.shape == (200, 300, 3)
    Image.new("RGBA", (30, 20), (0, 0, 0, 0)).save(tmp_path / "clear.png")
    img, _ = load_photo(tmp_path / "clear.png")
    assert img.shape == (20, 30, 3) and img.min() == 255  # transparency over white
    img, info = load_photo(_photo(tmp_path / "a.webp", size=(50, 40)))
    assert img.shape == (40, 50, 3) and info["format"] == "WebP"


def test_safe_extract_refuses_escaping_members(tmp_path):
    dest = tmp_path / "dest"
    bad = [("../evil.txt", "leaves its folder"), ("a/../../evil.txt", "leaves its folder"),
           ("/abs/evil.txt", "absolute path"), ("C:/evil.txt", "absolute path")]
    for name, words in bad:
        z = _zip(tmp_path / "bad.zip", {"ok.txt": b"fine", zipfile.ZipInfo(name): b"x"})
        with pytest.raises(AppInputError, match=words):
            safe_extract_zip(z, dest)
    link = zipfile.ZipInfo("link")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    with pytest.raises(AppInputError, match="symbolic link"):
        safe_extract_zip(_zip(tmp_path / "link.zip", {link: b"/etc/passwd"}), dest)
    assert not (tmp_path / "evil.txt").exists() and not Path("/abs/evil.txt").exists()
    assert not (dest / "ok.txt").exists()  # a bad member refuses the whole archive
    with pytest.raises(AppInputError, match="more than"):
        safe_extract_zip(_zip(tmp_path / "bomb.zip", {"big.bin": b"\0" * 100_000}), dest, max_bytes=50_000)
    with pytest.raises(AppInputError, match="not a zip"):
        safe_extract_zip(_photo(tmp_path / "p.jpg"), dest)


def test_safe_extract_and_dataset_root(tmp_path):
    z = _masks_set_zip(tmp_path / "set.zip")
    files = safe_extract_zip(z, tmp_path / "out")
    assert len(files) == 4 and all((tmp_path / "out") in f.parents for f in files)
    assert dataset_root(tmp_path / "out") == tmp_path / "out" / "set"


def test_segment_files_writes_mask_and_cutout(tmp_path, model_dir):
    from real_eval.model_io import load_checkpoint

    model, spec = load_checkpoint(model_dir, "cpu")
    photos = [_photo(tmp_path / "a.jpg"), tmp_path / "bad.png"]
    photos[1].write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    recs, errors = segment_files(photos, model, spec, tmp_path / "out", strategy="resize", threshold=0.0)
    assert len(recs) == 1 and len(errors) == 1 and "bad.png" in errors[0]
    mask = np.asarray(Image.open(recs[0]["mask"]))
    cut = np.asarray(Image.open(recs[0]["cutout"]))
    assert mask.shape == (240, 320) and mask.min() == 255  # threshold 0: every pixel is key
    assert cut.shape == (240, 320, 4) and cut[..., 3].min() == 255
    with pytest.raises(AppInputError, match="unknown strategy"):
        segment_files(photos[:1], model, spec, tmp_path / "out", strategy="nope", threshold=0.5)


def test_generator_zip_and_bad_ranges(tmp_path):
    from synth import SynthConfig

    from keysynth.app_generator import (PROB_CONTROLS, RANGE_CONTROLS, config_from_controls, histogram_values,
                                        render_samples, write_samples_zip)

    base = SynthConfig.default()
    ranges = [getattr(base, n) for n, *_ in RANGE_CONTROLS]
    probs = [getattr(base, n) for n, _ in PROB_CONTROLS]
    cfg = config_from_controls(base, key_source="procedural", backgrounds="procedural", ranges=ranges,
                               probs=probs, size=64)
    with pytest.raises(AppInputError, match="above high"):
        config_from_controls(base, key_source="procedural", backgrounds="procedural",
                             ranges=[(0.9, 0.1)] + ranges[1:], probs=probs, size=64)
    with pytest.raises(AppInputError, match="unknown backgrounds"):
        render_samples(cfg.replace(backgrounds="no/such/folder"), 0, 1)
    assert set(histogram_values(render_samples(cfg, 0, 2))) >= {"keys per photo", "JPEG quality"}
    with zipfile.ZipFile(write_samples_zip(cfg, 0, 3, tmp_path / "s.zip")) as zf:
        names = zf.namelist()
    assert sum(n.startswith("images/") for n in names) == 3 and sum(n.startswith("masks/") for n in names) == 3
    assert "synth_config.yaml" in names and "meta.jsonl" in names


def test_model_summary_says_where_the_threshold_came_from():
    from keysynth.app_core import model_summary

    spec = {"arch": "Unet", "encoder_name": "mobilenet_v2", "image_size": 192, "threshold": 0.3,
            "calibration": {"set": "synthetic validation", "mean_iou": 0.2, "hashes": []}}
    text = model_summary(spec, "run/last.pt")
    assert "Threshold 0.3" in text and "synthetic validation samples" in text
    spec["calibration"] = {"set": "photos", "n_images": 8, "mean_iou": 0.37, "hashes": ["x"]}
    assert "Calibrated on 8 photos (mean IoU 0.370)" in model_summary(spec, "run/last.pt")


def test_cli_registers_app_without_importing_gradio():
    code = ("import sys; from keysynth.cli import build_parser; p = build_parser(); "
            "a = p.parse_args(['app', '--port', '1234']); print(a.func.__name__, 'gradio' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["cmd_app", "False"]


def test_missing_shipped_model_is_a_message(monkeypatch, tmp_path):
    from keysynth.app import KeysynthApp

    monkeypatch.setenv("KEYSYNTH_MODEL", str(tmp_path / "no_model"))
    app = KeysynthApp(None, "cpu", workdir=tmp_path / "work")
    assert app.model is None and "KEYSYNTH_MODEL" in app.model_error and "no model" in app.model_markdown()
    with pytest.raises(AppInputError, match="no model loaded"):
        app.require_model()


@pytest.mark.slow
def test_evaluate_handler_messages(tmp_path, model_dir):
    """The Evaluate tab's handler: a good zip gives metrics and the report; a zip with a ``../``
    member gives a message (nothing written outside its temp folder), never an exception."""
    from keysynth.app import KeysynthApp, _evaluate_handler

    app = KeysynthApp(model_dir, "cpu", workdir=tmp_path / "work")
    run = _evaluate_handler(app)
    status, metrics, frame, files = run(str(_masks_set_zip(tmp_path / "set.zip")), "auto", "resize", 0.5)
    assert "Evaluated" in status and "| iou |" in metrics and "<iframe" in frame and len(files) == 3
    evil = _zip(tmp_path / "evil.zip", {"images/a.png": b"x", zipfile.ZipInfo("../../evil.png"): b"x"})
    status, metrics, frame, files = run(str(evil), "auto", "resize", 0.5)
    assert status.startswith("**Error:**") and "leaves its folder" in status and metrics is None
    assert not (tmp_path / "evil.png").exists() and not (tmp_path / "work" / "evil.png").exists()
    missing = KeysynthApp(tmp_path / "no_model", "cpu", workdir=tmp_path / "work2")
    status, *_ = _evaluate_handler(missing)(str(_masks_set_zip(tmp_path / "s2.zip")), "auto", "resize", 0.5)
    assert "no model loaded" in status


# ----------------------------------------------------------------------------- browser
def _browser_paths() -> tuple[str, str] | None:
    chromium = next((p for p in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser"))
                     if p and Path(p).exists()), None)
    driver = next((p for p in ("/usr/bin/chromedriver", shutil.which("chromedriver")) if p and Path(p).exists()), None)
    return (chromium, driver) if chromium and driver else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def _serve(checkpoint: Path | str, tmp: Path):
    """``keysynth app --checkpoint CHECKPOINT`` in a subprocess on a free port; yields its URL."""
    port = _free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GRADIO_ANALYTICS_ENABLED": "False",
           "GRADIO_TEMP_DIR": str(tmp / "cache"), "TMPDIR": str(tmp)}
    log = open(tmp / "server.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "keysynth", "app", "--checkpoint", str(checkpoint),
                             "--port", str(port), "--device", "cpu"], cwd=ROOT, env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.time() + 180
        while True:
            try:
                with urllib.request.urlopen(url, timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                log.flush()
                pytest.fail(f"keysynth app did not start:\n{(tmp / 'server.log').read_text()[-3000:]}")
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _driver(url: str, profile: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    chromium, driver_path = _browser_paths()
    opts = Options()
    opts.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1000",
                "--disable-background-networking", "--disable-component-update", "--no-first-run",
                f"--user-data-dir={profile}"):
        opts.add_argument(arg)
    drv = webdriver.Chrome(service=Service(executable_path=driver_path), options=opts)
    drv.get(url)
    return drv


@pytest.fixture(scope="module")
def server(model_dir, tmp_path_factory):
    """The app with the tiny model; skips when no chromium / chromedriver is installed."""
    if _browser_paths() is None:
        pytest.skip("chromium and chromedriver are not installed (apt-get install -y chromium chromium-driver)")
    with _serve(model_dir, tmp_path_factory.mktemp("gradio")) as url:
        yield url


@pytest.fixture(scope="module")
def browser(server, tmp_path_factory):
    drv = _driver(server, tmp_path_factory.mktemp("profile"))
    try:
        yield drv
    finally:
        drv.quit()


def _wait(fn, timeout: float = 90.0, what: str = "condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            value = fn()
        except Exception:  # noqa: BLE001 - the DOM is being re-rendered
            value = None
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


def _tab(drv, name: str) -> None:
    from selenium.webdriver.common.by import By

    _wait(lambda: drv.find_element(By.XPATH, f"//button[@role='tab' and contains(., '{name}')]"), 60,
          f"the {name} tab").click()


def _img_src(drv, elem_id: str) -> str | None:
    from selenium.webdriver.common.by import By

    imgs = drv.find_elements(By.CSS_SELECTOR, f"#{elem_id} img")
    return imgs[0].get_attribute("src") if imgs else None


def _fetch_image(src: str) -> np.ndarray:
    with urllib.request.urlopen(src, timeout=30) as r:
        return np.asarray(Image.open(io.BytesIO(r.read())))


def _screenshot(drv, name: str, height: int = 1000) -> None:
    """Write docs/app_NAME.png, reduced to a palette (and smaller) until it is under 300 KB."""
    drv.set_window_size(1400, height)
    drv.execute_script("window.scrollTo(0, 0)")
    time.sleep(1.5)
    im = Image.open(io.BytesIO(drv.get_screenshot_as_png())).convert("RGB")
    out = ROOT / "docs" / f"app_{name}.png"
    for colours, scale in ((256, 1.0), (128, 0.85), (64, 0.7), (32, 0.6)):
        small = im.resize((round(im.width * scale), round(im.height * scale)), Image.Resampling.LANCZOS)
        small.quantize(colours, method=Image.Quantize.MEDIANCUT).save(out, optimize=True)
        if out.stat().st_size < 300_000:
            break


def _upload(drv, elem_id: str, path: Path) -> None:
    from selenium.webdriver.common.by import By

    _wait(lambda: drv.find_element(By.CSS_SELECTOR, f"#{elem_id} input[type=file]"), 60,
          f"the upload field {elem_id}").send_keys(str(path))


@pytest.mark.slow
def test_browser_upload_photo_shows_nonempty_mask(browser, tmp_path):
    from selenium.webdriver.common.by import By

    _tab(browser, "Segment")
    _upload(browser, "seg-files", _photo(tmp_path / "keys on table.jpg", size=(640, 480)))
    src = _wait(lambda: _img_src(browser, "seg-mask"), what="the mask image")
    mask = _fetch_image(src)
    assert mask.size > 0 and mask.max() == 255 and (mask > 0).mean() > 0.99  # threshold 0: all key
    assert _img_src(browser, "seg-cutout") and _img_src(browser, "seg-overlay")
    status = browser.find_element(By.ID, "seg-status").text
    assert "keys on table.jpg" in status and "640 x 480" in status
    assert "Traceback" not in browser.page_source


@pytest.mark.slow
def test_browser_generator_slider_changes_grid(browser):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    _tab(browser, "Generator")
    before = _wait(lambda: _img_src(browser, "gen-grid"), what="the first sample grid")
    slider = browser.find_element(By.CSS_SELECTOR, "#gen-shadow_prob input[type=range]")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", slider)
    width = slider.size["width"]
    ActionChains(browser).move_to_element_with_offset(slider, -width // 2 + 2, 0).click().perform()
    number = browser.find_element(By.CSS_SELECTOR, "#gen-shadow_prob input[type=number]")
    _wait(lambda: float(number.get_attribute("value")) < 0.2, 20, "the slider to move")
    after = _wait(lambda: (s := _img_src(browser, "gen-grid")) != before and s, what="a new sample grid")
    assert not np.array_equal(_fetch_image(before), _fetch_image(after))
    assert "Error" not in browser.find_element(By.ID, "gen-status").text


@pytest.mark.slow
def test_browser_corrupt_upload_shows_error(browser, tmp_path):
    from selenium.webdriver.common.by import By

    _tab(browser, "Segment")
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0" + os.urandom(2000))
    _upload(browser, "seg-files", bad)
    text = _wait(lambda: (t := browser.find_element(By.ID, "seg-status").text) and "broken.jpg" in t and t,
                 what="the error message")
    assert "Error" in text and "corrupt" in text
    assert "Traceback" not in browser.page_source


@pytest.mark.slow
def test_browser_evaluate_zip_shows_report(browser, tmp_path):
    from selenium.webdriver.common.by import By

    _tab(browser, "Evaluate")
    _upload(browser, "eval-zip", _masks_set_zip(tmp_path / "real set.zip", n=3))
    metrics = _wait(lambda: (t := browser.find_element(By.ID, "eval-metrics").text) and "iou" in t and t,
                    what="the metrics table")
    assert "3 photos" in metrics
    assert browser.find_elements(By.CSS_SELECTOR, "#eval-report iframe")


@pytest.mark.slow
def _synthetic_key_set(root: Path, n: int) -> Path:
    """``n`` keysynth scenes (one large key each, procedural backgrounds) as images/ + masks/ PNGs."""
    from backgrounds import make_backgrounds
    from synth import SampleRenderer, SynthConfig

    cfg = SynthConfig.default().replace(size=512, crop_like_prob=1.0, empty_prob=0.0)
    r = SampleRenderer(cfg, backgrounds=make_backgrounds("procedural"))
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(n):
        s = r.render(i, 3)
        cv2.imwrite(str(root / "images" / f"s{i}.png"), s["image"][..., ::-1])
        cv2.imwrite(str(root / "masks" / f"s{i}.png"), (s["mask"] == 1).astype(np.uint8) * 255)
    return root


def test_write_docs_screenshots(model_dir, tmp_path):
    """Writes docs/app_*.png; runs only with KEYSYNTH_APP_SCREENSHOTS=1 or =CHECKPOINT."""
    if SCREENSHOTS in ("", "0"):
        pytest.skip("writes docs screenshots only when KEYSYNTH_APP_SCREENSHOTS=1 (or =CHECKPOINT) is set")
    if _browser_paths() is None:
        pytest.skip("chromium and chromedriver are not installed (apt-get install -y chromium chromium-driver)")
    from selenium.webdriver.common.by import By

    checkpoint = model_dir if SCREENSHOTS == "1" else Path(SCREENSHOTS)
    # generated scenes only (procedural backgrounds): the docs show no photo we may not redistribute
    shots = _synthetic_key_set(tmp_path / "synthetic_keys", n=4)
    chosen = os.environ.get("KEYSYNTH_APP_SCREENSHOT_PHOTO")  # a photo for the Segment tab
    photo = Path(chosen) if chosen else shots / "images" / "s0.png"
    real_zip = tmp_path / "synthetic_keys.zip"
    with zipfile.ZipFile(real_zip, "w") as zf:
        for f in sorted(shots.rglob("*.png")):
            zf.write(f, f"synthetic_keys/{f.parent.name}/{f.name}")
    with _serve(checkpoint, tmp_path) as url:
        drv = _driver(url, tmp_path / "profile")
        try:
            _upload(drv, "seg-files", photo)
            _wait(lambda: _img_src(drv, "seg-mask"), 180, "the mask image")
            _screenshot(drv, "segment", height=900)
            _tab(drv, "Generator")
            _wait(lambda: _img_src(drv, "gen-grid"), 120, "the sample grid")
            _screenshot(drv, "generator", height=1000)
            _tab(drv, "Evaluate")
            _upload(drv, "eval-zip", real_zip)
            _wait(lambda: "iou" in drv.find_element(By.ID, "eval-metrics").text, 600, "the metrics table")
            _screenshot(drv, "evaluate", height=1100)
        finally:
            drv.quit()
    for name in ("segment", "generator", "evaluate"):
        assert (ROOT / "docs" / f"app_{name}.png").stat().st_size < 300_000


def test_model_figures_say_how_they_were_measured():
    from keysynth.app_core import figures_markdown

    cc = {"iou": {"mean": 0.4, "ci95": [0.3, 0.5]}}
    assert "calibrated on other photos" in figures_markdown({"cross_calibrated": cc})
    folds = figures_markdown({"method": "grouped folds", "cross_calibrated": cc})
    assert "trained without its key's cut-outs" in folds and "**0.400** [0.300, 0.500]" in folds
