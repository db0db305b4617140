"""Generator helpers of ``keysynth app`` (no Gradio): a ``SynthConfig`` from the page's controls,
a sample grid with mask contours, histograms of the sampled parameters, and a zip of samples.
"""

from __future__ import annotations

import functools
import math
import zipfile
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np

from keysynth.app_core import AppInputError

__all__ = ["RANGE_CONTROLS", "PROB_CONTROLS", "config_from_controls", "render_samples", "grid_image",
           "histogram_values", "histogram_image", "write_samples_zip", "MAX_ZIP_SAMPLES"]

#: (SynthConfig field, label, minimum, maximum, step): each shown as a "low" and a "high" slider.
RANGE_CONTROLS = (
    ("key_length_typical_range", "key length / frame side", 0.02, 0.95, 0.01),
    ("n_keys_range", "keys per photo", 1, 8, 1),
    ("lighting_gradient_range", "lighting gradient amplitude", 0.0, 0.9, 0.01),
    ("n_distractors_range", "distractors per photo", 0, 10, 1),
    ("jpeg_quality_range", "JPEG quality", 5, 100, 1),
)
#: (SynthConfig field, label): probabilities, one slider each.
PROB_CONTROLS = (
    ("shadow_prob", "shadow probability"),
    ("hand_prob", "hand / finger probability"),
    ("defocus_prob", "defocus blur probability"),
    ("noise_prob", "sensor noise probability"),
)
MAX_ZIP_SAMPLES = 500
_INT_RANGES = {"n_keys_range", "n_distractors_range", "jpeg_quality_range"}


def config_from_controls(base, *, key_source: str, backgrounds: str, ranges: Sequence[tuple[float, float]],
                         probs: Sequence[float], size: int):
    """A ``synth.SynthConfig``: ``base`` with the page's values.

    Args:
        base: the starting ``SynthConfig`` (fields without a control keep its values).
        key_source: ``"procedural"``, a cut-out folder or a mix ``"procedural:0.5,DIR:0.5"``.
        backgrounds: a ``backgrounds.make_backgrounds`` spec or a folder of photos.
        ranges: one ``(low, high)`` per :data:`RANGE_CONTROLS` entry, same order.
        probs: one probability per :data:`PROB_CONTROLS` entry, same order.
        size: sample side, px.

    Raises:
        AppInputError: a low above its high, an empty key source, or a value SynthConfig refuses
            (the message names the field).
    """
    from synth.keysources import parse_key_sources

    values: dict[str, Any] = {"size": int(size), "backgrounds": str(backgrounds or "default").strip() or "default"}
    source = str(key_source or "").strip()
    if not source:
        raise AppInputError("key source is empty; write e.g. 'procedural' or 'procedural:0.5,/data/cutouts:0.5'")
    try:
        parse_key_sources(source)
    except ValueError as exc:
        raise AppInputError(str(exc)) from None
    values["key_source"] = source
    for (name, label, *_), (lo, hi) in zip(RANGE_CONTROLS, ranges):
        lo, hi = (int(round(lo)), int(round(hi))) if name in _INT_RANGES else (float(lo), float(hi))
        if lo > hi:
            raise AppInputError(f"{label}: low {lo} is above high {hi}; move one of the two sliders")
        values[name] = (lo, hi)
    for (name, _), p in zip(PROB_CONTROLS, probs):
        values[name] = float(p)
    try:
        return base.replace(**values)
    except (TypeError, ValueError) as exc:
        raise AppInputError(str(exc)) from None


@functools.lru_cache(maxsize=4)
def _background_source(spec: str):
    from backgrounds import make_backgrounds

    return make_backgrounds(spec)


def _renderer(config):
    from synth import SampleRenderer

    try:
        bg = _background_source(config.backgrounds)
    except ValueError as exc:
        raise AppInputError(str(exc)) from None
    return SampleRenderer(config, backgrounds=bg)


def render_samples(config, run_seed: int, n: int) -> list[dict[str, Any]]:
    """Samples ``0..n-1`` of run ``run_seed`` (the sample contract: ``image`` uint8 (S, S, 3) RGB,
    ``mask`` uint8 (S, S) in {0, 1, 255}, ``meta``), rendered with
    ``synth.SampleRenderer(config, backgrounds=backgrounds.make_backgrounds(config.backgrounds))``.

    Raises:
        AppInputError: unknown backgrounds or key source (missing folder, no cut-outs in it).
    """
    r = _renderer(config)
    try:
        return [r.render(i, int(run_seed)) for i in range(int(n))]
    except (FileNotFoundError, ValueError) as exc:
        raise AppInputError(str(exc)) from None


def grid_image(samples: Sequence[dict[str, Any]], *, tile: int = 192, cols: int = 4) -> np.ndarray:
    """uint8 RGB grid of samples with green mask contours (``synth.preview.contact_sheet``),
    ``cols`` tiles of ``tile`` px per row."""
    from synth.preview import contact_sheet

    sheet = contact_sheet(list(samples), cols=min(cols, len(samples)), tile=tile)
    return cv2.cvtColor(sheet, cv2.COLOR_BGR2RGB)


