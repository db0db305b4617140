"""Training metrics: ``log.csv`` (one row per ``log_every`` steps), TensorBoard scalars and a tqdm
bar, with throughput measured over the window since the previous row."""

from __future__ import annotations

import csv
import io
import logging
import time
from pathlib import Path
from typing import Any

from keysynth.common import atomic_write_text

__all__ = ["MetricLogger", "CSV_FIELDS"]

log = logging.getLogger("keysynth.train")

CSV_FIELDS = ["step", "loss", "dice", "bce", "boundary", "boundary_w", "lr", "img_per_s", "gen_per_s",
              "consumed_per_s", "data_wait_pct", "mean_reuse", "stalled_batches", "batch_id",
              "val_iou", "val_dice", "val_boundary_f1", "val_threshold", "val_iou_at_threshold",
              "real_iou", "real_dice", "real_boundary_f1"]


def _csv_start(path: Path, resume_step: int | None) -> None:
    """Create log.csv with a header, or on resume drop rows after the checkpoint's step."""
    rows = []
    if resume_step is not None and path.is_file():
        with open(path, newline="") as fh:
            rows = [r for r in csv.DictReader(fh) if int(r["step"]) <= resume_step]
    text = io.StringIO(newline="")
    w = csv.DictWriter(text, CSV_FIELDS)
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(path, text.getvalue())


class MetricLogger:
    """Rows of loss parts, learning rate, throughput (trainer img/s, generator and consumption
    rates, data-wait %) and evaluation metrics; written by rank 0 only (``active``).

    Args:
        out: run folder (``log.csv``, ``tb/``).
        resume_step: the resumed checkpoint's step (rows after it are dropped), ``None`` for a new run.
    """

    def __init__(self, out: Path, *, total_steps: int, step: int, resume_step: int | None, active: bool,
                 tensorboard: bool, progress: bool, max_reuse: int):
        from tqdm import tqdm

        self.out, self.active, self.max_reuse = Path(out), active, max_reuse
        self.history: list[dict[str, Any]] = []
        self.writer = None
        if active:
            _csv_start(self.out / "log.csv", resume_step)
            if tensorboard:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(str(self.out / "tb"), purge_step=resume_step)
        self.bar = tqdm(total=total_steps, initial=step, disable=not (active and progress), dynamic_ncols=True,
                        desc="train")
        self._window()

    def _window(self) -> None:
        self.t0, self.wait_s, self.images, self.stalled = time.perf_counter(), 0.0, 0, 0

    def observe(self, batch) -> None:
        """Count one batch into the throughput window."""
        self.wait_s += batch.wait_s
        self.images += len(batch.index)
        self.stalled += int(batch.stalled)

    def row(self, step: int, parts: dict, extra: dict[str, Any], stream_stats: dict[str, float],
            metrics: dict[str, float] | None) -> dict[str, Any]:
        """Close the window into one row (logged on rank 0) and start the next window."""
        now = time.perf_counter()
        span = max(now - self.t0, 1e-9)
        st = stream_stats
        row = {k: float(v) for k, v in parts.items()}
        row.update(step=step, **extra, img_per_s=self.images / span, gen_per_s=st["gen_per_s"],
                   consumed_per_s=st["consumed_per_s"], mean_reuse=st["mean_reuse"],
                   data_wait_pct=100.0 * self.wait_s / span, stalled_batches=st["stalled_batches"])
        if metrics is not None:
            row.update(metrics)
        if self.stalled and self.active:
            msg = (f"stalled-reuse: {self.stalled} batch(es) since the last log reused samples beyond "
                   f"max_reuse={self.max_reuse} (generation {st['gen_per_s']:.1f}/s < consumption "
                   f"{st['consumed_per_s']:.1f}/s); add --num-workers or raise --max-reuse")
            log.warning(msg)
            self.bar.write(msg)
        self._window()
        if self.active:
            self._write(row, step)
        return row

    def _write(self, row: dict[str, Any], step: int) -> None:
        self.history.append(row)
        with open(self.out / "log.csv", "a", newline="") as fh:
            csv.DictWriter(fh, CSV_FIELDS, extrasaction="ignore").writerow(row)
        if self.writer is not None:
            for k, v in row.items():
                if k not in ("step", "batch_id") and v == v:
                    self.writer.add_scalar(f"train/{k}" if not k.startswith(("val_", "real_")) else
                                           k.replace("_", "/", 1), v, step)
        self.bar.set_postfix(loss=f"{row['loss']:.3f}", img_s=f"{row['img_per_s']:.1f}",
                             gen_s=f"{row['gen_per_s']:.1f}", wait=f"{row['data_wait_pct']:.0f}%")

    def image(self, tag: str, grid, step: int) -> None:
        """An image (H, W, 3) uint8 to TensorBoard, when enabled."""
        if self.writer is not None:
            self.writer.add_image(tag, grid, step, dataformats="HWC")

    def close(self) -> None:
        """Close the progress bar and the TensorBoard writer."""
        self.bar.close()
        if self.writer is not None:
            self.writer.close()
