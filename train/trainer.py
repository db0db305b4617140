"""The training loop: ``train(config) -> summary``; read it top to bottom.

setup (DDP, device, seeds) -> model (``real_eval.model_io.build_model``) -> AdamW + warm-up/cosine
-> live data stream -> loop {batch -> forward (bf16 autocast) -> loss -> backward -> step -> log ->
eval -> checkpoint} -> final eval + last.pt.

Distributed: under ``torchrun`` each rank builds its own stream with ``run_seed`` derived from
``(seed, rank)`` (NCCL on CUDA, gloo on CPU); rank 0 evaluates, logs and saves.

Reproducibility: with ``deterministic=True`` (or ``num_workers=0``) batch ``t`` is samples
``t*B ... t*B+B-1`` of the rank's run seed, so ``--resume`` continues exactly like an uninterrupted
run (same batches, same losses on CPU). The default asynchronous stream is reproducible in sample
content, not in batch order.

Checkpoint contract (docs/DESIGN.md): ``model``, ``optimizer``, ``scheduler``, ``step``, ``config``,
``model_spec``, plus ``rng`` (torch / cuda states), ``stream`` (per-rank position and draw-rng
state), ``best`` (best score so far), ``metrics``.
"""

from __future__ import annotations

import csv
import logging
import math
import os
import signal
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.distributed as dist

from real_eval.model_io import build_model, default_model_spec
from train.config import TrainConfig
from train.evaluation import evaluate_real, evaluate_synthetic, load_real_samples, prediction_grid, render_val_set
from train.losses import boundary_weight_at, segmentation_loss
from train.run_setup import (check_cutout_overlap, cpu_threads, init_weights, make_real_crops, mix_real_crops,
                             prepare_run_dir, sigterm_as_interrupt)
from train.stream import make_stream

__all__ = ["train", "derive_seed", "make_producer", "lr_factor", "save_checkpoint", "resolve_resume"]

log = logging.getLogger("keysynth.train")

CSV_FIELDS = ["step", "loss", "dice", "bce", "boundary", "boundary_w", "lr", "img_per_s", "gen_per_s",
              "consumed_per_s", "data_wait_pct", "mean_reuse", "stalled_batches", "batch_id",
              "val_iou", "val_dice", "val_boundary_f1", "real_iou", "real_dice", "real_boundary_f1"]


def derive_seed(seed: int, *tags: int | str) -> int:
    """63-bit seed from ``(seed, *tags)`` via ``np.random.SeedSequence`` (strings hashed with crc32)."""
    import zlib

    words = [int(seed)] + [zlib.crc32(t.encode()) if isinstance(t, str) else int(t) for t in tags]
    hi, lo = np.random.SeedSequence(words).generate_state(2, dtype=np.uint32)
    return ((int(hi) & 0x7FFFFFFF) << 32) | int(lo)


def make_producer(cfg: TrainConfig):
    """``synth.SampleRenderer`` from ``cfg.synth_config`` (YAML) at ``cfg.image_size`` with
    ``backgrounds.make_backgrounds(cfg.backgrounds or "default")``."""
    import dataclasses

    import synth
    from backgrounds import make_backgrounds

    scfg = synth.SynthConfig.from_yaml(cfg.synth_config) if cfg.synth_config else synth.SynthConfig.default()
    if scfg.size != cfg.image_size:
        scfg = dataclasses.replace(scfg, size=cfg.image_size)
    if cfg.key_source:
        scfg = dataclasses.replace(scfg, key_source=cfg.key_source)
    return synth.SampleRenderer(scfg, backgrounds=make_backgrounds(cfg.backgrounds or "default"))


def lr_factor(step: int, warmup: int, total: int, min_ratio: float) -> float:
    """Linear warm-up to 1 over ``warmup`` steps, then cosine decay to ``min_ratio`` at ``total``
    (Loshchilov & Hutter, SGDR, ICLR 2017, without restarts)."""
    if step < warmup:
        return (step + 1) / warmup
    t = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * t))


