"""Where a training run executes and what it optimises: device and process group, seeds,
mixed precision, the AdamW optimiser with its warm-up + cosine schedule, and the data stream.

Distributed: under ``torchrun`` each rank builds its own stream with ``run_seed`` derived from
``(seed, rank)`` (NCCL on CUDA, gloo on CPU); rank 0 evaluates, logs and saves.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from pathlib import Path

import torch
import torch.distributed as dist

from keysynth.common import derive_seed
from train.config import TrainConfig
from train.run_setup import cpu_threads
from train.stream import make_stream

__all__ = ["Runtime", "setup_runtime", "derive_seed", "lr_factor", "build_optimizer", "make_producer", "build_stream"]

log = logging.getLogger("keysynth.train")


@dataclasses.dataclass
class Runtime:
    """One rank of a run: ``device``, ``rank`` / ``world``, whether it created the process group
    (``own_group``), and the autocast dtype (``None`` = float32)."""

    device: torch.device
    rank: int = 0
    world: int = 1
    own_group: bool = False
    amp_dtype: torch.dtype | None = None

    @property
    def is_main(self) -> bool:
        """Rank 0: the rank that evaluates, logs and saves."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """More than one rank (DDP)."""
        return self.world > 1

    def close(self) -> None:
        """Destroy the process group if this run created it."""
        if self.own_group:
            dist.destroy_process_group()


def setup_runtime(cfg: TrainConfig) -> Runtime:
    """Device (``cfg.device``; ``LOCAL_RANK`` under torchrun), process group, torch seed of this
    rank, mixed precision and the CPU thread budget (cores minus generator workers)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    if cfg.device == "auto":
        device = torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(f"cuda:{local_rank}" if cfg.device == "cuda" and world > 1 else cfg.device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    own_group = world > 1 and not dist.is_initialized()
    if own_group:
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    torch.manual_seed(derive_seed(cfg.seed, "torch", rank) % 2**63)
    amp_dtype = None
    if cfg.amp == "bf16" or (cfg.amp == "auto" and device.type == "cuda" and torch.cuda.is_bf16_supported()):
        amp_dtype = torch.bfloat16
    if device.type == "cpu":
        torch.set_num_threads(cpu_threads(cfg.threads, cfg.num_workers))
        if rank == 0:
            log.info("CPU training with %d torch thread(s) beside %d generator worker(s)%s", torch.get_num_threads(),
                     cfg.num_workers, "" if cfg.threads else " (cores minus workers; set --threads to override)")
    return Runtime(device=device, rank=rank, world=world, own_group=own_group, amp_dtype=amp_dtype)


def lr_factor(step: int, warmup: int, total: int, min_ratio: float) -> float:
    """Linear warm-up to 1 over ``warmup`` steps, then cosine decay to ``min_ratio`` at ``total``
    (Loshchilov & Hutter, SGDR, ICLR 2017, without restarts)."""
    if step < warmup:
        return (step + 1) / warmup
    t = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * t))


def build_optimizer(model: torch.nn.Module, cfg: TrainConfig, device: torch.device):
    """AdamW (no weight decay on norms and biases) and its :func:`lr_factor` schedule."""
    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr,
                                  **({"fused": True} if device.type == "cuda" else {"foreach": True}))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, cfg.warmup, cfg.steps, cfg.min_lr_ratio))
    return optimizer, scheduler


def make_producer(cfg: TrainConfig):
    """``synth.SampleRenderer`` from ``cfg.synth_config`` (YAML) at ``cfg.image_size`` with
    ``backgrounds.make_backgrounds(cfg.backgrounds or "default")``."""
    import synth
    from backgrounds import make_backgrounds

    scfg = synth.SynthConfig.from_yaml(cfg.synth_config) if cfg.synth_config else synth.SynthConfig.default()
    if scfg.size != cfg.image_size:
        scfg = dataclasses.replace(scfg, size=cfg.image_size)
    if cfg.key_source:
        scfg = dataclasses.replace(scfg, key_source=cfg.key_source)
    return synth.SampleRenderer(scfg, backgrounds=make_backgrounds(cfg.backgrounds or "default"))


def build_stream(cfg: TrainConfig, rt: Runtime, producer, step: int, stream_state: dict | None, out: Path):
    """The training stream of this rank and what evaluation needs from it.

    ``data_dir`` set: a :class:`train.filestream.FileStream` over that folder. Otherwise the live
    stream of ``producer`` (default :func:`make_producer`): ordered (batch ``t`` = samples
    ``t*B ... t*B+B-1``) with ``deterministic`` or ``num_workers == 0``, else asynchronous from
    the resumed position. The resolved generator config is written to ``out/synth_config.yaml``.

    Returns:
        ``(stream, val_producer or None, synth_config dict or None)``.
    """
    with_dist = cfg.boundary_loss == "surface"
    if cfg.data_dir:
        from train.filestream import FileStream

        stream = FileStream(cfg.data_dir, batch_size=cfg.batch_size, image_size=cfg.image_size,
                            max_reuse=cfg.max_reuse, with_dist=with_dist, ignore_index=cfg.ignore_index,
                            seed=derive_seed(cfg.seed, "files", rt.rank, step))
        return stream, None, None
    producer = producer if producer is not None else make_producer(cfg)
    synth_cfg, synth_dict = getattr(producer, "config", None), None
    if hasattr(synth_cfg, "to_dict"):  # the resolved generator config, next to the run + in checkpoints
        synth_dict = synth_cfg.to_dict()
        if rt.is_main:
            synth_cfg.to_yaml(out / "synth_config.yaml")
    ordered = cfg.deterministic or cfg.num_workers == 0
    start = step * cfg.batch_size if ordered else int(stream_state["position"]) if stream_state else 0
    stream = make_stream(producer, batch_size=cfg.batch_size, num_workers=cfg.num_workers,
                         buffer_size=cfg.buffer_size, run_seed=derive_seed(cfg.seed, "train", rt.rank), start=start,
                         max_reuse=cfg.max_reuse, refresh_fraction=cfg.refresh_fraction,
                         refresh_every=cfg.refresh_every, deterministic=ordered, with_dist=with_dist,
                         ignore_index=cfg.ignore_index)
    if stream_state:
        stream.load_state_dict(stream_state)
    return stream, producer, synth_dict
