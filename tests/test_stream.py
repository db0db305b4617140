"""Live stream (train/stream.py) and file stream (train/filestream.py)."""

import os
import tarfile
import io

import cv2
import numpy as np
import pytest

from train.filestream import FileStream
from train.stream import ShmStream, SyncStream
from train.distmaps import signed_distance_map
from train.toy import ToyDiscRenderer


def _shm_names():
    return {n for n in os.listdir("/dev/shm") if n.startswith("psm_")} if os.path.isdir("/dev/shm") else set()


def _check_batch(batch, renderer, run_seed):
    for img, mask, idx in zip(batch.image, batch.mask, batch.index):
        ref = renderer.render(int(idx), run_seed)
        assert np.array_equal(ref["image"], img), f"sample {idx} differs from the renderer's output"
        assert np.array_equal(ref["mask"], mask)


def test_stream_never_hands_out_half_written_samples_and_cleans_up():
    before = _shm_names()
    r = ToyDiscRenderer(48, delay_s=0.002)
    with ShmStream(r, batch_size=4, num_workers=2, buffer_size=8, run_seed=11, max_reuse=3, with_dist=True) as s:
        for _ in range(40):
            b = s.next_batch()
            _check_batch(b, ToyDiscRenderer(48), 11)
            assert b.dist.dtype == np.float16 and b.dist.shape == (4, 48, 48)
            for m, d in zip(b.mask, b.dist):
                assert np.array_equal(d, signed_distance_map(m))
        st = s.stats()
        procs = list(s._procs)
        ours = {m.name.lstrip("/") for m in s._shms}
    assert st["consumed"] == 160 and st["generated"] > 0
    assert not any(p.is_alive() for p in procs)
    if os.path.isdir("/dev/shm"):
        assert ours and not ours & set(os.listdir("/dev/shm")), "leaked shared-memory segments"
    assert not (_shm_names() - before) & ours


def test_freshness_limit_holds_while_fresh_samples_exist():
    # slow generator, fast consumer: reuse is needed, but never beyond max_reuse while fresh exist
    r = ToyDiscRenderer(32, delay_s=0.01)
    with ShmStream(r, batch_size=2, num_workers=1, buffer_size=12, run_seed=5, max_reuse=2) as s:
        seen_stalled = False
        for _ in range(60):
            with s._lock:
                ctl = s._arr["ctl"].copy()
            ready = ctl[:, 0] == 2
            n_fresh = int((ready & (ctl[:, 2] < 2)).sum())
            b = s.next_batch()
            _check_batch(b, ToyDiscRenderer(32), 5)  # same content, no delay
            if n_fresh >= 2 and not b.stalled:
                assert (b.uses <= 2).all()
            seen_stalled |= b.stalled
            if b.stalled:
                assert (b.uses > 2).any()
        st = s.stats()
    assert st["mean_reuse"] > 1.0
    assert seen_stalled and st["stalled_batches"] > 0  # consumption outran generation: logged, no stall


def test_fresh_samples_used_once_when_generation_is_fast():
    r = ToyDiscRenderer(32)
    with ShmStream(r, batch_size=2, num_workers=2, buffer_size=16, run_seed=1, max_reuse=4) as s:
        import time

        for _ in range(10):
            time.sleep(0.02)  # slow trainer
            b = s.next_batch()
            assert (b.uses == 1).all()


def test_deterministic_modes_agree_and_follow_the_step():
    r = ToyDiscRenderer(32)
    with ShmStream(r, batch_size=3, num_workers=2, buffer_size=4, run_seed=7, deterministic=True, start=6) as s:
        shm_batches = [s.next_batch() for _ in range(3)]
    sync = SyncStream(r, batch_size=3, run_seed=7, start=6)
    for b in shm_batches:
        c = sync.next_batch()
        assert np.array_equal(b.index, c.index) and np.array_equal(b.image, c.image)
    assert shm_batches[0].index.tolist() == [6, 7, 8] and shm_batches[2].index.tolist() == [12, 13, 14]


def test_refresh_mode_replaces_a_fraction_every_k_batches():
    r = ToyDiscRenderer(32)
    with ShmStream(r, batch_size=2, num_workers=1, buffer_size=8, run_seed=3, max_reuse=0,
                   refresh_fraction=0.5, refresh_every=5) as s:
        import time

        first = set()
        for i in range(5):
            first |= set(s.next_batch().index.tolist())
        # let the worker refill the 4 retired slots: poll (a machine loaded by a training run at a
        # higher priority took over a minute), then give an over-eager worker time to write more
        deadline = time.monotonic() + 240.0
        while time.monotonic() < deadline:
            st = s.stats()
            if st["generated"] >= 12 and st["ready"] == 8:
                break
            time.sleep(0.02)
        time.sleep(0.3)
        with s._lock:
            idx = set(s._arr["ctl"][s._arr["ctl"][:, 0] == 2, 1].tolist())
        gen = s.stats()["generated"]
    assert gen == 12  # 8 initial + 4 replacements (workers only refill retired slots)
    assert len(idx) == 8 and max(idx) >= 8


class WrongSize(ToyDiscRenderer):
    """Claims 40 px, renders 32 px."""

    def render(self, index, run_seed):
        return ToyDiscRenderer(32).render(index, run_seed)


