"""Small, fast agent settings and a toy loss sequence shared by the curriculum tests."""

import numpy as np

#: Agent options that keep a decision to a few milliseconds.
FAST = dict(num_candidates=128, num_proposals=32, width=32, num_layers=2, train_steps=20)


def toy_losses(step: int, num_configs: int) -> np.ndarray:
    """Deterministic, slowly falling losses that differ between configurations."""
    return 3.0 + np.arange(num_configs) * 0.1 + 2.0 * np.exp(-step / 400.0) + 0.01 * np.sin(step + np.arange(num_configs))
