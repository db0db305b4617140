"""One self-contained HTML report of an evaluation (no external files: images are base64 PNGs).

Sections: summary table (``id="summary"``: micro and per-image-mean metrics with bootstrap 95%
intervals), threshold sweep plot (``id="sweep"``: micro IoU / Dice / precision / recall and
per-image-mean IoU vs threshold, from the probability histograms), metrics by key size
(``id="by-size"``, key share of the photo's non-ignore pixels), the worst photos by IoU with
overlays (``id="worst"``), and the per-image table (``id="per-image"``).
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

from real_eval.metrics import METRIC_NAMES

__all__ = ["render_report", "sweep_plot_png"]

_LABELS = {"iou": "IoU", "dice": "Dice", "precision": "Precision", "recall": "Recall",
           "boundary_f1": "Boundary F1", "boundary_iou": "Boundary IoU"}

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222;background:#fff}
h1{font-size:22px}h2{font-size:18px;margin-top:28px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}
th{background:#f0f3f7}td:first-child,th:first-child{text-align:left}
.ci{color:#777;font-size:12px}.worst{display:flex;flex-wrap:wrap;gap:16px}
figure{margin:0;max-width:480px}figure img{max-width:480px;border:1px solid #ccc}
figcaption{font-size:13px}.legend span{display:inline-block;width:12px;height:12px;margin:0 4px 0 12px}
"""


def _fmt(v: Any, nd: int = 3) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return "nan" if v != v else f"{v:.{nd}f}"
    return html.escape(str(v))


def _img_tag(png: bytes, alt: str, **attrs: str) -> str:
    extra = "".join(f' {k}="{html.escape(v)}"' for k, v in attrs.items())
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}"{extra}>'


