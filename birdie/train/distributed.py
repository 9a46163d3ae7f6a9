"""Process groups, the ``dp,fsdp,tp`` device mesh, and wrapping the model for data-parallel or sharded training.

``torchrun`` sets ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``; :func:`init_runtime` joins the process group (NCCL on
GPUs, gloo on CPU) and builds a device mesh shaped like EasyLM's ``mesh_dim``:

* ``dp``   -- replicas: parameters replicated, the batch split. ``dp`` alone (fsdp = tp = 1) uses DDP.
* ``fsdp`` -- parameters, gradients and optimizer state sharded with FSDP2 ``fully_shard``, the batch split.
  With ``dp > 1`` too this is HSDP (replicate over ``dp``, shard over ``fsdp``).
* ``tp``   -- tensor parallel inside each block via ``torch.distributed.tensor.parallel``. It needs a model that
  declares its plan with ``tp_plan() -> {submodule name: ParallelStyle}`` for a block; ranks in one tp group read
  the same data.

Every data rank (``dp x fsdp`` of them) reads its own shard of the data.
"""

from __future__ import annotations

import contextlib
import datetime
import os
from dataclasses import dataclass
from typing import Iterator

import torch
import torch.distributed as dist
from torch import nn

from birdie.train.config import ConfigError, DistributedConfig

MESH_DIMS = ("dp", "fsdp", "tp")


def parse_mesh(spec: str, world_size: int) -> tuple[int, int, int]:
    """``'dp,fsdp,tp'`` with at most one ``-1`` -> three sizes whose product is ``world_size``."""
    sizes = [int(part) for part in spec.split(",")]
    known = 1
    for size in sizes:
        if size != -1:
            known *= size
    if -1 in sizes:
        if world_size % known:
            raise ConfigError(f"distributed.mesh={spec!r}: {world_size} processes are not divisible by {known}")
        sizes[sizes.index(-1)] = world_size // known
    if sizes[0] * sizes[1] * sizes[2] != world_size:
        raise ConfigError(f"distributed.mesh={spec!r} has {sizes[0] * sizes[1] * sizes[2]} devices but "
                          f"{world_size} processes run; make the product equal (or use -1 for one entry)")
    return sizes[0], sizes[1], sizes[2]


@dataclass(frozen=True)
class Runtime:
    """Where this process sits: its rank, device and mesh.

    Attributes:
        rank, world_size, local_rank: from torchrun (0, 1, 0 without it).
        device: this process's device.
        dp, fsdp, tp: mesh sizes.
        mesh: the ``("dp", "fsdp", "tp")`` DeviceMesh, None in a single process.
    """

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    dp: int
    fsdp: int
    tp: int
    mesh: object | None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def data_world(self) -> int:
        """Number of distinct data shards (``dp * fsdp``)."""
        return self.dp * self.fsdp

    @property
    def data_rank(self) -> int:
        """This process's data shard; the ranks of one tensor-parallel group share it."""
        return self.rank // self.tp

    def barrier(self) -> None:
        if self.world_size > 1:
            dist.barrier()

    def sum(self, value: torch.Tensor) -> torch.Tensor:
        """All-reduce sum over the data ranks (tensor-parallel duplicates counted once)."""
        if self.world_size == 1:
            return value
        total = value.clone()
        dist.all_reduce(total)
        return total / self.tp


def pick_device(preference: str, local_rank: int) -> torch.device:
    """``auto``: this rank's GPU when CUDA is available, else the CPU."""
    if preference == "cuda" or (preference == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise ConfigError("train.device='cuda' but CUDA is not available; use --train.device cpu")
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def init_runtime(config: DistributedConfig, device_preference: str = "auto") -> Runtime:
    """Join the process group when launched by torchrun and build the mesh; a plain process is a 1-rank world."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(device_preference, local_rank)
    dp, fsdp, tp = parse_mesh(config.mesh, world_size)
    mesh = None
    if world_size > 1:
        backend = config.backend if config.backend != "auto" else ("nccl" if device.type == "cuda" else "gloo")
        if not dist.is_initialized():
            dist.init_process_group(backend, timeout=datetime.timedelta(minutes=10))
        from torch.distributed.device_mesh import init_device_mesh

        mesh = init_device_mesh(device.type, (dp, fsdp, tp), mesh_dim_names=MESH_DIMS)
    return Runtime(rank, world_size, local_rank, device, dp, fsdp, tp, mesh)


def shutdown(runtime: Runtime) -> None:
    """Leave the process group (after a barrier so no rank exits while others still talk to it)."""
    if runtime.world_size > 1 and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


@contextlib.contextmanager
def joined_runtime(config: DistributedConfig, device_preference: str = "auto") -> Iterator[Runtime]:
    """:func:`init_runtime` for the duration of a run, then :func:`shutdown`, also when the run raises."""
    runtime = init_runtime(config, device_preference)
    try:
        yield runtime
    finally:
        shutdown(runtime)


def apply_parallelism(model: nn.Module, runtime: Runtime) -> nn.Module:
    """Wrap ``model`` for the mesh: tensor parallel first, then FSDP2 per block and at the root, or DDP.

    The model must keep its blocks in ``model.layers`` (every birdie family does) for per-block sharding.
    """
    if runtime.world_size == 1:
        return model
    if runtime.tp > 1:
        plan_fn = getattr(model, "tp_plan", None)
        plan = plan_fn() if plan_fn is not None else None
        if plan is None:
            raise ConfigError(
                f"distributed.mesh={runtime.dp},{runtime.fsdp},{runtime.tp}: tensor parallel needs a model whose "
                f"tp_plan() gives a plan; {type(model).__name__} "
                f"({getattr(getattr(model, 'config', None), 'family', '?')}) has none (only the transformer "
                "family does). Use tp=1 (dp and fsdp work for every family)")
        from torch.distributed.tensor.parallel import parallelize_module

        from birdie.models.tensor_parallel import replicate_remaining_parameters

        for block in model.layers:
            parallelize_module(block, runtime.mesh["tp"], plan)
        replicate_remaining_parameters(model, runtime.mesh["tp"])
    if runtime.fsdp > 1 or runtime.tp > 1:
        from torch.distributed.fsdp import fully_shard

        shard_mesh = runtime.mesh["dp", "fsdp"] if runtime.dp > 1 else runtime.mesh["fsdp"]
        for block in model.layers:
            fully_shard(block, mesh=shard_mesh)
        fully_shard(model, mesh=shard_mesh)
        return model
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [runtime.device.index] if runtime.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids)


@contextlib.contextmanager
def gradient_sync(model: nn.Module, enabled: bool) -> Iterator[None]:
    """Skip the gradient all-reduce on accumulation micro-steps (DDP ``no_sync``; FSDP2's sync flag)."""
    if enabled:
        yield
        return
    if hasattr(model, "no_sync"):
        with model.no_sync():
            yield
        return
    if hasattr(model, "set_requires_gradient_sync"):
        model.set_requires_gradient_sync(False)
        try:
            yield
        finally:
            model.set_requires_gradient_sync(True)
        return
    yield


def unwrap(model: nn.Module) -> nn.Module:
    """The plain model under DDP and ``torch.compile`` wrappers (FSDP2 modifies the model in place)."""
    while True:
        inner = getattr(model, "module", None) or getattr(model, "_orig_mod", None)
        if inner is None:
            return model
        model = inner
