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
import tempfile
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

__all__ = ["TrainConfig", "AMP_MODES", "BOUNDARY_LOSSES", "config_fields"]

AMP_MODES = ("auto", "bf16", "off")
BOUNDARY_LOSSES = ("surface", "edge_bce", "none")
DEVICES_HINT = "'auto', 'cpu', 'cuda' or 'cuda:N'"


@dataclass
class TrainConfig:
    """All training settings (flat, typed). See ``keysynth train --help`` for one line per field."""

    # --- run / output -------------------------------------------------------------------------
    out: str = "runs/train"  # run directory: config.yaml, log.csv, checkpoints/, tb/
    resume: str | None = None  # checkpoint path, run dir, or "auto" (= OUT/checkpoints/last.pt)
    overwrite: bool = False  # start afresh in an OUT that already holds a run (its checkpoints are deleted)
    seed: int = 0  # run seed; rank r trains on run_seed derived from (seed, r)
    device: str = "auto"  # 'auto' (cuda if available), 'cpu', 'cuda', 'cuda:N'

    # --- model ----------------------------------------------------------------------------------
    image_size: int = 192  # training side length, px (square samples)
    arch: str = "Unet"  # smp architecture: Unet, UnetPlusPlus, FPN, DeepLabV3Plus, Linknet, PSPNet, MAnet, PAN
    encoder_name: str = "mobilenet_v2"  # smp encoder; the fastest per CPU-minute of those measured (bench/recipe.py)
    decoder_width: int = 128  # channels of the coarsest U-Net decoder block, halved per finer block (256 = smp default)
    encoder_weights: str | None = None  # None (offline) or "imagenet" (downloads)

    # --- optimisation ---------------------------------------------------------------------------
    batch_size: int = 12  # per rank
    steps: int = 2000  # optimizer steps in total
    lr: float = 2e-3  # peak learning rate (AdamW)
    weight_decay: float = 1e-4  # AdamW decoupled weight decay (conv/linear weights only)
    warmup: int = 100  # linear warm-up steps, then cosine decay to min_lr_ratio * lr
    min_lr_ratio: float = 0.01  # final learning rate of the cosine schedule, as a fraction of lr
    grad_clip: float = 1.0  # max global grad norm; 0 disables

    # --- loss -----------------------------------------------------------------------------------
    dice_weight: float = 1.0  # soft Dice
    bce_weight: float = 1.0  # plain BCE on valid pixels
    boundary_loss: str = "surface"  # "surface" (Kervadec 2019), "edge_bce", or "none"
    boundary_weight: float = 0.01  # final weight of the boundary term (surface loss is in px units)
    boundary_ramp: float = 0.3  # fraction of `steps` over which the boundary weight ramps 0 -> final
    edge_thickness: int = 3  # px, width of the mask-edge band for edge_bce
    edge_weight: float = 5.0  # extra BCE weight on edge pixels (edge_bce)
    ignore_index: int = 255  # mask value excluded from losses and metrics

    # --- data stream ----------------------------------------------------------------------------
    num_workers: int = 1  # generator processes per rank; 0 renders in the trainer (deterministic)
    threads: int = 0  # torch CPU threads; 0 = CPU cores minus num_workers, at least 1 (oversubscription is ~5x slower)
    init: str | None = None  # checkpoint or model folder whose weights start this run (fine-tuning); optimizer starts fresh
    buffer_size: int = 256  # shared-memory ring slots (samples) per rank
    max_reuse: int = 4  # a sample is drawn at most this often while fresh ones exist; 0 = unlimited
    refresh_fraction: float = 0.0  # refresh mode: replace this fraction of the buffer ...
    refresh_every: int = 0  # ... every K steps (0 = off: workers replace used samples continuously)
    deterministic: bool = False  # batch at step t = samples t*B..t*B+B-1 (reproducible order, resume)
    data_dir: str | None = None  # follow a directory refreshed by an external `keysynth synth`
    synth_config: str | None = None  # SynthConfig YAML for the live generator (None = defaults)
    backgrounds: str | None = None  # background photos folder, or default | procedural | bundled (None = default)
    key_source: str | None = None  # overrides the synth config's key_source: procedural | cut-out folder | mix "procedural:0.5,DIR:0.5"

    # --- evaluation -----------------------------------------------------------------------------
    eval_every: int = 500  # steps between evaluations (0 = only at the end)
    val_size: int = 64  # fixed synthetic validation samples (rendered once, separate run seed)
    real_dir: str | None = None  # real photo set (images/ + masks/) for IoU / Dice / boundary F1
    real_train: str | None = None  # real annotated photos (any format) whose augmented crops join the batches
    real_fraction: float = 0.1  # share of each batch taken from real_train crops (with real_train set)
    allow_overlap: bool = False  # score real_dir photos that are also cut-out sources (refused by default)

    # --- performance ----------------------------------------------------------------------------
    amp: str = "auto"  # "auto" (bf16 on CUDA when supported, off on CPU), "bf16", "off"
    channels_last: bool = True  # NHWC memory layout for convolutions (faster on CPU and tensor cores)
    compile: bool = False  # torch.compile the model

    # --- logging / checkpoints ------------------------------------------------------------------
    checkpoint_every: int = 500  # steps between rotating checkpoints (0 = only last.pt at the end)
    keep_last_n: int = 3  # rotating checkpoints kept (best.pt and last.pt are extra)
    log_every: int = 10  # steps between CSV rows / TensorBoard scalars
    tensorboard: bool = False  # write TensorBoard scalars + a prediction grid on real photos
    progress: bool = True  # tqdm bar on rank 0

    # ------------------------------------------------------------------------------------------
    def validate(self) -> "TrainConfig":
        """Raise ``ValueError`` naming the field and the fix when a value is out of range."""

        def bad(name: str, why: str) -> None:
            raise ValueError(f"TrainConfig.{name}={getattr(self, name)!r}: {why}")

        for name in ("image_size", "batch_size", "steps", "buffer_size"):
            if getattr(self, name) < 1:
                bad(name, "must be >= 1")
        if self.image_size > 2048:
            bad("image_size", "must be <= 2048 px (a batch of larger samples does not fit in memory); e.g. 256 or 512")
        if self.image_size % 32:
            bad("image_size", "must be a multiple of 32 (encoder downsampling); e.g. 256 or 512")
        if self.decoder_width < 8:
            bad("decoder_width", "must be >= 8 (256 is smp's default U-Net decoder)")
        for name in ("threads", "warmup", "num_workers", "max_reuse", "refresh_every", "eval_every", "val_size",
                     "checkpoint_every", "keep_last_n", "edge_thickness"):
            if getattr(self, name) < 0:
                bad(name, "must be >= 0")
        if self.log_every < 1:
            bad("log_every", "must be >= 1")
        if not 0.0 <= self.real_fraction <= 1.0:
            bad("real_fraction", "must be in [0, 1] (share of each batch)")
        if not 0.0 <= self.refresh_fraction <= 1.0:
            bad("refresh_fraction", "must be in [0, 1]")
        if (self.refresh_every > 0) != (self.refresh_fraction > 0):
            bad("refresh_every", "set refresh_fraction > 0 and refresh_every > 0 together (or neither)")
        if self.lr <= 0:
            bad("lr", "must be > 0")
        if not 0.0 <= self.boundary_ramp <= 1.0:
            bad("boundary_ramp", "must be in [0, 1] (fraction of steps)")
        if self.boundary_loss not in BOUNDARY_LOSSES:
            bad("boundary_loss", f"valid names: {', '.join(BOUNDARY_LOSSES)}")
        if self.amp not in AMP_MODES:
            bad("amp", f"valid names: {', '.join(AMP_MODES)}")
        if self.encoder_weights not in (None, "imagenet"):
            bad("encoder_weights", "use None (no download) or 'imagenet'")
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
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".yaml", dir=path.parent)
        with os.fdopen(fd, "w") as fh:
            yaml.safe_dump(self.to_dict(), fh, sort_keys=False)
        os.replace(tmp, path)
        return path

    def replace(self, **changes: Any) -> "TrainConfig":
        return dataclasses.replace(self, **changes)


