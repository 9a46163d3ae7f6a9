"""PPO rollouts: prompts rendered for generation, cached sampling, per-token log-probs, values and entropy.

Copies of a prompt are adjacent (EasyLM's ``jnp.repeat``) and are generated together: the ``rollouts_per_prompt``
copies share one length, so birdie's cached ``model.generate`` (KV cache for the Transformer, recurrent state for
Hawk, Gated SSM and SUPRA) runs them as one batch without padding. A response is ``(r, N)`` tokens; its mask is 1
up to and including the first EOS and 0 after it (``generate`` fills finished rows with EOS).
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from birdie.finetune.chat import chat_segments, check_messages, encode_segments


class PromptError(ValueError):
    """A prompt that cannot be rolled out (empty, or too long for the context)."""


def prompt_ids(messages: Sequence[dict[str, str]], tokenizer: Any, where: str = "prompt") -> np.ndarray:
    """Token ids (int64, (P,)) of a conversation rendered in the Tulu format up to the open assistant turn:
    ``<s><|user|>\\n...\\n<|assistant|>\\n``, exactly the context SFT trained the answer after."""
    checked = check_messages(list(messages) + [{"role": "assistant", "content": "x"}], where)
    # The rendering of the conversation answered with "x" ends [..., context + assistant header, "x", EOS].
    return encode_segments(chat_segments(checked)[:-2], tokenizer)[0]


def check_prompts(prompts: Sequence[np.ndarray], max_new_tokens: int, context: int | None) -> None:
    """Raise :class:`PromptError` naming the first prompt that is empty or leaves no room for the response."""
    if not prompts:
        raise PromptError("no prompts: give --data a JSONL file with 'messages' (ending in a user turn) or 'prompt'")
    for index, ids in enumerate(prompts):
        if len(ids) == 0:
            raise PromptError(f"prompt {index} is empty; remove it from the data")
        if context is not None and len(ids) + max_new_tokens > context:
            raise PromptError(f"prompt {index} has {len(ids)} tokens; with ppo.max_new_tokens={max_new_tokens} it "
                              f"exceeds the model's context of {context}: shorten the prompt or lower max_new_tokens")


def response_mask(responses: Tensor, eos: int) -> Tensor:
    """(B, N) float mask: 1 up to and including each row's first ``eos``, 0 after it."""
    is_eos = (responses == eos).long()
    before_or_at_first = (is_eos.cumsum(dim=1) - is_eos) == 0
    return before_or_at_first.float()


def has_eos(responses: Tensor, eos: int) -> Tensor:
    """(B,) bool: whether the row produced ``eos`` (a row cut at ``max_new_tokens`` has none)."""
    return (responses == eos).any(dim=1)


@contextlib.contextmanager
def gathered(model: nn.Module) -> Iterator[None]:
    """Keep an FSDP2-sharded ``model`` unsharded (full parameters on every rank) inside the block; a plain model is
    left alone. Cached generation calls ``hidden_states`` and the blocks' ``step``, which FSDP's forward hooks do
    not see, so the parameters are gathered once here, kept through the blocks' forwards, and resharded after.
    ``model`` must be the FSDP root."""
    from torch.distributed.fsdp import FSDPModule

    modules = [module for module in model.modules() if isinstance(module, FSDPModule)]
    if modules:
        # FSDP2 initialises lazily from the first forward it sees; the blocks' forwards below must not be first
        # (each would make itself a root), and there is no public hook for this
        modules[0]._get_fsdp_state()._lazy_init()
    for module in modules:
        module.unshard()
        module.set_reshard_after_forward(False, recurse=False)
    try:
        yield
    finally:
        for module in modules:
            module.reshard()
            module.set_reshard_after_forward(module is not model, recurse=False)


@torch.no_grad()
def sample(policy: nn.Module, prompt: Tensor, copies: int, max_new_tokens: int, temperature: float,
           top_p: float | None, eos: int, generator: torch.Generator | None) -> Tensor:
    """``copies`` responses (copies, N) to one prompt (P,) with the policy's cached generation; N may be
    shorter than ``max_new_tokens`` when every copy stopped early. Responses are right-padded with ``eos``
    to ``max_new_tokens`` so every group has one width."""
    batch = prompt[None].expand(copies, -1)
    out = policy.generate(batch, max_new_tokens, temperature=temperature, top_p=top_p, eos=eos,
                          generator=generator)
    if out.shape[1] < max_new_tokens:
        out = torch.cat([out, out.new_full((copies, max_new_tokens - out.shape[1]), eos)], dim=1)
    return out


def response_logits(model: nn.Module, prompt: Tensor, responses: Tensor) -> Tensor:
    """Logits (B, N, V) predicting each response token: one parallel forward over ``prompt + response`` read at
    positions ``P-1 .. P+N-2`` (the same positions EasyLM reads)."""
    rows = torch.cat([prompt[None].expand(responses.shape[0], -1), responses], dim=1)
    logits, _ = model(rows[:, :-1])
    return logits[:, prompt.shape[0] - 1:].float()


def token_logps(logits: Tensor, responses: Tensor, temperature: float = 1.0) -> Tensor:
    """(B, N) log-probabilities of ``responses`` under ``logits / temperature`` (TRL divides by the sampling
    temperature; EasyLM uses 1)."""
    return torch.log_softmax(logits / temperature, dim=-1).gather(-1, responses[..., None]).squeeze(-1)


def entropy(logits: Tensor) -> Tensor:
    """(B, N) entropy of each next-token distribution."""
    logp = torch.log_softmax(logits, dim=-1)
    return -(logp.exp() * logp).sum(-1)


class ValueModel(nn.Module):
    """The critic: a language-model trunk and a ``Linear(d_model, 1)`` head read at every position (EasyLM's
    ``FlaxLLaMAForTokenRegression``). ``forward(ids (B, T)) -> (B, T)`` values."""

    def __init__(self, trunk: nn.Module, head: nn.Linear) -> None:
        super().__init__()
        self.trunk, self.head = trunk, head

    @classmethod
    def from_reward_model(cls, reward_model: nn.Module) -> "ValueModel":
        """A trainable copy of a (possibly frozen) :class:`~birdie.finetune.reward_model.RewardModel` (EasyLM's
        default initialisation)."""
        import copy

        clone = copy.deepcopy(reward_model).requires_grad_(True)
        return cls(clone.lm, clone.score_head)

    @classmethod
    def from_policy(cls, policy: nn.Module) -> "ValueModel":
        """A copy of the policy's trunk with a small random head (as a fresh reward-model head)."""
        import copy

        trunk = copy.deepcopy(policy)
        trunk.output = nn.Identity()
        head = nn.Linear(trunk.config.d_model, 1, bias=False)
        nn.init.normal_(head.weight, std=trunk.config.init_std)
        return cls(trunk, head)

    @property
    def layers(self) -> nn.ModuleList:
        """The trunk's blocks (FSDP2 shards per block)."""
        return self.trunk.layers

    def forward(self, input_ids: Tensor) -> Tensor:
        from birdie.models.mixer import SequenceInfo

        info = SequenceInfo.from_batch(input_ids, None, None, None)
        hidden, _ = self.trunk.hidden_states(input_ids, info)
        return self.head(hidden).squeeze(-1).float()

    def response_values(self, prompt: Tensor, responses: Tensor) -> Tensor:
        """(B, N) values at the positions predicting each response token."""
        rows = torch.cat([prompt[None].expand(responses.shape[0], -1), responses], dim=1)
        return self(rows[:, :-1])[:, prompt.shape[0] - 1:]