def sweep_plot_png(sweep: dict[str, Any], threshold: float) -> bytes:
    """Matplotlib (Agg) PNG of metrics vs threshold; the evaluation threshold as a dashed line."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8.0, 3.6), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    t = sweep.get("thresholds") or []
    for key, label in (("micro_iou", "IoU (micro)"), ("micro_dice", "Dice (micro)"), ("micro_precision", "precision (micro)"),
                       ("micro_recall", "recall (micro)"), ("mean_iou", "IoU (per-image mean)")):
        if sweep.get(key):
            ax.plot(t, sweep[key], label=label, linestyle="--" if key == "mean_iou" else "-")
    ax.axvline(threshold, color="k", linestyle=":", linewidth=1)
    ax.set_xlabel("threshold on key probability")
    ax.set_ylabel("metric")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.02, 0.5))
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def render_report(result: dict[str, Any], *, overlay_dir: str | Path | None = None, n_worst: int = 6,
                  title: str = "keysynth evaluation on real photos") -> str:
    """HTML text of the report for an :func:`real_eval.evaluate.evaluate_model` result.

    ``overlay_dir`` holds ``NAME.png`` overlays (embedded for the ``n_worst`` photos by IoU).
    """
    ov = result["overall"]
    st = result.get("settings", {})
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{_CSS}</style></head><body>", f"<h1>{html.escape(title)}</h1>"]
    tol = "tolerance {} px".format(st["boundary_tol_px"]) if st.get("boundary_tol_px") is not None else \
        "tolerance {} of the diagonal".format(st.get("boundary_tol_frac"))
    parts.append(f"<p>{ov['n_images']} photos; strategy <b>{html.escape(str(st.get('strategy')))}</b>, threshold "
                 f"<b>{_fmt(st.get('threshold'), 2)}</b>; boundary F1 {html.escape(tol)}; Boundary IoU d = "
                 f"{_fmt(st.get('biou_d_frac'), 3)} of the diagonal; bootstrap {st.get('n_boot')} resamples, seed "
                 f"{st.get('seed')}. Model: {html.escape(str(st.get('model_spec')))}.</p>")
    parts.append("<h2>Summary</h2><table id='summary'><tr><th>metric</th><th>micro (pooled)</th><th>95% CI</th>"
                 "<th>per-image mean</th><th>95% CI</th></tr>")
    for m in METRIC_NAMES:
        mc, ec = ov["micro_ci"][m], ov["mean_ci"][m]
        parts.append(f"<tr><td>{_LABELS[m]}</td><td>{_fmt(ov['micro'][m])}</td><td class='ci'>[{_fmt(mc[0])}, {_fmt(mc[1])}]</td>"
                     f"<td>{_fmt(ov['mean'][m])}</td><td class='ci'>[{_fmt(ec[0])}, {_fmt(ec[1])}]</td></tr>")
    parts.append("</table>")
    sw = result.get("sweep") or {}
    if sw.get("thresholds"):
        parts.append("<h2>Threshold sweep</h2>")
        parts.append(_img_tag(sweep_plot_png(sw, float(st.get("threshold", 0.5))), "metrics vs threshold", id="sweep"))
        parts.append(f"<p>Best micro IoU {_fmt(sw.get('best_micro_iou'))} at threshold {_fmt(sw.get('best_threshold'), 2)}.</p>")
    parts.append("<h2>Metrics by key size</h2><p>Key share = GT key pixels / non-ignore pixels of the photo.</p>"
                 "<table id='by-size'><tr><th>key share</th><th>photos</th><th>mean IoU</th><th>micro IoU</th>"
                 "<th>mean Dice</th><th>mean boundary F1</th><th>mean Boundary IoU</th></tr>")
    for b in result.get("by_size", []):
        parts.append(f"<tr><td>{html.escape(b['bin'])}</td><td>{b['n_images']}</td><td>{_fmt(b['mean_iou'])}</td>"
                     f"<td>{_fmt(b['micro_iou'])}</td><td>{_fmt(b['mean_dice'])}</td><td>{_fmt(b['mean_boundary_f1'])}</td>"
                     f"<td>{_fmt(b['mean_boundary_iou'])}</td></tr>")
    parts.append("</table>")
    rows = result.get("per_image", [])
    worst = sorted(rows, key=lambda r: (r["iou"], r["name"]))[:n_worst]
    parts.append("<h2>Worst photos (by IoU)</h2><p class='legend'><span style='background:#00e600'></span>GT contour"
                 "<span style='background:#f00'></span>prediction contour<span style='background:#ff6b6b'></span>false "
                 "positive<span style='background:#ffdc00'></span>missed key<span style='background:#999'></span>ignore</p>"
                 "<div class='worst' id='worst'>")
    for r in worst:
        p = Path(overlay_dir) / f"{r['name']}.png" if overlay_dir is not None else None
        img = _img_tag(p.read_bytes(), f"overlay {r['name']}") if p is not None and p.is_file() else "<p>(no overlay)</p>"
        parts.append(f"<figure>{img}<figcaption><b>{html.escape(r['name'])}</b> ({r['width']}x{r['height']}): IoU "
                     f"{_fmt(r['iou'])}, Dice {_fmt(r['dice'])}, BF1 {_fmt(r['boundary_f1'])}, key share "
                     f"{_fmt(100 * r['key_share'], 2)}%</figcaption></figure>")
    parts.append("</div><h2>Per photo</h2><table id='per-image'><tr><th>photo</th><th>size</th><th>key share %</th>"
                 + "".join(f"<th>{_LABELS[m]}</th>" for m in METRIC_NAMES) + "</tr>")
    for r in rows:
        parts.append(f"<tr><td>{html.escape(r['name'])}</td><td>{r['width']}x{r['height']}</td><td>{_fmt(100 * r['key_share'], 2)}</td>"
                     + "".join(f"<td>{_fmt(r[m])}</td>" for m in METRIC_NAMES) + "</tr>")
    parts.append("</table></body></html>")
    return "\n".join(parts)