def test_worker_error_is_reported():
    r = WrongSize(40)  # workers must report a clear error naming the fix
    with ShmStream(r, batch_size=2, num_workers=1, buffer_size=4, run_seed=0) as s:
        with pytest.raises(RuntimeError, match="image_size"):
            s.next_batch()


def _write(path, arr, ext):
    ok, buf = cv2.imencode(ext, arr)
    path.write_bytes(buf.tobytes())
    return buf.tobytes()


def test_file_stream_reads_only_complete_samples(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    r = ToyDiscRenderer(32)
    for i in range(3):  # complete samples
        s = r.render(i, 0)
        _write(tmp_path / "images" / f"{i:08d}.jpg", s["image"][..., ::-1], ".jpg")
        _write(tmp_path / "masks" / f"{i:08d}.png", s["mask"], ".png")
    s = r.render(9, 0)
    _write(tmp_path / "images" / "00000010.jpg", s["image"], ".jpg")  # image without mask
    data = _write(tmp_path / "images" / "00000011.jpg", s["image"], ".jpg")
    _write(tmp_path / "masks" / "00000011.png", s["mask"], ".png")
    (tmp_path / "images" / "00000011.jpg").write_bytes(data[: len(data) // 2])  # truncated image
    _write(tmp_path / "images" / ".tmp-00000012.jpg", s["image"], ".jpg")  # temp names
    _write(tmp_path / "masks" / ".tmp-00000012.png", s["mask"], ".png")
    _write(tmp_path / "images" / "00000013.jpg.tmp123", s["image"], ".jpg")
    _write(tmp_path / "masks" / "00000013.png", s["mask"], ".png")
    # shards: one complete, one temp-named, one truncated
    def shard(name, keys, truncate=False):
        bio = io.BytesIO()
        with tarfile.open(fileobj=bio, mode="w") as tf:
            for k in keys:
                smp = r.render(100 + k, 0)
                for ext, arr in ((".jpg", smp["image"][..., ::-1]), (".png", smp["mask"])):
                    b = cv2.imencode(ext, arr)[1].tobytes()
                    ti = tarfile.TarInfo(f"s{k:04d}{ext}")
                    ti.size = len(b)
                    tf.addfile(ti, io.BytesIO(b))
        data = bio.getvalue()
        (tmp_path / name).write_bytes(data[:700] if truncate else data)
    shard("shard-000000.tar", [0, 1])
    shard("shard-000001.tar.tmp", [2, 3])
    shard("shard-000002.tar", [4, 5], truncate=True)
    with FileStream(tmp_path, batch_size=5, image_size=32, max_reuse=1, rescan_s=0.0) as fs:
        b = fs.next_batch()
        keys = sorted(fs.last_keys)
    assert keys == ["f:00000000", "f:00000001", "f:00000002", "t:shard-000000.tar:s0000", "t:shard-000000.tar:s0001"]
    assert b.image.shape == (5, 32, 32, 3) and set(np.unique(b.mask)) <= {0, 1}
    ref = r.render(0, 0)["mask"]
    i = fs.last_keys.index("f:00000000")
    assert np.array_equal(b.mask[i], ref)  # PNG masks are lossless


def test_file_stream_rejects_0_255_masks(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    s = ToyDiscRenderer(32).render(0, 0)
    _write(tmp_path / "images" / "a.jpg", s["image"], ".jpg")
    m = s["mask"] * 200
    m[0, 0] = 7
    _write(tmp_path / "masks" / "a.png", m, ".png")
    with FileStream(tmp_path, batch_size=1, image_size=32) as fs:
        with pytest.raises(ValueError, match="mask values"):
            fs.next_batch()


class _BlockToy(ToyDiscRenderer):
    index_block = 5


def test_worker_index_blocks_partition_the_indices():
    from train.stream import worker_index

    assert [worker_index(10, 1, 3, k) for k in range(3)] == [11, 14, 17]  # block 1: interleaved
    seen = sorted(worker_index(0, w, 3, k, 4) for w in range(3) for k in range(8))
    assert seen == list(range(24))  # 3 workers x 2 blocks of 4 cover 0..23 exactly once
    assert [worker_index(0, 1, 3, k, 4) for k in range(6)] == [4, 5, 6, 7, 16, 17]


def test_fresh_stream_deals_index_blocks_to_workers():
    from train.stream import worker_index

    r = _BlockToy(32)
    seen = []
    with ShmStream(r, batch_size=2, num_workers=2, buffer_size=16, run_seed=3, max_reuse=1) as s:
        for _ in range(20):
            b = s.next_batch()
            _check_batch(b, ToyDiscRenderer(32), 3)
            seen += [int(i) for i in b.index]
        s._stop.set()  # let the workers finish, so the counters and the stream state are read at one moment
        for p in s._procs:
            p.join(10)
        with s._lock:
            wctl = s._arr["wctl"].copy()
        pos = s.state_dict()["position"]
    active = [w for w in range(2) if wctl[w, 0] > 0]
    assert active
    for w in active:  # each worker's next index follows the block formula (blocks of 5, round-robin)
        assert wctl[w, 1] == worker_index(0, w, 2, int(wctl[w, 0]), 5)
    assert all((i // 5) % 2 in active for i in seen)
    assert pos == max(int(wctl[w, 1]) for w in active)
