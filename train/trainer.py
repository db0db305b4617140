"""The training loop: ``train(config) -> summary``; read it top to bottom.

set-up (:func:`train.runtime.setup_runtime`: device, DDP, seeds, threads) -> model
(``real_eval.model_io.build_model``) -> AdamW + warm-up/cosine (:func:`train.runtime.build_optimizer`)
-> resume (:func:`train.checkpointing.load_resume`) -> data stream (:func:`train.runtime.build_stream`)
-> loop {batch -> forward (bf16 autocast) -> loss -> backward -> step -> log (:class:`MetricLogger`)
-> eval -> checkpoint (:class:`Checkpointer`)}.

Reproducibility: with ``deterministic=True`` (or ``num_workers=0``) batch ``t`` is samples
``t*B ... t*B+B-1`` of the rank's run seed, so ``--resume`` continues exactly like an uninterrupted
run (same batches, same losses on CPU). The default asynchronous stream is reproducible in sample
content, not in batch order. Checkpoint contract: :mod:`train.checkpointing`.
"""

from __future__ import annotations

import logging
import signal
from pathlib import Path
from typing import Any, Callable

import torch

from real_eval.model_io import build_model, default_model_spec
from train.checkpointing import Checkpointer, load_resume, resolve_resume, save_checkpoint
from train.config import TrainConfig
from train.evaluation import evaluate_real, evaluate_synthetic, load_real_samples, prediction_grid, render_val_set
from train.losses import boundary_weight_at, segmentation_loss
from train.metric_log import CSV_FIELDS, MetricLogger
from train.run_setup import (check_cutout_overlap, init_weights, make_real_crops, mix_real_crops, prepare_run_dir,
                             sigterm_as_interrupt)
from train.runtime import Runtime, build_optimizer, build_stream, derive_seed, lr_factor, make_producer, setup_runtime

__all__ = ["train", "derive_seed", "make_producer", "lr_factor", "save_checkpoint", "resolve_resume", "CSV_FIELDS"]

log = logging.getLogger("keysynth.train")


def _build_model(cfg: TrainConfig, device: torch.device) -> tuple[torch.nn.Module, dict]:
    spec = default_model_spec(arch=cfg.arch, encoder_name=cfg.encoder_name, encoder_weights=cfg.encoder_weights,
                              image_size=cfg.image_size, decoder_width=cfg.decoder_width)
    model = build_model(spec).to(device)
    if cfg.init and cfg.resume is None:
        init_weights(model, cfg.init, device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model, spec


def _wrap(model: torch.nn.Module, cfg: TrainConfig, rt: Runtime) -> torch.nn.Module:
    """``torch.compile`` and DDP around the model (the unwrapped one is saved and evaluated)."""
    if cfg.compile:
        model = torch.compile(model)
    if rt.distributed:
        model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[rt.device.index] if rt.device.type == "cuda" else None)
    return model


