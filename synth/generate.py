"""Dataset generation at scale: render samples in parallel worker processes and write them to disk.

``generate_dataset`` cuts the ``n`` indices into chunks of consecutive indices; each worker renders
*and writes* a whole chunk (images never travel back to the parent), then writes the chunk's
done-marker ``.keysynth/done/chunk-NNNNNNNN.json`` holding the chunk's per-sample records (meta,
COCO annotations). Sample ``i`` always uses seed ``synth.seeding.sample_seed(run_seed, i)``
(Kubric-style per-sample seeds), and every encoder fixes its parameters, so the output is
byte-identical for any worker count and for loky vs Dask.

Engines (no home-made scheduler): joblib's loky process pool, or Dask distributed through
``joblib.parallel_config(backend="dask")`` (a given scheduler address, or a ``LocalCluster`` on
127.0.0.1 started and closed here). Tasks are dispatched lazily (``pre_dispatch``) and results
consumed with ``return_as="generator_unordered"``, so memory stays flat for any ``n``.

Crash safety and resume:
- every file is written to ``.keysynth/tmp/.tmp-*`` and ``os.replace``'d (never half a file);
- a chunk's done-marker is written only after all of its files and records each file's size and
  SHA-256; a chunk without a marker, or whose files went missing, were truncated or changed (size
  or SHA-256 differ from the marker), is redone by the next run, overwriting identical bytes;
- a dead loky worker (``TerminatedWorkerError``) or Dask worker (``KilledWorker``) makes the driver
  re-scan the markers and resubmit only the missing chunks (``max_attempts`` passes); Dask also
  reschedules a dead worker's task by itself;
- ``config.yaml`` (resolved config + run parameters) is written first; re-running into the same
  folder with another seed/config/n/format is refused with the mismatching keys and the fix;
- ``meta.jsonl`` (one line per sample, sorted by index) and format-level files
  (``annotations.json``) are (re)built from the markers once every chunk is done.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import hashlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np
import yaml

from synth.writers import SampleWriter, make_writer
from keysynth.common import atomic_open, atomic_write_bytes, clean_tmp_dir
from synth.workers import tune_allocator
from synth.writers.encoding import JPEG_QUALITY, check_sample

__all__ = ["BACKENDS", "RunMismatchError", "generate_dataset", "build_renderer", "read_run_config", "STATE_DIR"]

log = logging.getLogger(__name__)

BACKENDS = ("loky", "dask")
LOKY_IDLE_S = 5  # s a loky worker waits for work before it exits (joblib's default is 300)
#: hidden folder (inside the output folder) holding done-markers and temporary files.
STATE_DIR = ".keysynth"
FORMAT_VERSION = 1


class RunMismatchError(ValueError):
    """The output folder holds a run with other parameters; the message names them and the fix."""


# ----------------------------------------------------------------------------------------------
# config and run parameters


def _plain(obj: Any) -> Any:
    """Recursively turn dataclasses/tuples/numpy scalars/paths into YAML/JSON-safe plain types."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        obj = dataclasses.asdict(obj)
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    return obj


def _config_dict(config: Any) -> dict:
    if config is None:
        return {}
    if hasattr(config, "to_dict"):
        return _plain(config.to_dict())
    if isinstance(config, Mapping) or dataclasses.is_dataclass(config):
        return _plain(config)
    raise ValueError(f"config must be a synth.SynthConfig, a dict or None, got {type(config).__name__}")


def _spec_for_record(spec: str | None) -> str | None:
    """Folder specs are recorded as absolute paths so a resume from another cwd matches."""
    if spec is None:
        return None
    return os.path.abspath(spec) if os.path.isdir(spec) else str(spec)


def read_run_config(out_dir: str | os.PathLike) -> tuple[dict, dict]:
    """``(config_dict, run_params)`` saved in ``out_dir/config.yaml`` by :func:`generate_dataset`.

    ``config_dict`` feeds ``synth.SynthConfig.from_dict``; ``run_params`` holds ``n``, ``seed``,
    ``backgrounds``, ``cutouts``, ``format`` and the writer's chunk/shard sizes.

    Raises:
        FileNotFoundError: no ``config.yaml`` in ``out_dir``.
    """
    path = Path(out_dir) / "config.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: {out_dir} is not a keysynth output folder")
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return data.get("config", {}), data.get("run", {})