def histogram_values(samples: Sequence[dict[str, Any]]) -> dict[str, list[float]]:
    """The sampled parameters the page's controls act on, pooled over ``samples``:
    ``{label: values}`` (keys per photo, key length / frame, lighting gradient, shadow strength,
    distractors and fingers per photo, defocus sigma, sensor read noise, JPEG quality). A
    parameter an effect did not draw (e.g. no defocus) contributes no value."""
    out: dict[str, list[float]] = {k: [] for k in (
        "keys per photo", "key length / frame", "lighting gradient", "shadow strength", "distractors per photo",
        "fingers per photo", "defocus sigma (px)", "read noise (DN)", "JPEG quality")}
    for s in samples:
        m = s["meta"]
        size = float(m.get("size") or s["image"].shape[0])
        keys = m.get("keys") or []
        out["keys per photo"].append(float(len(keys)))
        out["key length / frame"] += [float(k["length_px"]) / size for k in keys if "length_px" in k]
        out["shadow strength"] += [float(k["shadow"]["strength"]) for k in keys if isinstance(k.get("shadow"), dict)
                                   and "strength" in k["shadow"]]
        out["lighting gradient"].append(float((m.get("illumination") or {}).get("gradient_amplitude", 0.0)))
        out["distractors per photo"].append(float(len(m.get("negatives") or [])))
        out["fingers per photo"].append(float(sum(1 for o in (m.get("occluders") or [])
                                                if isinstance(o, dict) and "finger_width_px" in o)))
        cam = m.get("camera") or {}
        for label, effect, field in (("defocus sigma (px)", "defocus_blur", "sigma"),
                                     ("read noise (DN)", "sensor_noise", "read"), ("JPEG quality", "jpeg", "quality")):
            if isinstance(cam.get(effect), dict) and field in cam[effect]:
                out[label].append(float(cam[effect][field]))
    return out


def histogram_image(samples: Sequence[dict[str, Any]], *, width_px: int = 780) -> np.ndarray:
    """uint8 RGB image of one histogram per :func:`histogram_values` entry (matplotlib, Agg)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    vals = histogram_values(samples)
    cols = 3
    rows = math.ceil(len(vals) / cols)
    dpi = 100
    fig = Figure(figsize=(width_px / dpi, rows * 1.55), dpi=dpi)
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax, (label, v) in zip(axes.flat, vals.items()):
        if v:
            ax.hist(v, bins=min(20, max(5, len(set(v)))), color="tab:blue")
        else:
            ax.text(0.5, 0.5, "not drawn", ha="center", va="center", fontsize=8, color="grey")
        ax.set_title(f"{label} (n={len(v)})", fontsize=8)
        ax.tick_params(labelsize=7, length=2)
        ax.set_yticks([])
    for ax in list(axes.flat)[len(vals):]:
        ax.axis("off")
    fig.subplots_adjust(left=0.02, right=0.98, bottom=0.08, top=0.86, hspace=0.9, wspace=0.15)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.ascontiguousarray(np.asarray(canvas.buffer_rgba())[:, :, :3])


def write_samples_zip(config, run_seed: int, n: int, path: str | Path) -> Path:
    """Render samples ``0..n-1`` of run ``run_seed`` into a zip at ``path``:
    ``images/NNNNNNNN.jpg`` (JPEG q95), ``masks/NNNNNNNN.png`` (0 background, 1 key, 255
    ignore: the ``keysynth synth`` convention), ``meta.jsonl`` (one JSON line per sample) and
    ``synth_config.yaml`` (``SynthConfig.to_yaml``, usable with ``keysynth synth --config``).
    Samples are rendered and written one at a time (bounded memory).

    Raises:
        AppInputError: ``n`` outside 1..:data:`MAX_ZIP_SAMPLES`, or what :func:`render_samples` raises.
    """
    from synth.writers.encoding import encode_jpeg, encode_json, encode_png

    n = int(n)
    if not 1 <= n <= MAX_ZIP_SAMPLES:
        raise AppInputError(f"number of samples must be 1..{MAX_ZIP_SAMPLES}, got {n}")
    r = _renderer(config)
    path = Path(path)
    lines = []
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("synth_config.yaml", config.to_yaml())
        for i in range(n):
            try:
                s = r.render(i, int(run_seed))
            except (FileNotFoundError, ValueError) as exc:
                raise AppInputError(str(exc)) from None
            zf.writestr(f"images/{i:08d}.jpg", encode_jpeg(s["image"]))
            zf.writestr(f"masks/{i:08d}.png", encode_png(s["mask"]))
            lines.append(encode_json(s["meta"]))
        zf.writestr("meta.jsonl", b"\n".join(lines) + b"\n")
    return path
