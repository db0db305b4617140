"""Checkpoints of a training run: atomic saves, the best / rotating / last files, and resume.

Checkpoint contract (docs/DESIGN.md): ``model``, ``optimizer``, ``scheduler``, ``step``,
``config``, ``model_spec``, ``rng`` (per-rank torch / cuda states), ``stream`` (per-rank stream
state), ``best`` (best score so far), ``metrics``, ``synth_config``. Files hold only tensors and
plain containers and are read with ``torch.load(weights_only=True)``
(:func:`real_eval.model_io.read_checkpoint`), so a checkpoint cannot run code.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from keysynth.common import atomic_open

__all__ = ["Checkpointer", "save_checkpoint", "resolve_resume", "load_resume", "with_synthetic_threshold"]


def save_checkpoint(path: Path, state: dict) -> None:
    """``torch.save`` to a temporary name in the same folder, then ``os.replace`` (atomic)."""
    with atomic_open(path) as fh:
        torch.save(state, fh)


def resolve_resume(resume: str | None, out: str) -> Path | None:
    """``None`` | ``"auto"`` (OUT/checkpoints/last.pt) | run dir | checkpoint file -> checkpoint path.

    Raises:
        FileNotFoundError: the checkpoint does not exist; the message gives the accepted forms.
    """
    if not resume:
        return None
    p = Path(out) / "checkpoints" / "last.pt" if resume == "auto" else Path(resume)
    if p.is_dir():
        p = p / "checkpoints" / "last.pt" if (p / "checkpoints").is_dir() else p / "last.pt"
    if not p.is_file():
        raise FileNotFoundError(f"resume checkpoint {p} does not exist; pass --resume RUN_DIR or a .pt file")
    return p


def load_resume(path: Path, model, optimizer, scheduler, rank: int, device: torch.device) -> tuple[int, float, dict | None]:
    """Load a checkpoint into ``model``, ``optimizer``, ``scheduler`` and this rank's torch RNGs.

    Returns:
        ``(step, best_score, stream_state)``: the stream state of ``rank`` (``None`` if absent).
    """
    from real_eval.model_io import read_checkpoint

    ckpt = read_checkpoint(path, device)
    model.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    scheduler.load_state_dict(ckpt["scheduler"])
    rng = ckpt.get("rng", {})
    if "torch" in rng and rank < len(rng["torch"]):
        torch.set_rng_state(rng["torch"][rank])
    if device.type == "cuda" and rng.get("cuda") and rank < len(rng["cuda"]):
        torch.cuda.set_rng_state(rng["cuda"][rank], device)
    streams = ckpt.get("stream") or []
    return int(ckpt["step"]), float(ckpt.get("best", -1.0)), streams[rank] if rank < len(streams) else None


def with_synthetic_threshold(model_spec: dict, metrics: dict[str, float]) -> dict:
    """``model_spec`` with the decision threshold read off the synthetic validation samples
    (``val_threshold``; see :func:`train.evaluation.evaluate_synthetic`) when there is one, so a
    freshly trained model predicts with it by default; ``keysynth calibrate`` on real photos
    replaces it."""
    t = metrics.get("val_threshold")
    if t is None or t != t:
        return model_spec
    return {**model_spec, "threshold": float(t),
            "calibration": {"set": "synthetic validation", "mean_iou": float(metrics.get("val_iou_at_threshold", "nan")),
                            "hashes": []}}


class Checkpointer:
    """Writes ``best.pt`` (highest real IoU, else synthetic val IoU; the later one on ties), rotating ``ckpt-NNNNNNN.pt``
    (every ``checkpoint_every`` steps, ``keep_last_n`` kept) and ``last.pt`` into ``ckpt_dir``.

    Under DDP every rank calls :meth:`save` (the stream and RNG states are gathered); rank 0 writes.
    """

    def __init__(self, ckpt_dir: Path, cfg, model, optimizer, scheduler, model_spec: dict, *, rank: int = 0,
                 world: int = 1, device: torch.device = torch.device("cpu"), best: float = -1.0,
                 synth_config: dict | None = None):
        self.dir, self.cfg, self.model, self.optimizer, self.scheduler = Path(ckpt_dir), cfg, model, optimizer, scheduler
        self.model_spec, self.rank, self.world, self.device = model_spec, rank, world, device
        self.best, self.synth_config = best, synth_config

    def _gathered_states(self, stream) -> tuple[list, list, list]:
        states, torch_rng = [stream.state_dict()], [torch.get_rng_state()]
        cuda_rng = [torch.cuda.get_rng_state(self.device)] if self.device.type == "cuda" else []
        if self.world > 1:  # every rank's stream position / rng goes into rank 0's checkpoint
            gathered = [None] * self.world
            dist.all_gather_object(gathered, (states[0], torch_rng[0], cuda_rng[0] if cuda_rng else None))
            states, torch_rng = [g[0] for g in gathered], [g[1] for g in gathered]
            cuda_rng = [g[2] for g in gathered] if cuda_rng else []
        return states, torch_rng, cuda_rng

    def save(self, step: int, metrics: dict[str, float], stream) -> Path | None:
        """Save the run at ``step``; returns the path of ``last.pt`` (``None`` on ranks other than 0)."""
        states, torch_rng, cuda_rng = self._gathered_states(stream)
        if self.rank != 0:
            return None
        cfg = self.cfg
        state: dict[str, Any] = {
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "step": step, "config": cfg.to_dict(),
            "model_spec": with_synthetic_threshold(self.model_spec, metrics), "rng": {"torch": torch_rng, "cuda": cuda_rng}, "stream": states,
            "best": self.best, "metrics": metrics, "synth_config": self.synth_config}
        score = metrics.get("real_iou", float("nan"))
        if math.isnan(score):  # no real set (or it failed): fall back to the synthetic val IoU
            score = metrics.get("val_iou", float("nan"))
        if not math.isnan(score) and score >= self.best:  # ties (e.g. all 0 early on): the later model
            self.best = state["best"] = float(score)
            save_checkpoint(self.dir / "best.pt", state)
        if cfg.checkpoint_every and step % cfg.checkpoint_every == 0:
            save_checkpoint(self.dir / f"ckpt-{step:07d}.pt", state)
            for old in sorted(self.dir.glob("ckpt-*.pt"))[:-cfg.keep_last_n or None]:
                old.unlink()
        save_checkpoint(self.dir / "last.pt", state)
        return self.dir / "last.pt"