def config_fields() -> list[tuple[str, Any, Any, str]]:
    """``[(name, type, default, help)]`` for every TrainConfig field (used to generate CLI flags)."""
    import inspect

    hints = typing.get_type_hints(TrainConfig)
    src = inspect.getsource(TrainConfig).splitlines()
    out = []
    for f in dataclasses.fields(TrainConfig):
        line = next((s for s in src if s.strip().startswith(f"{f.name}:")), "")
        doc = line.split("#", 1)[1].strip() if "#" in line else ""
        out.append((f.name, hints[f.name], f.default, doc))
    return out


def coerce(name: str, value: Any, hint: Any, source: str = "value") -> Any:
    """Convert ``value`` (YAML scalar or CLI string) to the field type ``hint``.

    ``"none"``/``"null"``/``""`` become ``None`` for optional fields; booleans accept
    true/false/yes/no/1/0. Raises ``ValueError`` naming the field on a bad value.
    """
    args = typing.get_args(hint)
    optional = type(None) in args
    base = next((a for a in args if a is not type(None)), hint) if args else hint
    if value is None or (optional and isinstance(value, str) and value.strip().lower() in ("none", "null", "")):
        if optional:
            return None
        raise ValueError(f"{source}: field {name!r} cannot be empty/None")
    try:
        if base is bool:
            if isinstance(value, bool):
                return value
            s = str(value).strip().lower()
            if s in ("1", "true", "yes", "on"):
                return True
            if s in ("0", "false", "no", "off"):
                return False
            raise ValueError("expected true/false")
        if base is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError("expected an integer")
            return int(float(value)) if isinstance(value, str) and "e" in value.lower() else int(value)
        if base is float:
            return float(value)
        if base is str:
            return str(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{source}: field {name!r} got {value!r}: {exc}") from None
    return value

