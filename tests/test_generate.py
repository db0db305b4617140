"""generate_dataset: determinism across worker counts, crash safety, resume, refusals, CLI args.

A small fake renderer (random image + overlapping discs as keys, one ring with a hole) keeps these
tests fast and independent of the real scene renderer; one test runs the real
``synth.SampleRenderer`` when it is importable.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from synth.generate import STATE_DIR, RunMismatchError, generate_dataset
from synth.seeding import sample_rng

TESTS_DIR = Path(__file__).resolve().parent
ROOT = TESTS_DIR.parent


class FakeRenderer:
    """Deterministic stand-in for synth.SampleRenderer: sample i depends only on (run_seed, i).

    Keys are discs pasted copy-paste style (a later key overwrites an earlier one, so visible
    instance masks never overlap); key 2 is a ring (a disc with a hole, like a key's bow hole);
    every 4th sample pastes a big last disc that fully covers key 1; every 3rd sample has an
    ignore band (255) along the mask boundary.
    """

    def __init__(self, size: int = 48, delay_s: float = 0.0) -> None:
        self.size = size
        self.delay_s = delay_s
        self.calls: list[int] = []

    def render(self, index: int, run_seed: int) -> dict:
        self.calls.append(index)
        if self.delay_s:
            time.sleep(self.delay_s)
        seed, rng = sample_rng(run_seed, index)
        s = self.size
        coarse = rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)  # smooth colour field (JPEG-friendly)
        image = cv2.resize(coarse, (s, s), interpolation=cv2.INTER_LINEAR)
        inst = np.zeros((s, s), np.uint16)
        centres = rng.integers(s // 4, 3 * s // 4, size=(3, 2))
        radii = rng.integers(s // 10, s // 5, size=3)
        for k in range(3):
            cv2.circle(inst, (int(centres[k, 0]), int(centres[k, 1])), int(radii[k]), k + 1, -1)
            if k == 1:  # key 2 gets a bow hole
                cv2.circle(inst, (int(centres[k, 0]), int(centres[k, 1])), max(1, int(radii[k]) // 3), 0, -1)
        if index % 4 == 0:  # a last key that covers key 1 entirely
            ys, xs = np.nonzero(inst == 1)
            if len(xs):
                cx, cy = int(xs.mean()), int(ys.mean())
                r = int(np.hypot(xs - cx, ys - cy).max()) + 2
                cv2.circle(inst, (cx, cy), r, 4, -1)
        mask = (inst > 0).astype(np.uint8)
        if index % 3 == 0:
            kernel = np.ones((3, 3), np.uint8)
            band = cv2.dilate(mask, kernel) != cv2.erode(mask, kernel)
            mask[band] = 255
        meta = {"seed": seed, "index": index, "run_seed": run_seed, "radii": radii.tolist()}
        return {"image": image, "mask": mask, "meta": meta, "instances": inst}


class KillOnceRenderer:
    """Kills its worker process (os._exit) the first time ``kill_index`` is rendered in a worker.

    ``marker`` (a file) records that the kill happened, so the redone chunk renders normally.
    """

    def __init__(self, base: FakeRenderer, kill_index: int, marker: Path) -> None:
        self.base = base
        self.kill_index = kill_index
        self.marker = str(marker)
        self.parent_pid = os.getpid()

    def render(self, index: int, run_seed: int) -> dict:
        if index == self.kill_index and os.getpid() != self.parent_pid and not os.path.exists(self.marker):
            Path(self.marker).write_text(str(os.getpid()))
            os._exit(1)
        return self.base.render(index, run_seed)


def tree_bytes(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (relative path -> bytes)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def tmp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.startswith(".tmp-")]


def run(out, **kw):
    kw.setdefault("n", 40)
    kw.setdefault("run_seed", 7)
    kw.setdefault("renderer", FakeRenderer())
    kw.setdefault("config", {"size": 48})
    kw.setdefault("chunk_size", 8)
    kw.setdefault("progress", False)
    return generate_dataset(out, **kw)


def check_complete(out: Path, n: int) -> None:
    """n unique images/masks, meta.jsonl sorted by index with n lines, no temp files."""
    images = sorted(p.name for p in (out / "images").iterdir())
    masks = sorted(p.name for p in (out / "masks").iterdir())
    assert images == [f"{i:08d}.jpg" for i in range(n)]
    assert masks == [f"{i:08d}.png" for i in range(n)]
    lines = (out / "meta.jsonl").read_text().splitlines()
    assert [json.loads(line)["index"] for line in lines] == list(range(n))
    assert tmp_files(out) == []


def test_folder_output_matches_the_renderer(tmp_path):
    out = tmp_path / "out"
    summary = run(out, n=20)
    assert summary["rendered"] == 20 and summary["samples_per_s"] > 0
    check_complete(out, 20)
    ref = FakeRenderer()
    for i in (0, 3, 19):
        sample = ref.render(i, 7)
        mask = cv2.imread(str(out / "masks" / f"{i:08d}.png"), cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(mask, sample["mask"])  # PNG is lossless, 0/1/255 kept
        image = cv2.imread(str(out / "images" / f"{i:08d}.jpg"))[:, :, ::-1]
        assert np.abs(image.astype(int) - sample["image"]).mean() < 4  # JPEG q95, RGB order kept
    meta = json.loads((out / "meta.jsonl").read_text().splitlines()[5])
    assert meta == ref.render(5, 7)["meta"]
    saved = (out / "config.yaml").read_text()
    assert "seed: 7" in saved and "n: 20" in saved and "format: folder" in saved


def test_bytes_identical_for_1_and_2_loky_workers(tmp_path):
    run(tmp_path / "w1", workers=1, fmt="coco")
    run(tmp_path / "w2", workers=2, fmt="coco")
    a, b = tree_bytes(tmp_path / "w1"), tree_bytes(tmp_path / "w2")
    assert len(a) == 2 * 40 + 3 + 5 + 1  # images, masks, config/meta/annotations, 5 chunk markers, lock
    assert a.keys() == b.keys()
    assert [k for k in a if a[k] != b[k]] == []


def test_killed_loky_worker_loses_nothing(tmp_path):
    reference = tmp_path / "ref"
    run(reference, workers=1)
    out = tmp_path / "out"
    marker = tmp_path / "killed"
    summary = run(out, workers=2, renderer=KillOnceRenderer(FakeRenderer(), kill_index=19, marker=marker))
    assert marker.exists(), "the worker was not killed: the test did not exercise the crash path"
    assert summary["rendered"] == 40
    check_complete(out, 40)
    assert tree_bytes(out) == tree_bytes(reference)


def test_resume_redoes_only_missing_chunks(tmp_path):
    reference = tmp_path / "ref"
    run(reference)
    out = tmp_path / "out"
    run(out)
    # Simulate a kill: one chunk lost its marker, one lost an image, one mask is half-written
    # (marker removed, as a killed worker writes the marker last), and temp files are left over.
    (out / STATE_DIR / "done" / "chunk-00000001.json").unlink()
    (out / "images" / "00000020.jpg").unlink()
    (out / STATE_DIR / "done" / "chunk-00000004.json").unlink()
    (out / "masks" / "00000033.png").write_bytes(b"\x89PNG half")
    (out / STATE_DIR / "tmp" / ".tmp-123-abc-00000009.jpg").write_bytes(b"partial")
    (out / "meta.jsonl").unlink()
    renderer = FakeRenderer()
    summary = run(out, renderer=renderer)
    assert sorted(renderer.calls) == list(range(8, 16)) + list(range(16, 24)) + list(range(32, 40))
    assert summary["resumed"] and summary["skipped"] == 16 and summary["rendered"] == 24
    check_complete(out, 40)
    assert tree_bytes(out) == tree_bytes(reference)
    # A complete run re-run renders nothing and changes nothing.
    again = FakeRenderer()
    run(out, renderer=again)
    assert again.calls == [] and tree_bytes(out) == tree_bytes(reference)


SUBPROCESS_RUN = """
import sys
sys.path.insert(0, {tests!r})
from test_generate import FakeRenderer
from synth.generate import generate_dataset
generate_dataset({out!r}, n=120, run_seed=7, config={{"size": 48}}, chunk_size=4, workers=2,
                 renderer=FakeRenderer(delay_s=0.05), progress=False)
"""


def _start_run(out, chunks: int):
    """A 120-sample, 2-worker run in its own process session; returns ``(process, done folder)``
    once ``chunks`` chunks are marked done (or the run ended, or 60 s passed)."""
    code = SUBPROCESS_RUN.format(tests=str(TESTS_DIR), out=str(out))
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    done = out / STATE_DIR / "done"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if done.is_dir() and len(list(done.iterdir())) >= chunks:
            break
        time.sleep(0.05)
    return proc, done


def test_resume_after_sigkill_of_the_whole_run(tmp_path):
    out = tmp_path / "out"
    proc, done = _start_run(out, 3)
    try:
        assert proc.poll() is None, f"the run ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
        os.killpg(proc.pid, signal.SIGKILL)  # the run and its loky workers (its own session)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    n_done = len(list(done.iterdir()))
    assert 3 <= n_done < 30 and not (out / "meta.jsonl").exists()
    renderer = FakeRenderer()
    summary = run(out, n=120, chunk_size=4, renderer=renderer)
    assert summary["skipped"] >= 4 * n_done - 8  # a marker may appear after the count above
    assert len(renderer.calls) == len(set(renderer.calls)) == 120 - summary["skipped"]
    check_complete(out, 120)
    reference = tmp_path / "ref"
    run(reference, n=120, chunk_size=4)
    assert tree_bytes(out) == tree_bytes(reference)


@pytest.mark.slow
def test_workers_exit_soon_after_their_driver_is_killed(tmp_path):
    import psutil

    proc, _ = _start_run(tmp_path / "out", 1)
    workers: list = []
    try:
        workers = [c for c in psutil.Process(proc.pid).children(recursive=True)]
        assert workers, "no worker processes seen"
        os.kill(proc.pid, signal.SIGKILL)  # the driver only: its workers must notice and leave
        proc.wait(timeout=30)
        gone, alive = psutil.wait_procs(workers, timeout=60)
        assert not alive, f"{len(alive)} worker(s) still alive 60 s after the driver died"
    finally:
        for w in workers:
            if w.is_running():
                w.kill()


@pytest.mark.parametrize(
    "change, named",
    [({"run_seed": 8}, "seed"), ({"n": 41}, "n:"), ({"fmt": "webdataset"}, "format"), ({"config": {"size": 64}}, "config.size")],
)
def test_mismatched_rerun_is_refused(tmp_path, change, named):
    out = tmp_path / "out"
    run(out, n=8)
    before = tree_bytes(out)
    with pytest.raises(RunMismatchError) as err:
        run(out, **{"n": 8, **change})
    assert named in str(err.value) and "--out" in str(err.value)  # names the mismatch and the fix
    assert tree_bytes(out) == before


def test_foreign_non_empty_folder_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(RunMismatchError, match="not empty"):
        run(tmp_path, n=4)


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"n": 0}, "n \\(--n\\) must be an integer >= 1"),
        ({"n": -3}, ">= 1"),
        ({"fmt": "hdf5"}, "valid formats: folder, webdataset, coco"),
        ({"backend": "ray"}, "valid backends: loky, dask"),
        ({"workers": 0}, "workers"),
        ({"run_seed": -1}, "seed"),
        ({"shard_size": 0, "fmt": "webdataset"}, "shard-size"),
        ({"coco_segmentation": "bitmap", "fmt": "coco"}, "valid: polygon, rle"),
        ({"scheduler": "tcp://127.0.0.1:1"}, "--backend dask"),
    ],
)
def test_bad_arguments_raise_clear_errors(tmp_path, kw, match):
    with pytest.raises(ValueError, match=match):
        run(tmp_path / "out", **kw)
    assert not (tmp_path / "out").exists()


def _parser() -> argparse.ArgumentParser:
    from synth.commands import register

    parser = argparse.ArgumentParser(prog="keysynth")
    register(parser.add_subparsers(dest="command"))
    return parser


def test_cli_parses_and_rejects_bad_values(capsys):
    args = _parser().parse_args(["synth", "--out", "d", "--n", "5", "--format", "webdataset", "--shard-size", "2",
                                 "--backend", "dask", "--workers", "2", "--seed", "3"])
    assert (args.n, args.format, args.shard_size, args.backend, args.workers, args.seed) == (5, "webdataset", 2, "dask", 2, 3)
    assert args.func.__name__ == "cmd_synth"
    for bad in (["--n", "0"], ["--n", "5", "--format", "tiff"], ["--n", "5", "--backend", "spark"]):
        with pytest.raises(SystemExit):
            _parser().parse_args(["synth", "--out", "d", *bad])
    err = capsys.readouterr().err
    assert "folder" in err and "webdataset" in err and "coco" in err and "loky" in err
    pre = _parser().parse_args(["preview", "--out", "p.png"])
    assert (pre.n, pre.size, pre.func.__name__) == (64, 256, "cmd_preview")


def test_real_renderer_through_the_cli(tmp_path):
    synth = pytest.importorskip("synth")
    if not hasattr(synth, "SampleRenderer") or not hasattr(synth, "SynthConfig"):
        pytest.skip("synth.SampleRenderer / SynthConfig not available yet")
    args = _parser().parse_args(["synth", "--out", str(tmp_path / "real"), "--n", "3", "--size", "64",
                                 "--workers", "1", "--backgrounds", "procedural", "--quiet", "--format", "coco", "--chunk-size", "1"])
    assert args.func(args) == 0
    check_complete(tmp_path / "real", 3)
    mask = cv2.imread(str(tmp_path / "real" / "masks" / "00000002.png"), cv2.IMREAD_UNCHANGED)
    assert mask.shape == (64, 64) and set(np.unique(mask)) <= {0, 1, 255}
    # the real renderer is deterministic across processes too: 2 loky workers, same bytes
    from synth.commands import load_config
    from synth.generate import build_renderer

    config = load_config(None, 64)
    generate_dataset(tmp_path / "real2", n=3, run_seed=0, config=config, backgrounds_spec="procedural", workers=2,
                     fmt="coco", chunk_size=1, renderer=build_renderer(config, "procedural"), progress=False)
    assert tree_bytes(tmp_path / "real") == tree_bytes(tmp_path / "real2")


def test_preview_command_wiring(tmp_path, monkeypatch):
    """The command passes its flags to synth.preview.write_preview (stubbed: the real histogram
    figure takes tens of seconds; synth.preview has its own tests)."""
    preview = pytest.importorskip("synth.preview")
    calls = []

    def fake_write_preview(out_png, *, n, config, run_seed, backgrounds, hist_png, keys=None):
        calls.append(dict(out=Path(out_png), n=n, size=config.size, seed=run_seed, hist=Path(hist_png), bg=backgrounds))
        Path(out_png).write_bytes(b"png")
        Path(hist_png).write_bytes(b"png")

    monkeypatch.setattr(preview, "write_preview", fake_write_preview)
    out = tmp_path / "prev" / "grid.png"
    args = _parser().parse_args(["preview", "--out", str(out), "--n", "4", "--size", "64", "--seed", "3",
                                 "--backgrounds", "procedural"])
    assert args.func(args) == 0
    assert len(calls) == 1
    call = calls[0]
    assert (call["out"], call["n"], call["size"], call["seed"]) == (out, 4, 64, 3)
    assert call["hist"] == tmp_path / "prev" / "grid_hist.png" and call["hist"].is_file()
    assert hasattr(call["bg"], "sample")  # a BackgroundSource from make_backgrounds("procedural")
    bad = _parser().parse_args(["preview", "--out", str(tmp_path / "grid.jpg")])
    with pytest.raises(ValueError, match=".png"):
        bad.func(bad)


def test_missing_cutouts_folder_is_a_clear_error(tmp_path):
    args = _parser().parse_args(["synth", "--out", str(tmp_path / "o"), "--n", "2", "--cutouts", str(tmp_path / "nope")])
    with pytest.raises(FileNotFoundError, match="--cutouts"):
        args.func(args)


def test_concurrent_run_into_the_same_folder_is_refused(tmp_path):
    import fcntl

    out = tmp_path / "out"
    run(out, n=4)
    with open(out / STATE_DIR / "lock", "a+b") as fh:  # another run holds the folder
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(RuntimeError, match="another keysynth synth run"):
            run(out, n=4)
    assert run(out, n=4)["rendered"] == 0  # lock released: resumes (nothing left to do)