def save_checkpoint(path: Path, state: dict) -> None:
    """``torch.save`` to a temp name in the same folder, then ``os.replace`` (atomic)."""
    tmp = path.with_name(f".tmp-{path.name}-{os.getpid()}")
    torch.save(state, tmp)
    os.replace(tmp, path)


def resolve_resume(resume: str | None, out: str) -> Path | None:
    """``None`` | ``"auto"`` (OUT/checkpoints/last.pt) | run dir | checkpoint file -> checkpoint path."""
    if not resume:
        return None
    p = Path(out) / "checkpoints" / "last.pt" if resume == "auto" else Path(resume)
    if p.is_dir():
        p = p / "checkpoints" / "last.pt" if (p / "checkpoints").is_dir() else p / "last.pt"
    if not p.is_file():
        raise FileNotFoundError(f"resume checkpoint {p} does not exist; pass --resume RUN_DIR or a .pt file")
    return p


def _csv_start(path: Path, resume_step: int | None) -> None:
    """Create log.csv with a header, or on resume drop rows after the checkpoint's step."""
    rows = []
    if resume_step is not None and path.is_file():
        with open(path, newline="") as fh:
            rows = [r for r in csv.DictReader(fh) if int(r["step"]) <= resume_step]
    tmp = path.with_name(".tmp-" + path.name)
    with open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, CSV_FIELDS)
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, path)


