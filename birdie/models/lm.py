"""``LanguageModel``: the shell every family shares.

Embedding -> ``n_layers`` pre-norm residual blocks (``x += mixer(norm(x))``, then ``x += mlp(norm(x))`` when the
family has an MLP) -> final norm -> output head (tied or not). The mixer is the only family-specific part
(:mod:`birdie.models.mixer`). Module names follow open_lm (``tok_embeddings``, ``layers.{i}.attention``,
``attention_norm``, ``ffn_norm``, ``feed_forward.w12``/``w3``, ``norm``, ``output``) so its checkpoints load as is;
``attention`` holds whatever mixer the family uses.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from birdie.models.config import ModelConfig
from birdie.models.generation import generate as cached_generate
from birdie.models.layers import GatedMLP, build_norm
from birdie.models.mixer import SequenceInfo
from birdie.models.registry import Family, get_family

IGNORE_INDEX = -100


class Block(nn.Module):
    """One pre-norm residual block: mixer, then (if the family has one) the gated MLP."""

    def __init__(self, config: ModelConfig, layer_index: int, family: Family) -> None:
        super().__init__()
        self.attention_norm = build_norm(config)
        self.attention = family.mixer(config, layer_index)
        self.ffn_norm = build_norm(config) if family.has_mlp else None
        self.feed_forward = GatedMLP(config) if family.has_mlp else None

    def _add_mlp(self, x: Tensor) -> Tensor:
        if self.feed_forward is None:
            return x
        return x + self.feed_forward(self.ffn_norm(x))

    def forward(self, x: Tensor, info: SequenceInfo) -> tuple[Tensor, Any]:
        """x (B, T, D) -> (B, T, D) and the mixer's state after each row's last position."""
        mixed, state = self.attention(self.attention_norm(x), info)
        return self._add_mlp(x + mixed), state

    def step(self, x: Tensor, position: Tensor, state: Any) -> tuple[Tensor, Any]:
        """One token: x (B, D), position (B,) -> (B, D) and the updated state."""
        mixed, state = self.attention.step(self.attention_norm(x), position, state)
        return self._add_mlp(x + mixed), state


class LanguageModel(nn.Module):
    """A language model of any registered family, built from a :class:`ModelConfig`.

    ``model(**batch)`` takes the pipeline's batch (``docs/architecture.md``) and returns ``(logits, loss)``.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        family = get_family(config.family)
        self.config = config
        self.tok_embeddings = nn.Embedding(config.vocab_size, config.d_model)
        self.layers = nn.ModuleList(Block(config, index, family) for index in range(config.n_layers))
        self.norm = build_norm(config)
        self.output = nn.Linear(config.d_model, config.vocab_size, bias=False)
        self._init_shell_weights()
        if config.tie_embeddings:
            self.output.weight = self.tok_embeddings.weight

    def _init_shell_weights(self) -> None:
        """Normal(0, init_std) for embeddings, MLP input and head; the MLP output is scaled down by
        sqrt(2 * n_layers) so the residual stream's variance stays flat with depth. Mixers init themselves."""
        std = self.config.init_std
        nn.init.normal_(self.tok_embeddings.weight, std=std)
        nn.init.normal_(self.output.weight, std=std)
        for block in self.layers:
            if block.feed_forward is not None:
                nn.init.normal_(block.feed_forward.w12.weight, std=std)
                nn.init.normal_(block.feed_forward.w3.weight, std=std / math.sqrt(2 * self.config.n_layers))

    def num_parameters(self, exclude_embeddings: bool = False) -> int:
        """Parameter count (shared tensors once); ``exclude_embeddings`` leaves out the input embedding."""
        params = {id(p): p for p in self.parameters()}
        if exclude_embeddings:
            params.pop(id(self.tok_embeddings.weight), None)
        return sum(p.numel() for p in params.values())

    def no_weight_decay(self) -> set[str]:
        """Full names of the parameters the optimizer must not decay beyond norms, embeddings and biases: each
        layer's mixer's ``no_weight_decay`` (e.g. ``layers.0.attention.gate_weight`` for Hawk)."""
        return {f"layers.{index}.attention.{name}" for index, block in enumerate(self.layers)
                for name in block.attention.no_weight_decay}

    def tp_plan(self) -> dict[str, Any] | None:
        """``{submodule name: ParallelStyle}`` for one block (``birdie.train.distributed`` applies it to each), or
        None when the family's mixer has no tensor-parallel layout (only the Transformer has one)."""
        mixer_plan = self.layers[0].attention.tp_plan()
        if mixer_plan is None:
            return None
        plan = {f"attention.{name}": style for name, style in mixer_plan.items()}
        if self.layers[0].feed_forward is not None:
            from birdie.models.tensor_parallel import gated_mlp_plan

            plan |= {f"feed_forward.{name}": style for name, style in gated_mlp_plan().items()}
        return plan

    def forward(
        self,
        input_ids: Tensor,
        label_ids: Tensor | None = None,
        attention_mask: Tensor | None = None,
        segment_ids: Tensor | None = None,
        position_ids: Tensor | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        """Run a (packed) batch.

        Args:
            input_ids: (B, T) token ids.
            label_ids: (B, T) next-token targets aligned with positions (no shift); -100 = no loss.
            attention_mask: (B, T); 1 = bidirectional prefix position, anything else causal. None: all causal.
            segment_ids: (B, T); 1..k per packed example, 0 = padding. None: one segment per row.
            position_ids: (B, T); restart at 0 in every segment. None: derived from ``segment_ids``.

        Returns:
            logits (B, T, vocab_size) and the loss: mean cross-entropy over ``label_ids != -100`` plus
            ``config.z_loss * mean(logsumexp ** 2)`` over the same positions (None without ``label_ids``).
        """
        info = SequenceInfo.from_batch(input_ids, attention_mask, segment_ids, position_ids)
        if label_ids is not None:
            self._check_labels(label_ids, input_ids)
        hidden, _ = self.hidden_states(input_ids, info)
        logits = self.output(hidden)
        if label_ids is None:
            return logits, None
        return logits, language_model_loss(logits, label_ids, self.config.z_loss)

    def hidden_states(self, input_ids: Tensor, info: SequenceInfo) -> tuple[Tensor, list[Any]]:
        """Final-normed hidden states (B, T, D) and each layer's state after the last position of every row."""
        self._check_token_ids(input_ids)
        x = self.tok_embeddings(input_ids)
        states = []
        for block in self.layers:
            x, state = block(x, info)
            states.append(state)
        return self.norm(x), states

    def step(self, token_ids: Tensor, position: Tensor, states: list[Any]) -> tuple[Tensor, list[Any]]:
        """Decode one token per row: token_ids (B,), position (B,) -> logits (B, vocab_size), new states."""
        self._check_token_ids(token_ids)
        x = self.tok_embeddings(token_ids)
        new_states = []
        for block, state in zip(self.layers, states):
            x, state = block.step(x, position, state)
            new_states.append(state)
        return self.output(self.norm(x)), new_states

    #: ``model.generate(prompt_ids, max_new_tokens, temperature, top_k, top_p, eos, prefix_len, generator)``;
    #: see :func:`birdie.models.generation.generate`.
    generate = cached_generate

    def _check_labels(self, label_ids: Tensor, input_ids: Tensor) -> None:
        if label_ids.shape != input_ids.shape:
            raise ValueError(
                f"label_ids has shape {tuple(label_ids.shape)} but input_ids has {tuple(input_ids.shape)}"
            )
        targets = label_ids[label_ids != IGNORE_INDEX]
        if targets.numel() and (int(targets.min()) < 0 or int(targets.max()) >= self.config.vocab_size):
            raise ValueError(
                f"label_ids hold targets in [{int(targets.min())}, {int(targets.max())}], outside the model's "
                f"vocabulary [0, {self.config.vocab_size}); only -100 marks a position without loss"
            )

    def _check_token_ids(self, ids: Tensor) -> None:
        if ids.dtype not in (torch.int64, torch.int32):
            raise TypeError(f"token ids must be int64 or int32; got {ids.dtype}")
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= self.config.vocab_size):
            raise ValueError(
                f"token ids span [{int(ids.min())}, {int(ids.max())}] but the model's vocab_size is "
                f"{self.config.vocab_size}; build the model with vocab_size >= the tokenizer's vocab_size"
            )