def _normaliser(spec: dict, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The model's mean and std (1, 3, 1, 1) on ``device``, in uint8 units (x 255)."""
    mean = torch.tensor(spec["mean"], device=device).view(1, 3, 1, 1) * 255.0
    std = torch.tensor(spec["std"], device=device).view(1, 3, 1, 1) * 255.0
    return mean, std


def _to_device(batch, norm: tuple[torch.Tensor, torch.Tensor], cfg: TrainConfig, device: torch.device):
    """Batch -> image normalised by ``norm`` = (mean, std), float (N, 3, S, S); mask (N, S, S);
    signed distances or None."""
    pin = device.type == "cuda"
    img, tgt = torch.from_numpy(batch.image), torch.from_numpy(batch.mask)
    dmap = torch.from_numpy(batch.dist) if batch.dist is not None else None
    if pin:
        img, tgt = img.pin_memory(), tgt.pin_memory()
        dmap = dmap.pin_memory() if dmap is not None else None
    mean, std = norm
    img = img.to(device, non_blocking=True).permute(0, 3, 1, 2).float()
    fmt = torch.channels_last if cfg.channels_last else torch.contiguous_format
    x = ((img - mean) / std).contiguous(memory_format=fmt)
    return x, tgt.to(device, non_blocking=True), dmap.to(device, non_blocking=True) if dmap is not None else None


def _train_step(model, optimizer, scheduler, batch, norm, cfg: TrainConfig, rt: Runtime, bw: float) -> dict:
    """One optimiser step on ``batch`` (Dice + BCE + boundary loss at weight ``bw``); returns the loss parts."""
    x, tgt, dmap = _to_device(batch, norm, cfg, rt.device)
    with torch.autocast(device_type=rt.device.type, dtype=rt.amp_dtype or torch.bfloat16, enabled=rt.amp_dtype is not None):
        logits = model(x)
    loss, parts = segmentation_loss(
        logits.float(), tgt, dmap, boundary_loss=cfg.boundary_loss, boundary_weight=bw, dice_weight=cfg.dice_weight,
        bce_weight=cfg.bce_weight, edge_thickness=cfg.edge_thickness, edge_weight=cfg.edge_weight,
        ignore_index=cfg.ignore_index, lovasz_weight=cfg.lovasz_weight)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if cfg.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
    optimizer.step()
    scheduler.step()
    return parts


def _evaluate(model, spec: dict, val_set, real_set, rt: Runtime, logger: MetricLogger, step: int) -> dict[str, float]:
    """Synthetic validation and real-photo metrics (``val_*``, ``real_*``) of the unwrapped model."""
    res = {}
    if val_set:
        res.update({f"val_{k}": v for k, v in
                    evaluate_synthetic(model, spec, val_set, rt.device, autocast_dtype=rt.amp_dtype).items()})
    if real_set:
        res.update({f"real_{k}": v for k, v in evaluate_real(model, spec, real_set, rt.device).items()})
        if logger.writer is not None:
            logger.image("real/photo|prob|gt", prediction_grid(model, spec, real_set, rt.device), step)
    return res


def _data_sets(cfg: TrainConfig, rt, val_producer, synth_dict: dict | None) -> tuple[list, list, Any]:
    """The main process's synthetic validation samples, real evaluation photos (refused when they
    are also cut-out sources, unless ``allow_overlap``) and real training crops (or None)."""
    val_set = render_val_set(val_producer, cfg.val_size, derive_seed(cfg.seed, "val")) \
        if rt.is_main and val_producer is not None else []
    real_set = load_real_samples(cfg.real_dir) if rt.is_main and cfg.real_dir else []
    if real_set and synth_dict:
        check_cutout_overlap(real_set, synth_dict.get("key_source", ""), allow=cfg.allow_overlap)
    return val_set, real_set, make_real_crops(cfg, real_set)


def train(config: TrainConfig, *, producer=None, should_stop: Callable[[int], bool] | None = None) -> dict[str, Any]:
    """Train a segmentation model on the live synthetic stream; returns a summary dict.

    Args:
        config: a :class:`TrainConfig` (validated on entry).
        producer: object with ``size`` and ``render(index, run_seed)``; default
            :func:`make_producer(config)` (the synth renderer). Must be picklable for workers.
        should_stop: ``f(completed_steps) -> bool`` checked after each step; ``True`` saves
            last.pt and returns early (used by tests to simulate an interruption, and by soak runs).

    Returns:
        ``{"step", "out", "last", "best", "best_score", "metrics", "history", "stopped_early", "stream",
        "model_spec"}``: history = logged rows (dicts of CSV_FIELDS), metrics = last eval metrics.

    Raises:
        ValueError: bad config values (see ``TrainConfig.validate``).
        FileNotFoundError: missing resume checkpoint, real_dir or data_dir.
    """
    cfg = config.validate()
    rt = setup_runtime(cfg)
    out, resume_path = Path(cfg.out), resolve_resume(cfg.resume, cfg.out)
    if rt.is_main:
        prepare_run_dir(out / "checkpoints", fresh=resume_path is None, overwrite=cfg.overwrite)
        cfg.to_yaml(out / "config.yaml")
    raw_model, spec = _build_model(cfg, rt.device)
    optimizer, scheduler = build_optimizer(raw_model, cfg, rt.device)
    step, best, stream_state = 0, -1.0, None
    if resume_path is not None:
        step, best, stream_state = load_resume(resume_path, raw_model, optimizer, scheduler, rt.rank, rt.device)
        if rt.is_main:
            log.info("resumed from %s at step %d", resume_path, step)
    model = _wrap(raw_model, cfg, rt)
    stream, val_producer, synth_dict = build_stream(cfg, rt, producer, step, stream_state, out)
    ckpt = Checkpointer(out / "checkpoints", cfg, raw_model, optimizer, scheduler, spec, rank=rt.rank,
                        world=rt.world, device=rt.device, best=best, synth_config=synth_dict)
    logger, metrics, stopped_early = None, {}, False
    old_sigterm = sigterm_as_interrupt()
    try:
        val_set, real_set, real_crops = _data_sets(cfg, rt, val_producer, synth_dict)
        logger = MetricLogger(out, total_steps=cfg.steps, step=step, active=rt.is_main, tensorboard=cfg.tensorboard,
                              resume_step=step if resume_path is not None else None, progress=cfg.progress,
                              max_reuse=cfg.max_reuse)
        norm = _normaliser(spec, rt.device)
        stream.stats()  # start the rate window
        model.train()
        while step < cfg.steps:
            batch = stream.next_batch()
            if real_crops is not None:
                mix_real_crops(batch, real_crops, cfg, step)
            logger.observe(batch)
            bw = boundary_weight_at(step, cfg.steps, cfg.boundary_weight, cfg.boundary_ramp)
            parts = _train_step(model, optimizer, scheduler, batch, norm, cfg, rt, bw)
            step += 1
            logger.bar.update(1)
            do_eval = (cfg.eval_every and step % cfg.eval_every == 0) or step == cfg.steps
            stop = should_stop is not None and should_stop(step)
            if do_eval and rt.is_main:
                metrics = _evaluate(raw_model, spec, val_set, real_set, rt, logger, step)
            if step % cfg.log_every == 0 or do_eval or step == cfg.steps:
                logger.row(step, parts, {"boundary_w": bw, "lr": scheduler.get_last_lr()[0], "batch_id": batch.batch_id},
                           stream.stats(), metrics if do_eval else None)
            if (cfg.checkpoint_every and step % cfg.checkpoint_every == 0) or step == cfg.steps or stop:
                ckpt.save(step, metrics, stream)
            if stop:
                stopped_early = True
                break
        final_stream_stats = stream.stats()
    except KeyboardInterrupt:
        if rt.is_main and not rt.distributed and step > 0:
            ckpt.save(step, metrics, stream)  # so that `--resume` continues from here
        raise
    finally:
        if old_sigterm is not None:
            signal.signal(signal.SIGTERM, old_sigterm)
        stream.close()
        if logger is not None:
            logger.close()
        rt.close()
    ckpt_dir = out / "checkpoints"
    return {"step": step, "out": str(out), "last": str(ckpt_dir / "last.pt"),
            "best": str(ckpt_dir / "best.pt") if (ckpt_dir / "best.pt").exists() else None,
            "best_score": ckpt.best, "metrics": metrics, "history": logger.history, "stopped_early": stopped_early,
            "stream": final_stream_stats, "model_spec": spec}
