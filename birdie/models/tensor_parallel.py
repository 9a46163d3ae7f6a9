"""Tensor-parallel styles for birdie's fused projections (``torch.distributed.tensor.parallel``).

The Transformer keeps open_lm's fused layouts -- ``in_proj`` = ``[q | k | v]`` and the MLP's ``w12`` =
``[gate | up]`` stacked on the output dimension -- so open_lm and SUPRA checkpoints keep loading. A plain
``ColwiseParallel`` would cut such a matrix into contiguous row blocks (rank 0 all of q, rank 1 k and v), which
splits no head correctly. :class:`FusedColwiseParallel` computes, on rank r, only the r-th block of every piece
(``[q_r | k_r | v_r]``: whole heads), while the parameter itself stays a contiguous ``Shard(0)`` DTensor: state
dicts, sharded (DCP) checkpoints, optimizer state and gradient norms see an ordinary sharded tensor. The price is
one all-gather of that weight per forward (and a reduce-scatter of its gradient), as FSDP pays; the activations
are never gathered.

The output rows are local, so the modules after it see only this rank's heads / hidden units: attention derives
its head counts from the projection's output width, and ``out_proj``/``w3`` use ``RowwiseParallel``, which sums
the partial outputs over the tensor-parallel group.
"""

from __future__ import annotations

from types import MethodType
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributed.device_mesh import DeviceMesh
from torch.distributed.tensor import DTensor, Partial, Replicate, Shard, distribute_module, distribute_tensor
from torch.distributed.tensor.parallel import ParallelStyle, RowwiseParallel


class _ReplicatedInput(torch.autograd.Function):
    """Identity forward; the backward sums the input's gradient over the group, since each rank's local columns
    contribute only part of it (Megatron's "f" operator)."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, group: dist.ProcessGroup) -> Tensor:
        ctx.group = group
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, group=ctx.group)
        return grad, None


def _gathered_rows(param: DTensor, rows: Tensor) -> Tensor:
    """The full tensor's ``rows`` on this rank; the gradient, filled only there, is reduce-scattered back."""
    full = param.redistribute(placements=[Replicate()]).to_local(grad_placements=[Partial()])
    return full.index_select(0, rows)


def _local_linear(module: nn.Linear, x: Tensor) -> Tensor:
    """This rank's output rows of a :class:`FusedColwiseParallel` linear layer for a replicated input x."""
    bias = None if module.bias is None else _gathered_rows(module.bias, module.tp_rows)
    weight = _gathered_rows(module.weight, module.tp_rows)
    return F.linear(_ReplicatedInput.apply(x, module.tp_group), weight, bias)


class FusedColwiseParallel(ParallelStyle):
    """Column-wise (output-dim) tensor parallelism for an ``nn.Linear`` whose output stacks ``pieces`` equal parts.

    Input: the full (replicated) activation, a plain tensor. Output: a plain tensor (..., out_features / tp)
    holding the r-th block of every piece, in order. ``out_features`` must be divisible by ``pieces * tp``.
    Parameters become ``Shard(0)`` DTensors on the tensor-parallel mesh.
    """

    def __init__(self, pieces: int) -> None:
        super().__init__()
        self.pieces = pieces

    def _apply(self, module: nn.Module, device_mesh: DeviceMesh) -> nn.Module:
        if not isinstance(module, nn.Linear):
            raise TypeError(f"FusedColwiseParallel shards nn.Linear layers, not {type(module).__name__}")
        tp, rank = device_mesh.size(), device_mesh.get_local_rank()
        if module.out_features % (self.pieces * tp):
            raise ValueError(
                f"tensor parallel over {tp} ranks needs each of the {self.pieces} fused parts of a "
                f"{module.out_features}-wide projection to split evenly; choose a tp that divides "
                f"{module.out_features // self.pieces} (the heads x head size, or the MLP width)")
        piece = module.out_features // self.pieces
        block = piece // tp
        module.tp_rows = torch.cat([torch.arange(p * piece + rank * block, p * piece + (rank + 1) * block)
                                    for p in range(self.pieces)]).to(module.weight.device)
        for name, param in list(module.named_parameters(recurse=False)):
            sharded = distribute_tensor(param.detach(), device_mesh, [Shard(0)])
            module.register_parameter(name, nn.Parameter(sharded, requires_grad=param.requires_grad))
        module.tp_group = device_mesh.get_group()
        module.forward = MethodType(_local_linear, module)
        return module


def attention_plan() -> dict[str, ParallelStyle]:
    """For an attention mixer with a fused ``in_proj`` ([q | k | v], equal parts) and ``out_proj``: each rank
    keeps whole heads; ``out_proj``'s partial outputs are summed over the group."""
    return {"in_proj": FusedColwiseParallel(3), "out_proj": RowwiseParallel()}


def gated_mlp_plan() -> dict[str, ParallelStyle]:
    """For :class:`~birdie.models.layers.GatedMLP`: ``w12`` ([gate | up]) by fused column sharding, so each rank
    holds matching gate and up units; ``w3`` row-wise over those units."""
    return {"w12": FusedColwiseParallel(2), "w3": RowwiseParallel()}


def replicate_remaining_parameters(model: nn.Module, device_mesh: DeviceMesh) -> None:
    """Make every parameter that no plan sharded (embeddings, norms, the head) a ``Replicate`` DTensor on the
    tensor-parallel mesh, computed on the full inputs of each rank.

    Then every parameter lives on the same mesh, which FSDP2 and ``clip_grad_norm_`` need (a gradient norm over
    parameters on two different meshes fails). Tied weights stay tied.
    """
    replicated: dict[int, nn.Parameter] = {}

    def replicate(_: str, module: nn.Module, mesh: DeviceMesh) -> None:
        for name, param in list(module.named_parameters(recurse=False)):
            if id(param) not in replicated:
                replicated[id(param)] = nn.Parameter(distribute_tensor(param.detach(), mesh, [Replicate()]),
                                                     requires_grad=param.requires_grad)
            module.register_parameter(name, replicated[id(param)])

    def to_dtensor(_: nn.Module, inputs: tuple[Any, ...], mesh: DeviceMesh) -> tuple[Any, ...]:
        return tuple(DTensor.from_local(x, mesh, [Replicate()], run_check=False) if isinstance(x, Tensor) else x
                     for x in inputs)

    def to_local(_: nn.Module, output: Tensor, mesh: DeviceMesh) -> Tensor:
        return output.to_local()

    owners = [module for module in model.modules()
              if any(not isinstance(p, DTensor) for p in module.parameters(recurse=False))]
    for module in owners:
        distribute_module(module, device_mesh, replicate, to_dtensor, to_local)
