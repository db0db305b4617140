"""``TrainConfig``: every knob of ``keysynth train`` as one flat, typed dataclass.

Sources of values, later wins: dataclass defaults -> YAML file (``--config file.yaml``) -> CLI flags
(``--lr 1e-3``; one flag per field, generated from the dataclass in :mod:`train.commands`). The
resolved config is written as ``config.yaml`` in the run directory and stored (as a plain dict)
inside every checkpoint.

Default model: smp ``Unet`` with a ``mobilenet_v2`` encoder, decoder width 128, 192 px, batch 12.
Measured training throughput on a 2-core CPU (2 threads, batch 8): mobilenet_v2 at 256 px with
smp's default decoder 4.4 img/s, with decoder width 128 7.1 img/s; at 192 px 10.9 and 16.1 img/s;
resnet18 4.1 img/s, efficientnet-b0 3.9 img/s (256 px, default decoder). On a GPU larger encoders
(``--encoder-name resnet34``) and sizes cost little; ``bench/recipe.py`` compares recipes by
real-photo IoU per CPU-minute.
"""

from __future__ import annotations

import dataclasses
import os
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from keysynth.common import atomic_write_text
from real_eval.model_io import DEFAULT_ENCODER
from synth.schema import check_fields, coerce, knob, knob_help

__all__ = ["TrainConfig", "AMP_MODES", "BOUNDARY_LOSSES", "config_fields"]

AMP_MODES = ("auto", "bf16", "off")
BOUNDARY_LOSSES = ("surface", "edge_bce", "none")
DEVICES_HINT = "'auto', 'cpu', 'cuda' or 'cuda:N'"