def train(config: TrainConfig, *, producer=None, should_stop: Callable[[int], bool] | None = None) -> dict[str, Any]:
    """Train a segmentation model on the live synthetic stream; returns a summary dict.

    Args:
        config: a validated-on-entry :class:`TrainConfig`.
        producer: object with ``size`` and ``render(index, run_seed)``; default
            :func:`make_producer(config)` (the synth renderer). Must be picklable for workers.
        should_stop: ``f(completed_steps) -> bool`` checked after each step; ``True`` saves
            last.pt and returns early (used by tests to simulate an interruption, and by soak runs).

    Returns:
        ``{"step", "out", "last", "best", "best_score", "metrics", "history", "stream"}``:
        history = list of logged rows (dicts of CSV_FIELDS), metrics = final eval metrics.

    Raises:
        ValueError: bad config values (see ``TrainConfig.validate``).
        FileNotFoundError: missing resume checkpoint, real_dir or data_dir.
    """
    cfg = config.validate()

    # ---- distributed / device / seeds ----------------------------------------------------------
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    distributed = world > 1
    if cfg.device == "auto":
        device = torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(f"cuda:{local_rank}" if cfg.device == "cuda" and distributed else cfg.device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    own_group = distributed and not dist.is_initialized()
    if own_group:
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    is_main = rank == 0
    torch.manual_seed(derive_seed(cfg.seed, "torch", rank) % 2**63)
    run_seed = derive_seed(cfg.seed, "train", rank)  # each rank its own sample stream
    val_seed = derive_seed(cfg.seed, "val")
    amp_dtype = None
    if cfg.amp == "bf16" or (cfg.amp == "auto" and device.type == "cuda" and torch.cuda.is_bf16_supported()):
        amp_dtype = torch.bfloat16

    if device.type == "cpu":
        torch.set_num_threads(cpu_threads(cfg.threads, cfg.num_workers))
        if rank == 0:
            log.info("CPU training with %d torch thread(s) beside %d generator worker(s)%s", torch.get_num_threads(),
                     cfg.num_workers, "" if cfg.threads else " (cores minus workers; set --threads to override)")
    out = Path(cfg.out)
    ckpt_dir = out / "checkpoints"
    resume_path = resolve_resume(cfg.resume, cfg.out)
    if is_main:
        prepare_run_dir(ckpt_dir, fresh=resume_path is None, overwrite=cfg.overwrite)
        cfg.to_yaml(out / "config.yaml")

    # ---- model, optimiser, schedule ------------------------------------------------------------
    model_spec = default_model_spec(arch=cfg.arch, encoder_name=cfg.encoder_name, encoder_weights=cfg.encoder_weights,
                                    image_size=cfg.image_size, decoder_width=cfg.decoder_width)
    model = build_model(model_spec).to(device)
    if cfg.init and cfg.resume is None:
        init_weights(model, cfg.init, device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    decay = [p for p in model.parameters() if p.ndim >= 2]  # no weight decay on norms / biases
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr,
                                  **({"fused": True} if device.type == "cuda" else {"foreach": True}))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, cfg.warmup, cfg.steps, cfg.min_lr_ratio))

    # ---- resume ----------------------------------------------------------------------------------
    step, best_score, stream_state = 0, -1.0, None
    if resume_path is not None:
        from real_eval.model_io import read_checkpoint

        ckpt = read_checkpoint(resume_path, device)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        step, best_score = int(ckpt["step"]), float(ckpt.get("best", -1.0))
        rng = ckpt.get("rng", {})
        if "torch" in rng and rank < len(rng["torch"]):
            torch.set_rng_state(rng["torch"][rank])
        if device.type == "cuda" and rng.get("cuda") and rank < len(rng["cuda"]):
            torch.cuda.set_rng_state(rng["cuda"][rank], device)
        streams = ckpt.get("stream") or []
        stream_state = streams[rank] if rank < len(streams) else None
        if is_main:
            log.info("resumed from %s at step %d", resume_path, step)
    raw_model = model
    if cfg.compile:
        model = torch.compile(model)
    if distributed:
        model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    # ---- data ------------------------------------------------------------------------------------
    with_dist = cfg.boundary_loss == "surface"
    synth_config_dict = None  # resolved SynthConfig of the live stream (None for a file stream)
    if cfg.data_dir:
        from train.filestream import FileStream

        stream = FileStream(cfg.data_dir, batch_size=cfg.batch_size, image_size=cfg.image_size,
                            max_reuse=cfg.max_reuse, with_dist=with_dist, ignore_index=cfg.ignore_index,
                            seed=derive_seed(cfg.seed, "files", rank, step))
        val_producer = None
    else:
        producer = producer if producer is not None else make_producer(cfg)
        val_producer = producer
        synth_cfg = getattr(producer, "config", None)
        if hasattr(synth_cfg, "to_dict"):  # the resolved generator config, next to the run + in checkpoints
            synth_config_dict = synth_cfg.to_dict()
            if is_main:
                synth_cfg.to_yaml(out / "synth_config.yaml")
        ordered = cfg.deterministic or cfg.num_workers == 0
        if ordered:
            start = step * cfg.batch_size  # batch t = samples t*B .. t*B+B-1
        else:
            start = int(stream_state["position"]) if stream_state else 0
        stream = make_stream(producer, batch_size=cfg.batch_size, num_workers=cfg.num_workers,
                             buffer_size=cfg.buffer_size, run_seed=run_seed, start=start, max_reuse=cfg.max_reuse,
                             refresh_fraction=cfg.refresh_fraction, refresh_every=cfg.refresh_every,
                             deterministic=ordered, with_dist=with_dist, ignore_index=cfg.ignore_index)
        if stream_state and stream_state.get("rng") and hasattr(stream, "_rng"):
            stream._rng.bit_generator.state = stream_state["rng"]
    mean = torch.tensor(model_spec["mean"], device=device).view(1, 3, 1, 1) * 255.0
    std = torch.tensor(model_spec["std"], device=device).view(1, 3, 1, 1) * 255.0

    writer = None
    history: list[dict] = []
    metrics: dict[str, float] = {}
    old_sigterm = sigterm_as_interrupt()
    try:
        # ---- evaluation sets (rank 0) -------------------------------------------------------------
        val_set = render_val_set(val_producer, cfg.val_size, val_seed) if is_main and val_producer is not None else []
        real_set = load_real_samples(cfg.real_dir) if is_main and cfg.real_dir else []
        if real_set and synth_config_dict:
            check_cutout_overlap(real_set, synth_config_dict.get("key_source", ""), allow=cfg.allow_overlap)
        real_crops = make_real_crops(cfg, real_set)
        if is_main:
            _csv_start(out / "log.csv", step if resume_path is not None else None)
            if cfg.tensorboard:
                from torch.utils.tensorboard import SummaryWriter

                writer = SummaryWriter(str(out / "tb"), purge_step=step if resume_path is not None else None)

        def evaluate() -> dict[str, float]:
            res = {}
            if val_set:
                res.update({f"val_{k}": v for k, v in
                            evaluate_synthetic(raw_model, model_spec, val_set, device, autocast_dtype=amp_dtype).items()})
            if real_set:
                res.update({f"real_{k}": v for k, v in evaluate_real(raw_model, model_spec, real_set, device).items()})
                if writer is not None:
                    writer.add_image("real/photo|prob|gt", prediction_grid(raw_model, model_spec, real_set, device),
                                     step, dataformats="HWC")
            return res

        def checkpoint(name_step: int, metrics_now: dict) -> Path | None:
            nonlocal best_score
            states = [stream.state_dict()]
            torch_rng = [torch.get_rng_state()]
            cuda_rng = [torch.cuda.get_rng_state(device)] if device.type == "cuda" else []
            if distributed:  # every rank's stream position / rng goes into rank 0's checkpoint
                gathered = [None] * world
                dist.all_gather_object(gathered, (states[0], torch_rng[0], cuda_rng[0] if cuda_rng else None))
                states = [g[0] for g in gathered]
                torch_rng = [g[1] for g in gathered]
                cuda_rng = [g[2] for g in gathered] if cuda_rng else []
            if not is_main:
                return None
            state = {"model": raw_model.state_dict(), "optimizer": optimizer.state_dict(),
                     "scheduler": scheduler.state_dict(), "step": name_step, "config": cfg.to_dict(),
                     "model_spec": model_spec, "rng": {"torch": torch_rng, "cuda": cuda_rng}, "stream": states,
                     "best": best_score, "metrics": metrics_now, "synth_config": synth_config_dict}
            score = metrics_now.get("real_iou", float("nan"))
            if math.isnan(score):  # no real set (or it failed): fall back to the synthetic val IoU
                score = metrics_now.get("val_iou", float("nan"))
            if not math.isnan(score) and score > best_score:
                best_score = state["best"] = float(score)
                save_checkpoint(ckpt_dir / "best.pt", state)
            if cfg.checkpoint_every and name_step % cfg.checkpoint_every == 0:
                save_checkpoint(ckpt_dir / f"ckpt-{name_step:07d}.pt", state)
                for old in sorted(ckpt_dir.glob("ckpt-*.pt"))[:-cfg.keep_last_n or None]:
                    old.unlink()
            save_checkpoint(ckpt_dir / "last.pt", state)
            return ckpt_dir / "last.pt"

        # ---- the loop --------------------------------------------------------------------------------
        from tqdm import tqdm

        bar = tqdm(total=cfg.steps, initial=step, disable=not (is_main and cfg.progress), dynamic_ncols=True,
                   desc="train")
        stream.stats()  # start the rate window
        win_t0, win_wait, win_imgs, win_stalled = time.perf_counter(), 0.0, 0, 0
        model.train()
        stopped_early = False
        while step < cfg.steps:
            batch = stream.next_batch()
            if real_crops is not None:
                mix_real_crops(batch, real_crops, cfg, step)
            win_wait += batch.wait_s
            win_imgs += len(batch.index)
            win_stalled += int(batch.stalled)
            pin = device.type == "cuda"
            img = torch.from_numpy(batch.image)
            tgt = torch.from_numpy(batch.mask)
            dmap = torch.from_numpy(batch.dist) if batch.dist is not None else None
            if pin:
                img, tgt = img.pin_memory(), tgt.pin_memory()
                dmap = dmap.pin_memory() if dmap is not None else None
            img = img.to(device, non_blocking=True).permute(0, 3, 1, 2).float()
            x = ((img - mean) / std).contiguous(memory_format=torch.channels_last if cfg.channels_last else torch.contiguous_format)
            tgt = tgt.to(device, non_blocking=True)
            dmap = dmap.to(device, non_blocking=True) if dmap is not None else None

            bw = boundary_weight_at(step, cfg.steps, cfg.boundary_weight, cfg.boundary_ramp)
            with torch.autocast(device_type=device.type, dtype=amp_dtype or torch.bfloat16, enabled=amp_dtype is not None):
                logits = model(x)
            loss, parts = segmentation_loss(
                logits.float(), tgt, dmap, boundary_loss=cfg.boundary_loss, boundary_weight=bw,
                dice_weight=cfg.dice_weight, bce_weight=cfg.bce_weight, edge_thickness=cfg.edge_thickness,
                edge_weight=cfg.edge_weight, ignore_index=cfg.ignore_index)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            scheduler.step()
            step += 1
            bar.update(1)

            # ---- log / eval / checkpoint (rank 0 writes) -----------------------------------------
            do_log = step % cfg.log_every == 0 or step == cfg.steps
            do_eval = (cfg.eval_every and step % cfg.eval_every == 0) or step == cfg.steps
            do_ckpt = (cfg.checkpoint_every and step % cfg.checkpoint_every == 0) or step == cfg.steps
            stop = should_stop is not None and should_stop(step)
            if do_eval and is_main:
                metrics = evaluate()
            if do_log or do_eval:
                now = time.perf_counter()
                st = stream.stats()
                row = {k: float(v) for k, v in parts.items()}
                row.update(step=step, boundary_w=bw, lr=scheduler.get_last_lr()[0], batch_id=batch.batch_id,
                           img_per_s=win_imgs / max(now - win_t0, 1e-9), gen_per_s=st["gen_per_s"],
                           consumed_per_s=st["consumed_per_s"], mean_reuse=st["mean_reuse"],
                           data_wait_pct=100.0 * win_wait / max(now - win_t0, 1e-9),
                           stalled_batches=st["stalled_batches"])
                if do_eval:
                    row.update(metrics)
                if win_stalled and is_main:
                    msg = (f"stalled-reuse: {win_stalled} batch(es) since the last log reused samples beyond "
                           f"max_reuse={cfg.max_reuse} (generation {st['gen_per_s']:.1f}/s < consumption "
                           f"{st['consumed_per_s']:.1f}/s); add --num-workers or raise --max-reuse")
                    log.warning(msg)
                    bar.write(msg)
                win_t0, win_wait, win_imgs, win_stalled = now, 0.0, 0, 0
                if is_main:
                    history.append(row)
                    with open(out / "log.csv", "a", newline="") as fh:
                        csv.DictWriter(fh, CSV_FIELDS, extrasaction="ignore").writerow(row)
                    if writer is not None:
                        for k, v in row.items():
                            if k not in ("step", "batch_id") and v == v:
                                writer.add_scalar(f"train/{k}" if not k.startswith(("val_", "real_")) else
                                                  k.replace("_", "/", 1), v, step)
                    bar.set_postfix(loss=f"{row['loss']:.3f}", img_s=f"{row['img_per_s']:.1f}",
                                    gen_s=f"{row['gen_per_s']:.1f}", wait=f"{row['data_wait_pct']:.0f}%")
            if do_ckpt or stop:
                checkpoint(step, metrics)
            if stop:
                stopped_early = True
                break
        bar.close()
        final_stream_stats = stream.stats()
    except KeyboardInterrupt:
        if is_main and not distributed and step > 0:
            checkpoint(step, metrics)  # so that `--resume` continues from here
        raise
    finally:
        if old_sigterm is not None:
            signal.signal(signal.SIGTERM, old_sigterm)
        stream.close()
        if writer is not None:
            writer.close()
        if own_group:
            dist.destroy_process_group()
    summary = {"step": step, "out": str(out), "last": str(ckpt_dir / "last.pt"),
               "best": str(ckpt_dir / "best.pt") if (ckpt_dir / "best.pt").exists() else None,
               "best_score": best_score, "metrics": metrics, "history": history, "stopped_early": stopped_early,
               "stream": final_stream_stats, "model_spec": model_spec}
    return summary
