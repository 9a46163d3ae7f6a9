"""Small, fast agent settings and a toy loss sequence shared by the curriculum tests."""

from dataclasses import replace

import numpy as np

from birdie.curriculum import BirdieAgentConfig, RewardModelConfig

#: Agent settings that keep a decision to a few milliseconds (``make_agent`` keywords).
FAST = dict(birdie_agent=BirdieAgentConfig(num_candidates=128, num_proposals=32),
            reward_model=RewardModelConfig(width=32, num_layers=2, train_steps=20))
#: The same settings as a ``Birdie`` dict config's nested sections.
FAST_SECTIONS = {"birdie_agent": {"num_candidates": 128, "num_proposals": 32},
                 "reward_model": {"width": 32, "num_layers": 2, "train_steps": 20}}


def fast(seed: int | None = None) -> dict:
    """:data:`FAST` with the agent seeded by ``seed``."""
    return {**FAST, "birdie_agent": replace(FAST["birdie_agent"], seed=seed)}


def toy_losses(step: int, num_configs: int) -> np.ndarray:
    """Deterministic, slowly falling losses that differ between configurations."""
    return 3.0 + np.arange(num_configs) * 0.1 + 2.0 * np.exp(-step / 400.0) + 0.01 * np.sin(step + np.arange(num_configs))


def readme_loop(birdie, model, optimizer, steps):
    """The seeds' README training loop, as written there (plus the user's optimizer)."""
    for step_idx in steps:
        if birdie.time_for_eval(step_idx):
            model.eval()
            for (objective_name, batch) in birdie.measure_validation_losses():
                loss = model(**batch)
                birdie.log_validation_loss(key=objective_name, loss=loss, step_idx=step_idx)
            model.train()
        sample = birdie.get_next_training_sample()
        loss = model(**sample)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
