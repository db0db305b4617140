"""Dask distributed backend: a LocalCluster on 127.0.0.1 gives the same bytes as loky, and a
killed Dask worker loses nothing (the scheduler reschedules its chunk; the chunk is rewritten
atomically with identical bytes)."""

from __future__ import annotations

import pytest

pytest.importorskip("distributed")

from test_generate import FakeRenderer, KillOnceRenderer, check_complete, run, tree_bytes  # noqa: E402


def test_dask_local_cluster_matches_loky_byte_for_byte(tmp_path):
    run(tmp_path / "loky", n=40, workers=2, fmt="coco")
    summary = run(tmp_path / "dask", n=40, workers=2, backend="dask", fmt="coco")
    assert summary["backend"] == "dask" and summary["rendered"] == 40
    check_complete(tmp_path / "dask", 40)
    loky, dask = tree_bytes(tmp_path / "loky"), tree_bytes(tmp_path / "dask")
    assert loky.keys() == dask.keys()
    assert [k for k in loky if loky[k] != dask[k]] == []


def test_killed_dask_worker_loses_nothing(tmp_path):
    """Through a scheduler address (--scheduler): the cluster is not ours, so it stays up."""
    import logging

    from distributed import Client, LocalCluster

    run(tmp_path / "ref", n=30, fmt="webdataset", shard_size=6)
    marker = tmp_path / "killed"
    renderer = KillOnceRenderer(FakeRenderer(), kill_index=14, marker=marker)
    with LocalCluster(host="127.0.0.1", processes=True, n_workers=2, threads_per_worker=2,  # threads share the job
                      dashboard_address=None, silence_logs=logging.ERROR) as cluster:
        summary = run(tmp_path / "dask", n=30, backend="dask", scheduler=cluster.scheduler_address,
                      fmt="webdataset", shard_size=6, renderer=renderer)
        with Client(cluster) as client:
            assert client.submit(sum, [1, 2]).result() == 3  # our run did not close their cluster
    assert marker.exists(), "no Dask worker was killed: the test did not exercise the crash path"
    assert summary["rendered"] == 30
    assert sorted(p.name for p in (tmp_path / "dask").glob("shard-*.tar")) == [f"shard-{k:06d}.tar" for k in range(5)]
    assert [p for p in (tmp_path / "dask").rglob(".tmp-*")] == []
    assert tree_bytes(tmp_path / "dask") == tree_bytes(tmp_path / "ref")
