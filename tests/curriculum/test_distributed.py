"""Two gloo ranks with different local validation losses must train on identical mixtures."""

import os
import socket

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from birdie.curriculum import Schedule, make_agent
from birdie.curriculum.agent import decision_executor
from birdie.objectives import resolve_mixture

from .helpers import FAST, fast, toy_losses

TOTAL_STEPS = 600


def local_losses(step: int, rank: int, num_configs: int) -> np.ndarray:
    return toy_losses(step, num_configs) * (1.0 + 0.1 * rank)


def _worker(rank: int, world_size: int, port: int, out_dir: str, background: bool) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    try:
        # Different seeds per rank: without the broadcast the ranks' decisions would differ.
        agent = make_agent("birdie", resolve_mixture("ul2"), TOTAL_STEPS, **fast(rank))
        actions, losses = [], []
        with decision_executor() as executor:
            for step in agent.schedule.evaluation_steps():
                losses_here = local_losses(step, rank, agent.num_configs)
                decision = agent.begin_observation(step, losses_here, executor if background else None).finish()
                actions.append(decision.action)
                losses.append(decision.losses)
        np.savez(os.path.join(out_dir, f"rank{rank}.npz"), actions=np.stack(actions), losses=np.stack(losses))
    finally:
        dist.destroy_process_group()


def _failing_worker(rank: int, world_size: int, port: int, out_dir: str, background: bool) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    try:
        agent = make_agent("birdie", resolve_mixture("ul2"), TOTAL_STEPS, schedule=Schedule(warmup_steps=0),
                           **FAST)

        def broken(step, losses):
            raise FloatingPointError("reward model diverged")

        agent._decide = broken
        agent.observe(0, local_losses(0, rank, agent.num_configs))
        with decision_executor() as executor:
            pending = agent.begin_observation(10, local_losses(10, rank, agent.num_configs),
                                              executor if background else None)
            try:
                pending.finish()
                outcome = "finished"
            except (FloatingPointError, RuntimeError) as error:
                outcome = f"{type(error).__name__}: {error}"
        with open(os.path.join(out_dir, f"rank{rank}.txt"), "w") as handle:
            handle.write(outcome)
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
@pytest.mark.multiprocess
@pytest.mark.parametrize("background", [False, True])
def test_ranks_share_rank0_decisions_on_averaged_losses(tmp_path, background):
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path), background), nprocs=2, join=True)
    ranks = [np.load(tmp_path / f"rank{r}.npz") for r in range(2)]
    np.testing.assert_array_equal(ranks[0]["actions"], ranks[1]["actions"])
    np.testing.assert_array_equal(ranks[0]["losses"], ranks[1]["losses"])

    single = make_agent("birdie", resolve_mixture("ul2"), TOTAL_STEPS, **fast(0))
    for index, step in enumerate(single.schedule.evaluation_steps()):
        mean = (local_losses(step, 0, single.num_configs) + local_losses(step, 1, single.num_configs)) / 2
        decision = single.observe(step, mean)
        np.testing.assert_allclose(ranks[0]["losses"][index], mean, rtol=1e-12)
        np.testing.assert_allclose(ranks[0]["actions"][index], decision.action, rtol=1e-9, atol=1e-12)
    assert not np.allclose(ranks[0]["actions"][-1], ranks[0]["actions"][0])


@pytest.mark.slow
@pytest.mark.multiprocess
@pytest.mark.parametrize("background", [False, True])
def test_a_failed_decision_on_rank0_raises_on_every_rank_instead_of_hanging(tmp_path, background):
    mp.spawn(_failing_worker, args=(2, _free_port(), str(tmp_path), background), nprocs=2, join=True)
    assert (tmp_path / "rank0.txt").read_text() == "FloatingPointError: reward model diverged"
    assert (tmp_path / "rank1.txt").read_text().startswith("RuntimeError: rank 0's agent failed to choose the mixture")
