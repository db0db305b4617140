"""``keysynth app``: a web app (Gradio) to segment photos, tune the generator and evaluate a model.

Tabs:

- **Segment**: upload photos (JPEG / PNG / WebP, any size; EXIF orientation honoured); see the
  overlay, the mask and a transparent cut-out, and download the mask and cut-out PNGs. Photos
  with a long side above 4000 px are downscaled to 4000 px before prediction.
- **Generator**: the main ``SynthConfig`` controls with a live grid of samples (mask contours in
  green) and histograms of the sampled parameters; download the YAML config or a zip of samples.
- **Evaluate**: upload a zip of an annotated set (masks, COCO, CVAT, Supervisely or labelme;
  detected automatically) and read the evaluation report.

Gradio is imported only when the command runs, so ``keysynth --help`` stays fast.
"""

from __future__ import annotations

import argparse
import atexit
import functools
import html
import logging
import shutil
import signal
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Callable

from keysynth.app_core import MAX_SIDE, AppInputError

__all__ = ["register", "cmd_app", "KeysynthApp", "build_app"]

log = logging.getLogger("keysynth.app")
_MD_SPECIAL = "\\`*_{}[]<>()#+-!|~"
#: a checkerboard behind the cut-out shows its transparency
CSS = "#seg-cutout img {background: repeating-conic-gradient(#ccc 0% 25%, #fff 0% 50%) 50% / 16px 16px;}"


def register(subparsers) -> None:
    """Add ``keysynth app`` to the CLI's sub-parsers (sets ``func`` = :func:`cmd_app`)."""
    p = subparsers.add_parser("app", help="web app: segment photos, tune the generator, evaluate a model",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default=None, metavar="C",
                   help="checkpoint .pt or model folder (default: the shipped model, models/keysynth-unet, "
                        "or $KEYSYNTH_MODEL)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda (default auto)")
    p.set_defaults(func=cmd_app)


def _escape_md(text: str) -> str:
    return "".join("\\" + c if c in _MD_SPECIAL else c for c in str(text))


def _error_md(message: str) -> str:
    return f"**Error:** {_escape_md(message)}"


class KeysynthApp:
    """The app's state: the model (or the message saying why there is none) and a temp folder.

    Args:
        checkpoint: ``.pt`` checkpoint or model folder; ``None`` = the shipped model.
        device: torch device for prediction.
        workdir: folder for outputs served to the page (default: a new temp folder, removed at exit).
    """

    def __init__(self, checkpoint: str | Path | None = None, device: str = "cpu", workdir: str | Path | None = None):
        from real_eval.model_io import load_checkpoint

        self.checkpoint = str(checkpoint) if checkpoint else None
        self.device = device
        if workdir is None:
            workdir = tempfile.mkdtemp(prefix="keysynth-app-")
            atexit.register(shutil.rmtree, workdir, True)
        self.workdir = Path(workdir)
        self.model, self.spec, self.model_error = None, {}, None
        try:
            self.model, self.spec = load_checkpoint(self.checkpoint, device)
        except (FileNotFoundError, ValueError, OSError, RuntimeError) as exc:  # RuntimeError: weights do not fit
            self.model_error = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__

    @property
    def threshold(self) -> float:
        """The model's own threshold (0.5 when it has none)."""
        own = self.spec.get("threshold")
        return 0.5 if own is None else float(own)

    @property
    def strategy(self) -> str:
        """The model's own inference strategy (``DEFAULT_STRATEGY`` when it has none)."""
        from real_eval.strategies import DEFAULT_STRATEGY

        return str(self.spec.get("strategy") or DEFAULT_STRATEGY)

    def model_markdown(self) -> str:
        """Which model is used and its figures, or the message saying why none could be loaded."""
        from keysynth.app_core import model_summary

        if self.model is None:
            return _error_md(f"no model loaded: {self.model_error}") + "\n\nThe Generator tab works without one."
        return model_summary(self.spec, self.checkpoint)

    def require_model(self):
        """``(model, spec)``; raises :class:`AppInputError` with the load error when there is none."""
        if self.model is None:
            raise AppInputError(f"no model loaded: {self.model_error}")
        return self.model, self.spec

    def run_dir(self, kind: str, keep_s: float = 3600.0) -> Path:
        """A new folder ``workdir/kind/<id>``; folders of ``kind`` older than ``keep_s`` are removed."""
        root = self.workdir / kind
        root.mkdir(parents=True, exist_ok=True)
        now = time.time()
        for old in root.iterdir():
            try:
                if now - old.stat().st_mtime > keep_s:
                    shutil.rmtree(old, ignore_errors=True)
            except OSError:
                pass
        out = root / uuid.uuid4().hex[:12]
        out.mkdir()
        return out