def _prepare_out_dir(out: Path, config_dict: dict, run: dict) -> bool:
    """Create ``out`` and write ``config.yaml``, or check it against an existing run.

    Returns True when resuming an existing run. Raises :class:`RunMismatchError` on a mismatch.
    """
    cfg_path = out / "config.yaml"
    doc = {"keysynth_dataset": FORMAT_VERSION, "run": run, "config": config_dict}
    if cfg_path.is_file():
        old_config, old_run = read_run_config(out)
        new = yaml.safe_load(yaml.safe_dump(doc, sort_keys=True))  # normalise types like a reload
        diffs = [f"{k}: saved {old_run.get(k)!r}, this command {v!r}" for k, v in new["run"].items() if old_run.get(k) != v]
        keys = sorted(set(old_config) | set(new["config"]))
        diffs += [f"config.{k}: saved {old_config.get(k)!r}, this command {new['config'].get(k)!r}"
                  for k in keys if old_config.get(k) != new["config"].get(k)]
        if diffs:
            raise RunMismatchError(
                f"{out} already holds a keysynth run with different parameters ({'; '.join(diffs)}). "
                f"Fix: re-run with the saved parameters (see {cfg_path}) to resume it, or choose a new --out "
                "folder (or delete this one) to start a different run."
            )
        return True
    if out.exists() and any(p.name != STATE_DIR for p in out.iterdir()):
        raise RunMismatchError(
            f"{out} is not empty and holds no keysynth config.yaml; refusing to write into it. "
            "Fix: choose a new or empty --out folder."
        )
    (out / STATE_DIR / "tmp").mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(cfg_path, yaml.safe_dump(doc, sort_keys=True).encode("utf-8"), out / STATE_DIR / "tmp")
    return False


# ----------------------------------------------------------------------------------------------
# the unit of work (runs inside worker processes)


@dataclasses.dataclass
class _ChunkJob:
    """Everything a worker needs to render and write one chunk; pickled to the workers."""

    renderer: Any
    writer: SampleWriter
    out_dir: str
    n: int
    run_seed: int
    token: str


_WORKER_JOB: dict[tuple[str, int], _ChunkJob] = {}


def _marker_path(out: Path, chunk: int) -> Path:
    return out / STATE_DIR / "done" / f"chunk-{chunk:08d}.json"


def _chunk_range(chunk: int, size: int, n: int) -> range:
    return range(chunk * size, min(n, (chunk + 1) * size))


def _render_chunk(job: _ChunkJob, chunk: int) -> dict:
    """Render and write chunk ``chunk`` of ``job``, then its done-marker; returns a tiny summary."""
    # One private copy of the job per worker thread, kept across chunks so renderer caches (e.g.
    # decoded backgrounds) survive; in a thread pool (Dask worker threads) a deep copy, because Dask
    # may hand one scattered object to several threads. Rendering depends only on (index, run_seed).
    tune_allocator()  # a generator worker: keep frame-sized buffers in the heap
    key = (job.token, threading.get_ident())
    if key not in _WORKER_JOB:
        for old in [k for k in _WORKER_JOB if k[0] != job.token]:
            del _WORKER_JOB[old]
        in_thread_pool = threading.current_thread() is not threading.main_thread()
        _WORKER_JOB[key] = copy.deepcopy(job) if in_thread_pool else job
    job = _WORKER_JOB[key]
    out = Path(job.out_dir)
    if not (out / "config.yaml").is_file():
        raise FileNotFoundError(
            f"output folder {out} is not visible from worker host {socket.gethostname()}: with a remote Dask "
            "scheduler, --out must be on storage shared by all workers (same path everywhere)"
        )
    tmp = out / STATE_DIR / "tmp"
    indices = _chunk_range(chunk, job.writer.chunk_size, job.n)
    t0 = time.perf_counter()

    def samples() -> Iterator[tuple[int, dict]]:
        for index in indices:
            sample = job.renderer.render(index, job.run_seed)
            check_sample(sample, index)
            yield index, sample

    records = job.writer.write_chunk(out, tmp, chunk, samples())
    files = {p.relative_to(out).as_posix(): _file_digest(p) for p in job.writer.chunk_files(out, chunk, indices)}
    marker = {"chunk": chunk, "start": indices.start, "stop": indices.stop, "records": records, "files": files}
    _marker_path(out, chunk).parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(_marker_path(out, chunk), tmp) as fh:
        fh.write(json.dumps(marker, sort_keys=True).encode("utf-8"))
    return {"chunk": chunk, "count": len(indices), "seconds": time.perf_counter() - t0}


