"""DDP with 2 CPU processes (gloo) trains a couple of steps; ranks see different samples."""

import json
import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from train.config import TrainConfig
from train.toy import ToyDiscRenderer


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_main(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    from train.trainer import train

    cfg = TrainConfig(out=out, image_size=32, encoder_name="mobilenet_v2", batch_size=2, steps=3, warmup=1,
                      num_workers=0, eval_every=0, val_size=2, log_every=1, checkpoint_every=0, progress=False,
                      device="cpu")
    s = train(cfg, producer=ToyDiscRenderer(32))
    with open(os.path.join(out, f"rank{rank}.json"), "w") as fh:
        json.dump({"step": s["step"], "batch_ids": [r["batch_id"] for r in s["history"]]}, fh)


@pytest.mark.slow
def test_ddp_two_cpu_processes(tmp_path):
    out = str(tmp_path / "run")
    os.makedirs(out, exist_ok=True)
    mp.spawn(_rank_main, args=(2, _free_port(), out), nprocs=2, join=True)
    r0 = json.load(open(os.path.join(out, "rank0.json")))
    assert r0["step"] == 3 and len(r0["batch_ids"]) == 3
    state = torch.load(os.path.join(out, "checkpoints", "last.pt"), weights_only=True)
    assert state["step"] == 3 and len(state["stream"]) == 2  # both ranks' stream positions
    assert state["stream"][0]["position"] == state["stream"][1]["position"] == 6
    assert len(state["rng"]["torch"]) == 2
