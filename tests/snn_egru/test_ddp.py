"""Data-parallel training: 2 CPU processes (gloo) equal one process with the same global batch.

The workers are started with ``torch.multiprocessing`` (spawn) and the torchrun environment
variables (``MASTER_ADDR``, ``MASTER_PORT``, ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``), so the
same code path as ``torchrun --nproc_per_node 2 -m snn_egru.training.lm`` runs.
"""

from __future__ import annotations

import os
import socket
import time

import pytest
import torch
import torch.multiprocessing as mp

from snn_egru.data.text import corpus_from_texts
from snn_egru.training.lm import lm_training_preset, train_language_model
from tests.snn_egru.conftest import deterministic_tiny_lm

WORLD_SIZE = 2
TIMEOUT_S = 240  # a guard against hangs; the run takes ~15 s on an idle 2-core machine


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ddp_configs():
    """Tiny model without dropout: the runs are deterministic and comparable."""
    model_config = deterministic_tiny_lm(vocab_size=9)
    # batch_size is global: 2 streams per rank
    recipe = dict(batch_size=4, bptt=8, lr=1e-2, clip=1.0, weight_decay=0.01)
    run = dict(max_steps=8, log_every=1, final_test=False, eval_max_tokens=64)
    train_config = lm_training_preset("tiny", **recipe, **run)
    return model_config, train_config


def corpus():
    text = "".join(f"w{i % 5} w{(i * 3) % 7} w{i % 3}\n" for i in range(120))
    return corpus_from_texts(text, text[:400], text[:400], name="ddp")


def _worker(rank: int, port: int, out_dir: str) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        WORLD_SIZE=str(WORLD_SIZE),
        LOCAL_RANK=str(rank),
    )
    torch.set_num_threads(1)
    model_config, train_config = ddp_configs()
    result = train_language_model(
        model_config, train_config, data=corpus(), out_dir=out_dir, show_progress=False
    )
    losses = [row["loss"] for row in result.history if row.get("kind") == "train"]
    torch.save(
        {
            "state": result.model.state_dict(),
            "losses": losses,
            "steps": result.steps,
            "world_size": result.world_size,
        },
        os.path.join(out_dir, f"rank{rank}.pt"),
    )


@pytest.mark.slow
def test_two_process_ddp_equals_single_process(tmp_path):
    out_dir = str(tmp_path)
    context = mp.start_processes(
        _worker,
        args=(free_port(), out_dir),
        nprocs=WORLD_SIZE,
        join=False,
        start_method="spawn",
    )
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while not context.join(timeout=1.0):
            if time.monotonic() > deadline:
                pytest.fail(f"DDP workers did not finish within {TIMEOUT_S} s")
    finally:
        for process in context.processes:
            if process.is_alive():
                process.terminate()
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(WORLD_SIZE)]

    torch.set_num_threads(1)
    model_config, train_config = ddp_configs()
    single = train_language_model(model_config, train_config, data=corpus(), show_progress=False)
    single_losses = [row["loss"] for row in single.history if row.get("kind") == "train"]
    single_state = single.model.state_dict()

    assert ranks[0]["world_size"] == ranks[1]["world_size"] == WORLD_SIZE  # really distributed
    assert single.world_size == 1
    assert ranks[0]["steps"] == ranks[1]["steps"] == single.steps == 8
    for name, value in ranks[0]["state"].items():
        # every rank ends with the same weights ...
        torch.testing.assert_close(value, ranks[1]["state"][name], rtol=0, atol=0, msg=name)
        # ... which are those of one process taking the whole batch
        torch.testing.assert_close(value, single_state[name], rtol=1e-4, atol=1e-5, msg=name)
    assert len(ranks[0]["losses"]) == 8
    # rank 0 logs the mean loss over ranks = the single-process loss of the global batch
    for distributed_loss, single_loss in zip(ranks[0]["losses"], single_losses):
        assert distributed_loss == pytest.approx(single_loss, rel=1e-5)
    assert (tmp_path / "last.pt").exists()  # rank 0 checkpoints