def token_loss_sum(logits: Tensor, label_ids: Tensor, z_loss: float = 0.0) -> Tensor:
    """Sum over target positions of cross-entropy (+ ``z_loss * logsumexp(logits) ** 2``), in fp32 (fp64 for a
    float64 model).

    logits (B, T, V), label_ids (B, T) with -100 = no loss -> scalar. A batch without any target gives a zero that
    still depends on the logits, so gradient accumulation over micro-batches that hold only context keeps working.
    The trainer divides this by the target count of the whole global batch (see :mod:`birdie.train.step`).
    """
    keep = label_ids != IGNORE_INDEX
    picked = logits[keep]
    picked = picked.to(torch.promote_types(picked.dtype, torch.float32))
    if not picked.numel():
        return logits.sum() * 0.0
    total = F.cross_entropy(picked, label_ids[keep].long(), reduction="sum")
    if z_loss:
        total = total + z_loss * torch.logsumexp(picked, dim=-1).pow(2).sum()
    return total


def language_model_loss(logits: Tensor, label_ids: Tensor, z_loss: float = 0.0) -> Tensor:
    """Mean over ``label_ids != -100`` of :func:`token_loss_sum`'s per-token loss (0, still attached, without
    targets)."""
    targets = (label_ids != IGNORE_INDEX).sum().clamp(min=1)
    return token_loss_sum(logits, label_ids, z_loss) / targets
