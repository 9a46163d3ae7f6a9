"""Where training metrics go: ``OUT/metrics.jsonl`` always, TensorBoard and wandb when asked (rank 0 only).

Each logged step is one JSON object: ``step``, ``loss``, ``lr``, ``grad_norm``, ``tokens_per_s``,
``target_tokens`` (tokens with a label in the global batch), ``mixture`` (objective configuration -> probability)
and, at evaluation steps, ``val_loss`` (objective configuration -> validation loss). TensorBoard and wandb get
the same numbers as flat scalars (``mixture/NAME``, ``val_loss/NAME``); both are imported only when enabled.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from birdie.train.config import ConfigError, LoggingConfig


def _flatten(record: dict[str, Any]) -> dict[str, float]:
    flat = {}
    for key, value in record.items():
        if isinstance(value, dict):
            flat.update({f"{key}/{name}": float(v) for name, v in value.items()})
        elif isinstance(value, (int, float)) and key != "step":
            flat[f"train/{key}"] = float(value)
    return flat


class MetricsLogger:
    """Appends one JSON line per logged step and mirrors it to the optional backends.

    Args:
        out_dir: the run directory (``metrics.jsonl`` and ``tensorboard/`` go there).
        config: the logging section.
        run_config: the whole resolved config as a dict (given to wandb).
        enabled: False on ranks other than 0 (nothing is written).
        resume: keep the existing ``metrics.jsonl`` (a resumed run appends to it after the checkpoint cut it back
            to the checkpoint's step, see :class:`birdie.train.rundir.LogPositions`); False starts a fresh file.
    """

    def __init__(self, out_dir: str | Path, config: LoggingConfig, run_config: dict[str, Any], enabled: bool,
                 resume: bool = False) -> None:
        self.enabled = enabled
        self.path = Path(out_dir) / "metrics.jsonl"
        self._tensorboard = None
        self._wandb = None
        if not enabled:
            return
        if not resume:
            self.path.write_text("")
        if config.tensorboard:
            self._tensorboard = _open_tensorboard(Path(out_dir) / "tensorboard")
        if config.wandb:
            self._wandb = _open_wandb(Path(out_dir), config, run_config)

    def log(self, record: dict[str, Any]) -> None:
        """Write ``record`` (must hold ``step``); non-finite numbers are written as null."""
        if not self.enabled:
            return
        clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()}
        with self.path.open("a") as handle:
            handle.write(json.dumps(clean) + "\n")
        scalars = _flatten({k: v for k, v in clean.items() if v is not None})
        if self._tensorboard is not None:
            for key, value in scalars.items():
                self._tensorboard.add_scalar(key, value, record["step"])
        if self._wandb is not None:
            self._wandb.log(scalars, step=record["step"])

    def close(self) -> None:
        if self._tensorboard is not None:
            self._tensorboard.close()
        if self._wandb is not None:
            self._wandb.finish()


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """The records of a ``metrics.jsonl`` file."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def _open_tensorboard(log_dir: Path) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ConfigError("logging.tensorboard=True needs the tensorboard package: pip install tensorboard "
                          "(or birdie-lm[logging])") from None
    return SummaryWriter(log_dir=str(log_dir))


def _open_wandb(out_dir: Path, config: LoggingConfig, run_config: dict[str, Any]) -> Any:
    try:
        import wandb
    except ImportError:
        raise ConfigError("logging.wandb=True needs the wandb package: pip install wandb "
                          "(or birdie-lm[logging])") from None
    return wandb.init(project=config.wandb_project, mode=config.wandb_mode, dir=str(out_dir), config=run_config)
