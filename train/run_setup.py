"""Run set-up pieces of the training loop: CPU thread budget, the run folder, initial weights,
real crops mixed into batches, overlap checks between training and evaluation photos, and
SIGTERM handling. Each is a plain function the loop in :mod:`train.trainer` calls once."""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path

from train.config import TrainConfig

__all__ = ["cpu_threads", "prepare_run_dir", "init_weights", "check_cutout_overlap", "make_real_crops",
           "mix_real_crops", "sigterm_as_interrupt"]

log = logging.getLogger("keysynth.train")


def cpu_threads(threads: int, num_workers: int) -> int:
    """Torch intra-op threads for a CPU run: ``threads`` if > 0, else CPU cores (the ones this
    process may use) minus generator workers, at least 1."""
    if threads > 0:
        return int(threads)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores - int(num_workers))


def prepare_run_dir(ckpt_dir: Path, *, fresh: bool, overwrite: bool) -> None:
    """Create ``ckpt_dir``; remove temp checkpoints a killed run left; for a fresh run refuse an
    existing one (``FileExistsError`` naming the fix) unless ``overwrite``, which deletes its checkpoints."""
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    for tmp in ckpt_dir.glob(".tmp-*"):
        tmp.unlink(missing_ok=True)
    old = sorted(ckpt_dir.glob("*.pt"))
    if fresh and old:
        if not overwrite:
            raise FileExistsError(f"{ckpt_dir.parent} already holds a training run ({old[0].name}); continue it "
                                  f"with --resume, pick another --out, or pass --overwrite to start afresh")
        for p in old:
            p.unlink()


def init_weights(model, path: str, device) -> None:
    """Copy the weights of a checkpoint or model folder ``path`` (read safely, see
    ``real_eval.model_io.load_checkpoint``) into ``model``.

    Raises:
        FileNotFoundError: no such file. ValueError: unreadable, or another architecture.
    """
    from real_eval.model_io import load_checkpoint

    source, _ = load_checkpoint(path, str(device))
    try:
        model.load_state_dict(source.state_dict())
    except RuntimeError as exc:
        raise ValueError(f"--init {path}: its weights do not fit this model ({str(exc).splitlines()[0]}); "
                         f"use the same --arch, --encoder-name, --decoder-width as that model") from None


def check_cutout_overlap(real_set, key_source: str, *, allow: bool = False) -> None:
    """Refuse evaluation photos that a cut-out folder of ``key_source`` was cut from (the
    ``source_hash`` column of its ``cutouts.jsonl``, written by ``keysynth cutouts``).

    Raises:
        real_eval.calibrate.OverlapError: a photo is shared and ``allow`` is False.
    """
    from real_eval.calibrate import check_disjoint
    from synth.cutouts import read_cutout_index
    from synth.keysources import parse_key_sources

    for name, _ in parse_key_sources(key_source or "procedural"):
        if not Path(name).is_dir():
            continue
        hashes = {str(r["source_hash"]): str(r.get("source", r.get("file", "?")))
                  for r in read_cutout_index(name) if r.get("source_hash")}
        if not hashes:
            continue
        shared = check_disjoint(real_set, hashes, f"the cut-out sources of {name}", allow=allow)
        if shared:
            log.warning("scoring %d real photo(s) that cut-outs were taken from: %s", len(shared), ", ".join(shared))


def make_real_crops(cfg: TrainConfig, real_set):
    """:class:`train.realcrops.RealCrops` of ``cfg.real_train`` (``None`` without it); refuses
    photos shared with the evaluation set ``real_set`` unless ``cfg.allow_overlap``."""
    if not cfg.real_train or cfg.real_fraction <= 0:
        return None
    from real_eval.calibrate import check_disjoint, content_hashes
    from real_eval.dataset import load_real_set
    from train.realcrops import RealCrops
    from train.runtime import derive_seed as _derive_seed

    photos = load_real_set(cfg.real_train)
    if real_set:
        check_disjoint(real_set, content_hashes(photos), f"--real-train {cfg.real_train}", allow=cfg.allow_overlap)
    return RealCrops(photos, cfg.image_size, seed=_derive_seed(cfg.seed, "real-crops"))


def mix_real_crops(batch, crops, cfg: TrainConfig, step: int) -> None:
    """Replace the first :func:`train.realcrops.crops_per_batch` samples of ``batch`` by real crops."""
    from train.realcrops import crops_per_batch

    for j in range(min(len(batch.image), crops_per_batch(len(batch.image), cfg.real_fraction, step))):
        batch.image[j], batch.mask[j] = crops.crop(step, j)
        if batch.dist is not None:
            from train.distmaps import signed_distance_map

            batch.dist[j] = signed_distance_map(batch.mask[j], cfg.ignore_index)


def sigterm_as_interrupt():
    """In the main thread, make SIGTERM raise ``KeyboardInterrupt`` (so a terminated run saves a
    checkpoint like Ctrl-C does); returns the previous handler, or ``None`` off the main thread."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    return signal.signal(signal.SIGTERM, handler)