@dataclass
class TrainConfig:
    """All training settings (flat, typed). See ``keysynth train --help`` for one line per field."""

    # --- run / output -------------------------------------------------------------------------
    out: str = knob("runs/train", 'run directory: config.yaml, log.csv, checkpoints/, tb/')
    resume: str | None = knob(None, 'checkpoint path, run dir, or "auto" (= OUT/checkpoints/last.pt)')
    overwrite: bool = knob(False, 'start afresh in an OUT that already holds a run (its checkpoints are deleted)')
    seed: int = knob(0, 'run seed; rank r trains on run_seed derived from (seed, r)', low=0)
    device: str = knob("auto", "'auto' (cuda if available), 'cpu', 'cuda', 'cuda:N'")

    # --- model ----------------------------------------------------------------------------------
    image_size: int = knob(192, 'training side length, px (square samples)', unit='px', low=32, high=2048)
    arch: str = knob("Unet", 'smp architecture: Unet, UnetPlusPlus, FPN, DeepLabV3Plus, Linknet, PSPNet, MAnet, PAN')
    encoder_name: str = knob(DEFAULT_ENCODER,
        'smp encoder; the fastest per CPU-minute of those measured (bench/recipe.py)')
    decoder_width: int = knob(128,
        'channels of the coarsest U-Net decoder block, halved per finer block (256 = smp default)', unit='channels',
        low=8, high=4096)
    encoder_weights: str | None = knob(None, 'None (offline) or "imagenet" (downloads)', choices=('imagenet',))

    # --- optimisation ---------------------------------------------------------------------------
    batch_size: int = knob(12, 'per rank', unit='samples', low=1, high=4096)
    steps: int = knob(2000, 'optimizer steps in total', unit='steps', low=1)
    lr: float = knob(2e-3, 'peak learning rate (AdamW)', low=0.0, high=10.0)
    weight_decay: float = knob(1e-4, 'AdamW decoupled weight decay (conv/linear weights only)', low=0.0, high=1.0)
    warmup: int = knob(100, 'linear warm-up steps, then cosine decay to min_lr_ratio * lr', unit='steps', low=0)
    min_lr_ratio: float = knob(0.01,
        'final learning rate of the cosine schedule, as a fraction of lr', low=0.0, high=1.0)
    grad_clip: float = knob(1.0, 'max global grad norm; 0 disables', low=0.0)

    # --- loss -----------------------------------------------------------------------------------
    dice_weight: float = knob(1.0, 'soft Dice', low=0.0)
    bce_weight: float = knob(1.0, 'plain BCE on valid pixels', low=0.0)
    boundary_loss: str = knob("surface",
        '"surface" (Kervadec 2019), "edge_bce", or "none"', choices=BOUNDARY_LOSSES)
    boundary_weight: float = knob(0.01, 'final weight of the boundary term (surface loss is in px units)', low=0.0)
    boundary_ramp: float = knob(0.3,
        'fraction of `steps` over which the boundary weight ramps 0 -> final', unit='x steps', low=0.0, high=1.0)
    lovasz_weight: float = knob(0.0,
        'Lovasz hinge per image (Berman et al. 2018), a surrogate of IoU, added to the loss; 0 = off', low=0.0)
    edge_thickness: int = knob(3, 'px, width of the mask-edge band for edge_bce', unit='px', low=0, high=64)
    edge_weight: float = knob(5.0, 'extra BCE weight on edge pixels (edge_bce)', low=0.0)
    ignore_index: int = knob(255, 'mask value excluded from losses and metrics', low=0, high=255)

    # --- data stream ----------------------------------------------------------------------------
    num_workers: int = knob(1,
        'generator processes per rank; 0 renders in the trainer (deterministic)', unit='processes', low=0, high=256)
    threads: int = knob(0,
        'torch CPU threads; 0 = CPU cores minus num_workers, at least 1 (oversubscription is ~5x slower)',
        unit='threads', low=0, high=1024)
    init: str | None = knob(None,
        'checkpoint or model folder whose weights start this run (fine-tuning); optimizer starts fresh')
    buffer_size: int = knob(256, 'shared-memory ring slots (samples) per rank', unit='samples', low=1)
    max_reuse: int = knob(4, 'a sample is drawn at most this often while fresh ones exist; 0 = unlimited', low=0)
    refresh_fraction: float = knob(0.0, 'refresh mode: replace this fraction of the buffer ...', low=0.0, high=1.0)
    refresh_every: int = knob(0,
        '... every K steps (0 = off: workers replace used samples continuously)', unit='steps', low=0)
    deterministic: bool = knob(False, 'batch at step t = samples t*B..t*B+B-1 (reproducible order, resume)')
    data_dir: str | None = knob(None, 'follow a directory refreshed by an external `keysynth synth`')
    synth_config: str | None = knob(None, 'SynthConfig YAML for the live generator (None = defaults)')
    backgrounds: str | None = knob(None,
        'background photos folder, or default | procedural | bundled (None = default)')
    key_source: str | None = knob(None,
        'overrides the synth config\'s key_source: procedural | cut-out folder | mix "procedural:0.5,DIR:0.5"')

    # --- evaluation -----------------------------------------------------------------------------
    eval_every: int = knob(500, 'steps between evaluations (0 = only at the end)', unit='steps', low=0)
    val_size: int = knob(64,
        'fixed synthetic validation samples (rendered once, separate run seed)', unit='samples', low=0, high=100000)
    real_dir: str | None = knob(None, 'real photo set (images/ + masks/) for IoU / Dice / boundary F1')
    real_train: str | None = knob(None, 'real annotated photos (any format) whose augmented crops join the batches')
    real_fraction: float = knob(0.1,
        'share of each batch taken from real_train crops (with real_train set)', low=0.0, high=1.0)
    allow_overlap: bool = knob(False, 'score real_dir photos that are also cut-out sources (refused by default)')

    # --- performance ----------------------------------------------------------------------------
    amp: str = knob("auto",
        '"auto" (bf16 on CUDA when supported, off on CPU), "bf16", "off"', choices=AMP_MODES)
    channels_last: bool = knob(True, 'NHWC memory layout for convolutions (faster on CPU and tensor cores)')
    compile: bool = knob(False, 'torch.compile the model')

    # --- logging / checkpoints ------------------------------------------------------------------
    checkpoint_every: int = knob(500,
        'steps between rotating checkpoints (0 = only last.pt at the end)', unit='steps', low=0)
    keep_last_n: int = knob(3, 'rotating checkpoints kept (best.pt and last.pt are extra)', unit='checkpoints', low=0)
    log_every: int = knob(10, 'steps between CSV rows / TensorBoard scalars', unit='steps', low=1)
    tensorboard: bool = knob(False, 'write TensorBoard scalars + a prediction grid on real photos')
    progress: bool = knob(True, 'tqdm bar on rank 0')

    # ------------------------------------------------------------------------------------------
    def validate(self) -> "TrainConfig":
        """Coerce and check every field against its declared type and bounds (:mod:`synth.schema`),
        then the rules that tie fields together.

        Raises:
            ValueError: ``TrainConfig.<field>=<value>: <why>`` naming the field and the fix.
        """

        def bad(name: str, why: str) -> None:
            raise ValueError(f"TrainConfig.{name}={getattr(self, name)!r}: {why}")

        check_fields(self)
        if self.lr <= 0:
            bad("lr", "must be > 0")
        if self.image_size % 32:
            bad("image_size", "must be a multiple of 32 (encoder downsampling); e.g. 256 or 512")
        if (self.refresh_every > 0) != (self.refresh_fraction > 0):
            bad("refresh_every", "set refresh_fraction > 0 and refresh_every > 0 together (or neither)")
        if not (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")):
            bad("device", f"use {DEVICES_HINT}")
        if self.num_workers > 0 and self.data_dir is None and not self.deterministic:
            if self.buffer_size < self.batch_size + self.num_workers:
                bad("buffer_size", f"needs >= batch_size + num_workers = {self.batch_size + self.num_workers}")
        return self

    # --- (de)serialisation ----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "dict") -> "TrainConfig":
        """Build from a plain dict; unknown keys raise ``ValueError`` listing the valid fields."""
        if not isinstance(data, dict):
            raise ValueError(f"{source}: expected a mapping of TrainConfig fields, got {type(data).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"{source}: unknown TrainConfig field(s) {unknown}; valid fields: {', '.join(sorted(names))}")
        hints = typing.get_type_hints(cls)
        return cls(**{k: coerce(k, v, hints[k], source) for k, v in data.items()})

    @classmethod
    def from_yaml(cls, path: str | os.PathLike) -> "TrainConfig":
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"train config {path} does not exist")
        data = yaml.safe_load(path.read_text()) or {}
        return cls.from_dict(data, source=str(path))

    def to_yaml(self, path: str | os.PathLike) -> Path:
        """Write ``path`` atomically (temp file in the same folder + ``os.replace``)."""
        path = Path(path)
        atomic_write_text(path, yaml.safe_dump(self.to_dict(), sort_keys=False))
        return path

    def replace(self, **changes: Any) -> "TrainConfig":
        return dataclasses.replace(self, **changes)


def config_fields() -> list[tuple[str, Any, Any, str]]:
    """``[(name, type, default, help)]`` for every TrainConfig field (used to generate CLI flags);
    help gives the unit and valid range declared in the field's :func:`synth.schema.knob`."""
    hints = typing.get_type_hints(TrainConfig)
    return [(f.name, hints[f.name], f.default, knob_help(f)) for f in dataclasses.fields(TrainConfig)]