def guarded(n_outputs: int, *, status_index: int = 0, keep_others: bool = False) -> Callable:
    """Decorator for event handlers: any exception becomes an error message in output
    ``status_index`` (the others cleared, or left as they are with ``keep_others``); unexpected
    errors are logged with their traceback on the server, never shown in the page."""
    def deco(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            import gradio as gr

            try:
                return fn(*args, **kwargs)
            except (AppInputError, FileNotFoundError, ValueError) as exc:
                msg = str(exc)
            except MemoryError:
                msg = "out of memory; try a smaller photo or set"
            except Exception as exc:  # noqa: BLE001 - the page gets a message, the log the traceback
                log.exception("keysynth app: %s failed", fn.__name__)
                msg = f"unexpected {type(exc).__name__}: {exc}; the details are in the server log"
            out = [gr.skip() if keep_others else None for _ in range(n_outputs)]
            out[status_index] = _error_md(msg)
            return tuple(out)
        return wrapper
    return deco


def _segment_status(records: list[dict], errors: list[str]) -> str:
    lines = []
    for r in records:
        info = r["info"]
        (ow, oh), (w, h) = info["original_size"], info["size"]
        size = f"{ow} x {oh} px, downscaled to {w} x {h}" if info["downscaled"] else f"{w} x {h} px"
        lines.append(f"- {_escape_md(r['name'])}: {size}; key pixels {100 * r['key_share']:.2f}%; "
                     f"{r['seconds']:.2f} s")
    lines += [f"- {_error_md(e)}" for e in errors]
    return "\n".join(lines) if lines else "Upload one or more photos."


def _segment_handler(app: KeysynthApp):
    @guarded(7)
    def run(files, strategy, threshold):
        import gradio as gr

        from keysynth.app_core import segment_files

        if not files:
            return ("Upload one or more photos.", None, None, None, None, None, [])
        model, spec = app.require_model()
        paths = [getattr(f, "name", f) for f in (files if isinstance(files, list) else [files])]
        out = app.run_dir("segment")
        records, errors = segment_files(paths, model, spec, out, strategy=strategy, threshold=float(threshold),
                                        device=app.device)
        status = _segment_status(records, errors)
        if not records:
            return (status, gr.Gallery(value=None, visible=False), None, None, None, None, [])
        gallery = gr.Gallery(value=[(str(r["overlay_preview"]), r["name"]) for r in records],
                             visible=len(records) > 1)
        first = records[0]
        downloads = [str(p) for r in records for p in (r["mask"], r["cutout"])]
        state = [{k: str(r[k]) for k in ("overlay_preview", "mask_preview", "cutout_preview")} for r in records]
        return (status, gallery, str(first["overlay_preview"]), str(first["mask_preview"]),
                str(first["cutout_preview"]), downloads, state)
    return run


def _show_selected(state, evt):
    if not state or evt is None or not 0 <= int(evt.index) < len(state):
        return None, None, None
    r = state[int(evt.index)]
    return r["overlay_preview"], r["mask_preview"], r["cutout_preview"]


def _segment_tab(app: KeysynthApp, gr) -> None:
    from real_eval.strategies import STRATEGIES

    gr.Markdown(app.model_markdown(), elem_id="seg-model")
    with gr.Row():
        with gr.Column(scale=1):
            files = gr.File(label="Photos (JPEG, PNG or WebP; several at once)", file_count="multiple",
                            elem_id="seg-files")
            strategy = gr.Dropdown(list(STRATEGIES), value=app.strategy, label="Inference strategy",
                                   info="resize: one pass; tiles: native-resolution windows; "
                                        "coarse-to-fine: low-resolution pass, then full-resolution crops of keys")
            threshold = gr.Slider(0.0, 1.0, value=app.threshold, step=0.01, label="Threshold",
                                  info="key where probability >= threshold (default: the model's own)")
            button = gr.Button("Segment", variant="primary")
            gr.Markdown(f"Photos larger than {MAX_SIDE} px on the long side are downscaled to {MAX_SIDE} px before "
                        "prediction; masks and cut-outs are at that size.")
            status = gr.Markdown("Upload one or more photos.", elem_id="seg-status")
            downloads = gr.File(label="Downloads: mask PNG (0 / 255) and RGBA cut-out PNG per photo",
                                file_count="multiple", interactive=False, elem_id="seg-downloads")
        with gr.Column(scale=2):
            gallery = gr.Gallery(label="Overlays (click one to show it below)", columns=6, height=160, fit_columns=False,
                                 object_fit="contain", allow_preview=False, visible=False, elem_id="seg-gallery")
            overlay = gr.Image(label="Overlay (key tinted red, outlined in yellow)", type="filepath",
                               interactive=False, height=420, elem_id="seg-overlay")
            with gr.Row():
                mask = gr.Image(label="Mask", type="filepath", image_mode="L", format="png", interactive=False,
                                elem_id="seg-mask")
                cutout = gr.Image(label="Cut-out", type="filepath", image_mode="RGBA", format="png",
                                  interactive=False, elem_id="seg-cutout")
    state = gr.State([])
    outputs = [status, gallery, overlay, mask, cutout, downloads, state]
    run = _segment_handler(app)
    files.upload(run, [files, strategy, threshold], outputs)
    button.click(run, [files, strategy, threshold], outputs)

    def select(state_value, evt):
        return _show_selected(state_value, evt)

    select.__annotations__ = {"evt": gr.SelectData}  # resolved here: gradio injects the event by type
    gallery.select(select, [state], [overlay, mask, cutout])


def _generator_inputs_to_config(base, key_source, backgrounds, values: list[float], size: int):
    """Unpack the generator sliders (low/high per range, then probabilities) into a SynthConfig."""
    from keysynth.app_generator import RANGE_CONTROLS, config_from_controls

    k = 2 * len(RANGE_CONTROLS)
    ranges = [(values[2 * i], values[2 * i + 1]) for i in range(len(RANGE_CONTROLS))]
    return config_from_controls(base, key_source=key_source, backgrounds=backgrounds, ranges=ranges,
                                probs=values[k:], size=size)


def _generator_handlers(app: KeysynthApp, base):
    from keysynth.app_generator import grid_image, histogram_image, render_samples, write_samples_zip

    @guarded(4, keep_others=True)
    def preview(key_source, backgrounds, seed, n_grid, n_hist, *values):
        t0 = time.perf_counter()
        config = _generator_inputs_to_config(base, key_source, backgrounds, list(values), size=192)
        samples = render_samples(config, int(seed), max(int(n_grid), int(n_hist)))
        grid = grid_image(samples[:int(n_grid)], tile=192, cols=4)
        hist = histogram_image(samples[:int(n_hist)])
        yaml_path = app.run_dir("generator") / "synth_config.yaml"
        config.replace(size=base.size).to_yaml(yaml_path)
        msg = (f"{int(n_grid)} samples in the grid, {int(n_hist)} in the histograms; run seed {int(seed)}, 192 px; "
               f"{time.perf_counter() - t0:.2f} s.")
        return msg, grid, hist, str(yaml_path)

    @guarded(2, keep_others=True)
    def make_zip(key_source, backgrounds, seed, n_zip, size, *values):
        t0 = time.perf_counter()
        config = _generator_inputs_to_config(base, key_source, backgrounds, list(values), size=int(size))
        path = write_samples_zip(config, int(seed), int(n_zip), app.run_dir("generator") / f"keysynth_samples_{int(seed)}.zip")
        return f"{int(n_zip)} samples at {int(size)} px in {time.perf_counter() - t0:.1f} s.", str(path)

    return preview, make_zip


def _range_sliders(gr, base) -> list:
    from keysynth.app_generator import PROB_CONTROLS, RANGE_CONTROLS

    sliders = []
    for name, label, lo, hi, step in RANGE_CONTROLS:
        cur = getattr(base, name)
        with gr.Row():
            sliders.append(gr.Slider(lo, hi, value=min(max(cur[0], lo), hi), step=step, label=f"{label}: low",
                                     elem_id=f"gen-{name}-low"))
            sliders.append(gr.Slider(lo, hi, value=min(max(cur[1], lo), hi), step=step, label=f"{label}: high",
                                     elem_id=f"gen-{name}-high"))
    with gr.Row():
        for name, label in PROB_CONTROLS:
            sliders.append(gr.Slider(0.0, 1.0, value=getattr(base, name), step=0.01, label=label,
                                     elem_id=f"gen-{name}"))
    return sliders


def _generator_tab(app: KeysynthApp, gr, demo) -> None:
    from synth import SynthConfig

    from keysynth.app_generator import MAX_ZIP_SAMPLES

    base = SynthConfig.default()
    with gr.Row():
        with gr.Column(scale=1):
            key_source = gr.Textbox(base.key_source, label="Key source",
                                    info="procedural, a folder of cut-outs, or a mix: procedural:0.5,DIR:0.5")
            backgrounds = gr.Textbox(base.backgrounds, label="Backgrounds",
                                     info="default | procedural | bundled | procedural:wood,tiles | a folder of photos")
            with gr.Row():
                seed = gr.Number(0, label="Run seed", precision=0, minimum=0, elem_id="gen-seed")
                n_grid = gr.Slider(4, 16, value=8, step=4, label="Samples in the grid")
                n_hist = gr.Slider(8, 128, value=32, step=8, label="Samples in the histograms")
            sliders = _range_sliders(gr, base)
        with gr.Column(scale=1):
            status = gr.Markdown("", elem_id="gen-status")
            grid = gr.Image(label="Samples (mask contours in green)", interactive=False, format="jpeg",
                            elem_id="gen-grid")
            hist = gr.Image(label="Sampled parameters", interactive=False, format="png", elem_id="gen-hist")
            yaml_btn = gr.DownloadButton("Download YAML config", elem_id="gen-yaml")
            with gr.Row():
                n_zip = gr.Number(32, label=f"Samples in the zip (1-{MAX_ZIP_SAMPLES})", precision=0, minimum=1,
                                  maximum=MAX_ZIP_SAMPLES)
                size = gr.Number(base.size, label="Sample size, px", precision=0, minimum=16, maximum=1024)
            zip_btn = gr.Button("Make zip of samples (images + masks)")
            zip_status = gr.Markdown("")
            zip_file = gr.File(label="Samples zip", interactive=False)
    preview, make_zip = _generator_handlers(app, base)
    inputs = [key_source, backgrounds, seed, n_grid, n_hist, *sliders]
    outputs = [status, grid, hist, yaml_btn]
    for comp in [*sliders, n_grid, n_hist, seed]:
        comp.change(preview, inputs, outputs, trigger_mode="always_last", show_progress="minimal")
    for comp in (key_source, backgrounds):
        comp.submit(preview, inputs, outputs, trigger_mode="always_last")
        comp.blur(preview, inputs, outputs, trigger_mode="always_last")
    demo.load(preview, inputs, outputs)
    zip_btn.click(make_zip, [key_source, backgrounds, seed, n_zip, size, *sliders], [zip_status, zip_file])


def _metrics_markdown(res: dict[str, Any]) -> str:
    from real_eval.metrics import METRIC_NAMES

    ov = res["overall"]
    lines = [f"{ov['n_images']} photos; strategy {res['settings']['strategy']}, threshold "
             f"{res['settings']['threshold']:.2f}; best threshold on this set {res['sweep']['best_threshold']}.", "",
             "| metric | pooled (micro) | 95% interval | mean per photo |", "| --- | --- | --- | --- |"]
    for m in METRIC_NAMES:
        ci = ov["micro_ci"][m]
        lines.append(f"| {m} | {ov['micro'][m]:.4f} | {ci[0]:.4f} – {ci[1]:.4f} | {ov['mean'][m]:.4f} |")
    return "\n".join(lines)


def _evaluate_handler(app: KeysynthApp):
    @guarded(4)
    def run(zip_file, fmt, strategy, threshold):
        from real_eval.dataset import load_real_set
        from real_eval.evaluate import evaluate_model

        from keysynth.app_core import PREDICT_LOCK, dataset_root, safe_extract_zip

        if not zip_file:
            return "Upload a zip of an annotated set.", None, None, None
        model, spec = app.require_model()
        work = app.run_dir("evaluate")
        safe_extract_zip(getattr(zip_file, "name", zip_file), work / "data")
        root = dataset_root(work / "data")
        samples = load_real_set(root, fmt=None if fmt == "auto" else fmt)
        if not samples:
            raise AppInputError("the zip holds no annotated photos")
        t0 = time.perf_counter()
        with PREDICT_LOCK:
            res = evaluate_model(model, spec, samples, device=app.device, threshold=float(threshold),
                                 strategy=strategy, out_dir=work / "out", title=f"{Path(str(zip_file)).name}")
        del samples
        report = (work / "out" / "report.html").read_text(encoding="utf-8")
        frame = (f'<iframe title="evaluation report" sandbox="" srcdoc="{html.escape(report, quote=True)}" '
                 'style="width:100%;height:900px;border:1px solid #ccc;background:white"></iframe>')
        files = [str(work / "out" / n) for n in ("report.html", "metrics.json", "per_image.csv")]
        return f"Evaluated in {time.perf_counter() - t0:.1f} s.", _metrics_markdown(res), frame, files
    return run


def _evaluate_tab(app: KeysynthApp, gr) -> None:
    from real_eval.readers import READERS
    from real_eval.strategies import STRATEGIES

    gr.Markdown(app.model_markdown())
    with gr.Row():
        with gr.Column(scale=1):
            zip_file = gr.File(label="Annotated set (.zip)", file_count="single", elem_id="eval-zip")
            fmt = gr.Dropdown(["auto", *READERS], value="auto", label="Annotation format",
                              info="auto-detected: image + mask folders, COCO, CVAT, Supervisely or labelme")
            strategy = gr.Dropdown(list(STRATEGIES), value=app.strategy, label="Inference strategy")
            threshold = gr.Slider(0.0, 1.0, value=app.threshold, step=0.01, label="Threshold")
            button = gr.Button("Evaluate", variant="primary")
            status = gr.Markdown("Upload a zip of an annotated set.", elem_id="eval-status")
            files = gr.File(label="report.html, metrics.json, per_image.csv", file_count="multiple",
                            interactive=False)
        with gr.Column(scale=2):
            metrics = gr.Markdown("", elem_id="eval-metrics")
            report = gr.HTML("", elem_id="eval-report")
    run = _evaluate_handler(app)
    zip_file.upload(run, [zip_file, fmt, strategy, threshold], [status, metrics, report, files])
    button.click(run, [zip_file, fmt, strategy, threshold], [status, metrics, report, files])


def build_app(checkpoint: str | Path | None = None, device: str = "cpu", *, app: KeysynthApp | None = None):
    """The Gradio ``Blocks`` of the web app (not launched).

    Args:
        checkpoint: ``.pt`` checkpoint or model folder; ``None`` = the shipped model. A model that
            cannot be loaded is reported in the page (the Generator tab still works).
        device: torch device for prediction.
        app: an existing :class:`KeysynthApp` (then ``checkpoint`` and ``device`` are ignored).

    Returns:
        ``gradio.Blocks``; start it with ``.launch(server_name=..., server_port=...)``.
    """
    import gradio as gr

    app = app or KeysynthApp(checkpoint, device)
    with gr.Blocks(title="keysynth", analytics_enabled=False, delete_cache=(900, 3600)) as demo:
        gr.Markdown("# keysynth — key segmentation")
        with gr.Tabs():
            with gr.Tab("Segment", id="segment", elem_id="tab-segment"):
                _segment_tab(app, gr)
            with gr.Tab("Generator", id="generator", elem_id="tab-generator"):
                _generator_tab(app, gr, demo)
            with gr.Tab("Evaluate", id="evaluate", elem_id="tab-evaluate"):
                _evaluate_tab(app, gr)
    demo.keysynth_app = app
    return demo


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def cmd_app(args: argparse.Namespace) -> int:
    """``keysynth app``: build the app and serve it until interrupted (Ctrl-C)."""
    import os

    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from keysynth.cli import CLIError

    device = args.device
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    app = KeysynthApp(args.checkpoint, device)
    if app.model_error:
        print(f"keysynth app: warning: no model loaded ({app.model_error}); the page says so", file=sys.stderr)
    demo = build_app(app=app)
    try:
        demo.queue(default_concurrency_limit=1).launch(
            server_name=args.host, server_port=int(args.port), max_file_size="1gb", ssr_mode=False,
            show_error=False, quiet=True, allowed_paths=[str(app.workdir)], footer_links=[], css=CSS,
            prevent_thread_lock=True)
    except OSError as exc:
        demo.close()
        raise CLIError(f"cannot serve on {args.host}:{args.port} ({exc}); pick another --port") from None
    print(f"keysynth app: serving http://{args.host}:{args.port} (Ctrl-C stops it)", flush=True)
    signal.signal(signal.SIGTERM, _interrupt)  # a terminated server still removes its temp folder
    try:
        while demo.is_running:
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        demo.close()
    return 0