def _file_digest(path: Path) -> dict:
    """``{"size": bytes, "sha256": hex digest}`` of a written file (read back from disk)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return {"size": os.path.getsize(path), "sha256": h.hexdigest()}


def _chunk_done(out: Path, writer: SampleWriter, chunk: int, n: int) -> bool:
    """True when chunk ``chunk`` has a done-marker and every file of the chunk is on disk with the
    size and SHA-256 recorded in that marker (a truncated or altered file makes the chunk redone)."""
    indices = _chunk_range(chunk, writer.chunk_size, n)
    try:
        with open(_marker_path(out, chunk), "rb") as fh:
            recorded = json.load(fh).get("files")
    except (OSError, ValueError, AttributeError):
        return False
    expected = {p.relative_to(out).as_posix(): p for p in writer.chunk_files(out, chunk, indices)}
    if not isinstance(recorded, dict) or set(recorded) != set(expected):
        return False  # no checksums (marker of an older version) or another file set: redo
    for rel, path in expected.items():
        info = recorded[rel]
        try:
            if not isinstance(info, dict) or os.path.getsize(path) != info.get("size"):
                return False
        except OSError:
            return False
        if _file_digest(path)["sha256"] != info.get("sha256"):
            log.warning("%s does not match the checksum in its done-marker; redoing chunk %d", path, chunk)
            return False
    return True


def _iter_records(out: Path, n_chunks: int) -> Iterator[dict]:
    for chunk in range(n_chunks):
        with open(_marker_path(out, chunk), "rb") as fh:
            yield from json.load(fh)["records"]


# ----------------------------------------------------------------------------------------------
# engines


def _run_chunks(job: _ChunkJob, pending: list[int], *, workers: int, backend: str, bar: Any) -> None:
    """Run ``pending`` chunks through joblib (loky, or dask through the current ``distributed.Client``).

    Tasks are produced lazily by a generator and dispatched ``pre_dispatch = 2 * n_jobs`` at a time;
    results (tiny dicts) are consumed as they complete, so neither side ever holds all tasks.
    """
    from joblib import Parallel, delayed, parallel_config

    size, n = job.writer.chunk_size, job.n
    tasks = (delayed(_render_chunk)(job, chunk) for chunk in pending)
    if backend == "dask":
        with parallel_config(backend="dask", wait_for_workers_timeout=60):
            parallel = Parallel(n_jobs=-1, return_as="generator_unordered", pre_dispatch="2*n_jobs", batch_size=1)
            for result in parallel(tasks):
                bar.update(len(_chunk_range(result["chunk"], size, n)))
    else:
        # idle workers exit after LOKY_IDLE_S: also what ends them when the driver is killed
        parallel = Parallel(n_jobs=workers, backend="loky", return_as="generator_unordered", pre_dispatch="2*n_jobs",
                            batch_size=1, idle_worker_timeout=LOKY_IDLE_S)
        for result in parallel(tasks):
            bar.update(len(_chunk_range(result["chunk"], size, n)))


def _worker_death_errors() -> tuple[type[BaseException], ...]:
    from joblib.externals.loky.process_executor import BrokenProcessPool, TerminatedWorkerError

    errors: list[type[BaseException]] = [TerminatedWorkerError, BrokenProcessPool]
    try:
        from distributed.scheduler import KilledWorker

        errors.append(KilledWorker)
    except ImportError:  # dask not installed: loky only
        pass
    return tuple(errors)


def _start_dask(workers: int, scheduler: str | None) -> tuple[Any, Any]:
    from distributed import Client, LocalCluster

    if scheduler:
        return Client(scheduler), None
    cluster = LocalCluster(host="127.0.0.1", processes=True, n_workers=workers, threads_per_worker=1,
                           dashboard_address=None, silence_logs=logging.ERROR)
    return Client(cluster), cluster


def build_renderer(config: Any, backgrounds_spec: str = "default", cutouts: str | os.PathLike | None = None) -> Any:
    """``synth.SampleRenderer(config, backgrounds=make_backgrounds(spec), keys=FolderCutouts(cutouts))``.

    Args:
        config: a ``synth.SynthConfig``.
        backgrounds_spec: ``"default"``, ``"procedural"``, ``"bundled"`` or a folder of photos.
        cutouts: optional folder of user key cut-outs (``synth.cutouts.FolderCutouts``).
    """
    from backgrounds import make_backgrounds
    from synth import SampleRenderer

    keys = None
    if cutouts is not None:
        if not os.path.isdir(cutouts):
            raise FileNotFoundError(f"--cutouts {cutouts}: no such folder; give a folder of key cut-out images")
        from synth.cutouts import FolderCutouts

        keys = FolderCutouts(cutouts)
    return SampleRenderer(config, backgrounds=make_backgrounds(backgrounds_spec), keys=keys)


def _check_int(name: str, value: Any, minimum: int, fix: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}; {fix}")
    return int(value)


# ----------------------------------------------------------------------------------------------
# public entry point


def generate_dataset(
    out_dir: str | os.PathLike,
    *,
    n: int,
    run_seed: int,
    config: Any = None,
    backgrounds_spec: str = "default",
    cutouts: str | os.PathLike | None = None,
    workers: int = 1,
    backend: str = "loky",
    scheduler: str | None = None,
    fmt: str = "folder",
    shard_size: int = 1000,
    chunk_size: int = 32,
    coco: bool = False,
    coco_segmentation: str = "polygon",
    progress: bool = True,
    renderer: Any = None,
    max_attempts: int = 3,
) -> dict:
    """Render samples ``0 .. n-1`` of run ``run_seed`` into ``out_dir`` (resumable, parallel).

    Args:
        out_dir: output folder (created; must be new/empty or hold the same run to resume).
        n: number of samples (>= 1).
        run_seed: run seed (>= 0); sample i uses ``synth.seeding.sample_seed(run_seed, i)``.
        config: ``synth.SynthConfig`` (default ``SynthConfig()``), or a dict when ``renderer`` is given.
        backgrounds_spec: ``make_backgrounds`` spec: default | procedural | bundled | folder path.
        cutouts: optional folder of key cut-outs.
        workers: worker processes (>= 1; loky pool size / LocalCluster workers).
        backend: ``"loky"`` or ``"dask"``.
        scheduler: Dask scheduler address (``tcp://host:8786``); None = local cluster on 127.0.0.1.
        fmt: ``"folder"``, ``"webdataset"`` or ``"coco"`` (see ``synth.writers.WRITERS``).
        shard_size: samples per WebDataset shard (>= 1).
        chunk_size: samples per work unit for folder/coco (>= 1); fixed per output folder.
        coco: also write COCO ``annotations.json`` with the folder format.
        coco_segmentation: ``"polygon"`` (RLE for masks with holes) or ``"rle"``.
        progress: show a tqdm bar (samples/s).
        renderer: object with ``render(index, run_seed) -> sample``; default ``build_renderer``.
        max_attempts: passes over the missing chunks when workers die (>= 1).

    Returns:
        summary dict: ``out_dir``, ``n``, ``format``, ``resumed``, ``rendered`` (this run),
        ``skipped`` (already done), ``seconds`` (rendering + writing, s), ``samples_per_s``
        (rendered / seconds), ``startup_s`` (Dask cluster start, s), ``workers``, ``backend``,
        ``files`` (run-level files written).

    Raises:
        ValueError: bad argument (names it and the valid values).
        RunMismatchError: ``out_dir`` holds a run with other parameters.
        RuntimeError: chunks still missing after ``max_attempts`` passes, or another run is
            writing to ``out_dir``.
    """
    n = _check_int("n (--n)", n, 1, "ask for at least one sample")
    run_seed = _check_int("run seed (--seed)", run_seed, 0, "use a non-negative integer")
    workers = _check_int("workers (--workers)", workers, 1, "use 1 or more worker processes")
    max_attempts = _check_int("max_attempts", max_attempts, 1, "use 1 or more passes")
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; valid backends: {', '.join(BACKENDS)}")
    if scheduler and backend != "dask":
        raise ValueError("--scheduler is a Dask scheduler address: use it with --backend dask")
    writer = make_writer(fmt, chunk_size=chunk_size, shard_size=shard_size, coco=coco, coco_segmentation=coco_segmentation)
    if renderer is None:
        if config is None:
            from synth import SynthConfig

            config = SynthConfig()
        renderer = build_renderer(config, backgrounds_spec, cutouts)

    out = Path(out_dir).resolve()
    run = {"n": n, "seed": run_seed, "backgrounds": _spec_for_record(backgrounds_spec),
           "cutouts": _spec_for_record(os.fspath(cutouts)) if cutouts is not None else None,
           "jpeg_quality": JPEG_QUALITY, **writer.params()}
    resumed = _prepare_out_dir(out, _config_dict(config), run)
    with _run_lock(out):
        return _generate(out, writer, renderer, n=n, run_seed=run_seed, workers=workers, backend=backend,
                         scheduler=scheduler, progress=progress, max_attempts=max_attempts, resumed=resumed)


@contextlib.contextmanager
def _run_lock(out: Path) -> Iterator[None]:
    """Exclusive ``flock`` on ``.keysynth/lock`` so two runs never write one folder at once."""
    path = out / STATE_DIR / "lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as fh:
        try:
            import fcntl
        except ImportError:  # not POSIX: no lock
            yield
            return
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise RuntimeError(
                f"another keysynth synth run is writing to {out}; wait for it to finish (or stop it) before "
                "re-running, or choose another --out"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _generate(out: Path, writer: SampleWriter, renderer: Any, *, n: int, run_seed: int, workers: int, backend: str,
              scheduler: str | None, progress: bool, max_attempts: int, resumed: bool) -> dict:
    from tqdm.auto import tqdm

    tmp = out / STATE_DIR / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    clean_tmp_dir(tmp)

    n_chunks = -(-n // writer.chunk_size)
    job = _ChunkJob(renderer=renderer, writer=writer, out_dir=str(out), n=n, run_seed=run_seed, token=uuid.uuid4().hex)
    pending = [c for c in range(n_chunks) if not _chunk_done(out, writer, c, n)]
    skipped = n - sum(len(_chunk_range(c, writer.chunk_size, n)) for c in pending)
    client = cluster = bar = None
    t_start = t0 = time.perf_counter()
    try:
        if pending and backend == "dask":
            client, cluster = _start_dask(workers, scheduler)
            t0 = time.perf_counter()  # throughput excludes the cluster start-up
        bar = tqdm(total=n, initial=skipped, unit="sample", desc=f"keysynth synth -> {out.name}", disable=not progress, smoothing=0.05)
        for attempt in range(1, max_attempts + 1):
            if not pending:
                break
            try:
                _run_chunks(job, pending, workers=workers, backend=backend, bar=bar)
            except _worker_death_errors() as exc:
                log.warning("a worker died (%s: %s); redoing the unfinished chunks (pass %d of %d)",
                            type(exc).__name__, exc, attempt + 1, max_attempts)
            pending = [c for c in pending if not _chunk_done(out, writer, c, n)]
            bar.n = n - sum(len(_chunk_range(c, writer.chunk_size, n)) for c in pending)
            bar.refresh()
        seconds = time.perf_counter() - t0  # before the cluster shuts down
    finally:
        if bar is not None:
            bar.close()
        _WORKER_JOB.clear()  # the in-process (workers=1) copy
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()
    if pending:
        raise RuntimeError(
            f"{len(pending)} chunk(s) of {out} are still missing after {max_attempts} passes (workers kept dying); "
            "re-run the same command to resume"
        )

    with atomic_open(out / "meta.jsonl", tmp) as fh:
        for record in _iter_records(out, n_chunks):
            fh.write(json.dumps(record["meta"], sort_keys=True).encode("utf-8") + b"\n")
    files = ["config.yaml", "meta.jsonl"] + writer.finalize(out, tmp, lambda: _iter_records(out, n_chunks), n)
    clean_tmp_dir(tmp)
    rendered = n - skipped
    return {
        "out_dir": str(out), "n": n, "format": writer.name, "resumed": resumed, "rendered": rendered,
        "skipped": skipped, "seconds": seconds, "samples_per_s": rendered / seconds if seconds > 0 and rendered else 0.0,
        "startup_s": t0 - t_start, "workers": workers, "backend": backend, "files": files,
    }
