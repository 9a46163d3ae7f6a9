"""birdie language models for Hugging Face ``transformers`` (``trust_remote_code=True``).

Written into a directory by ``birdie convert to-hf``; depends only on ``torch`` and ``transformers``. It
re-implements the inference math of birdie's four families (Transformer, Hawk, Gated SSM, SUPRA) in their plain,
one-sequence-per-row form, with birdie's parameter names, so the exported ``model.safetensors`` loads unchanged:

    model = AutoModelForCausalLM.from_pretrained(path, trust_remote_code=True)

Every row is one unpadded sequence starting at position 0. ``forward(..., prefix_mask=...)`` (B, T) marks the
bidirectional prefix of a prefix-LM model (birdie's ``attention_mask == 1``); without it the model is causal.
``generate(ids, prefix_mask=...)`` reads the prompt's prefix bidirectionally and generates causally after it.

Generation keeps what birdie's own cached decoding keeps (:class:`BirdieState`): per layer the scan state of the
forward channels and the last ``conv_width - 1`` convolution inputs (Hawk), the scan state (Gated SSM), the
(H, d, d) float32 linear-attention state (SUPRA), keys and values (Transformer); and the token ids read so far.
It travels in ``generate``'s model kwargs as ``state`` (not as a transformers ``Cache``, whose API changes
within 5.x): ``forward(..., use_cache=True)`` returns it, ``prepare_inputs_for_generation`` feeds only the
unread tokens, and beam search reorders it. A state whose tokens are not the start of ``input_ids`` (a reorder
or a rollback that did not reach it) is dropped and the sequence re-read, so a cache never changes the tokens.

The file is longer than birdie's 400-line guideline because it must be one self-contained module.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from transformers import GenerationMixin, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import CausalLMOutputWithPast

RG_LRU_C = 8.0


class BirdieConfig(PretrainedConfig):
    """``birdie``: the resolved birdie model config (family, widths, per-layer bidirectionality, decays)."""

    model_type = "birdie"

    def __init__(self, birdie: dict | None = None, **kwargs) -> None:
        self.birdie = dict(birdie or {})
        kwargs.setdefault("tie_word_embeddings", False)
        super().__init__(**kwargs)
        if self.birdie:
            self.vocab_size = self.birdie["vocab_size"]
            self.hidden_size = self.birdie["d_model"]
            self.num_hidden_layers = self.birdie["n_layers"]


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        x32 = x.float()
        normed = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return (normed * self.weight.float()).to(x.dtype)


def build_norm(cfg: dict, dim: int) -> nn.Module:
    if cfg["norm"] == "rmsnorm":
        return RMSNorm(dim, cfg["norm_eps"])
    return nn.LayerNorm(dim, eps=cfg["norm_eps"], bias=False)


class GatedMLP(nn.Module):
    def __init__(self, cfg: dict) -> None:
        super().__init__()
        self.activation = cfg["mlp_activation"]
        self.w12 = nn.Linear(cfg["d_model"], 2 * cfg["mlp_width"], bias=False)
        self.w3 = nn.Linear(cfg["mlp_width"], cfg["d_model"], bias=False)

    def forward(self, x: Tensor) -> Tensor:
        gate, up = self.w12(x).chunk(2, dim=-1)
        act = F.silu(gate) if self.activation == "silu" else F.gelu(gate, approximate="tanh")
        return self.w3(act * up)


def rope_frequencies(dim: int, base: float, scaling: dict | None, device, dtype) -> Tensor:
    inv_freq = base ** (-torch.arange(0, dim, 2, device=device, dtype=dtype) / dim)
    if scaling is None:
        return inv_freq
    factor = float(scaling["factor"])
    if scaling["rope_type"] == "linear":
        return inv_freq / factor
    low, high = float(scaling["low_freq_factor"]), float(scaling["high_freq_factor"])
    context = float(scaling["original_max_position_embeddings"])
    wavelength = 2 * math.pi / inv_freq
    scaled = torch.where(wavelength > context / low, inv_freq / factor, inv_freq)
    smooth = (context / wavelength - low) / (high - low)
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    medium = (wavelength >= context / high) & (wavelength <= context / low)
    return torch.where(medium, smoothed, scaled)


def apply_rope(x: Tensor, cfg: dict, start: int) -> Tensor:
    """x (B, T, H, d) at positions start..start+T-1, rotate-half layout."""
    dtype = torch.promote_types(x.dtype, torch.float32)
    inv_freq = rope_frequencies(x.shape[-1], cfg["rope_base"], cfg.get("rope_scaling"), x.device, dtype)
    angles = torch.arange(start, start + x.shape[1], device=x.device, dtype=dtype)[:, None] * inv_freq
    angles = torch.cat((angles, angles), dim=-1)[None, :, None, :]
    wide = x.to(dtype)
    x1, x2 = wide.chunk(2, dim=-1)
    return (wide * angles.cos() + torch.cat((-x2, x1), dim=-1) * angles.sin()).to(x.dtype)


def _split_qkv(in_proj: nn.Linear, x: Tensor, heads: int, kv_heads: int, head: int):
    q, k, v = in_proj(x).split([heads * head, kv_heads * head, kv_heads * head], dim=-1)
    return q, k, v


class Attention(nn.Module):
    """Softmax attention (MHA/GQA, RoPE, optional sliding window, bidirectional prefix on prefix-LM layers)."""

    def __init__(self, cfg: dict, bidirectional: bool) -> None:
        super().__init__()
        self.cfg, self.bidirectional = cfg, bidirectional
        self.heads, self.kv_heads, self.head = cfg["n_heads"], cfg["kv_heads"], cfg["head_size"]
        self.in_proj = nn.Linear(cfg["d_model"], (self.heads + 2 * self.kv_heads) * self.head, bias=False)
        self.out_proj = nn.Linear(self.heads * self.head, cfg["d_model"], bias=False)

    def forward(self, x: Tensor, prefix: Tensor, start: int, past: dict | None) -> tuple[Tensor, dict]:
        """x (B, T, D) at positions start.., after ``past`` (keys/values of positions < start) -> y, new past."""
        batch, length, _ = x.shape
        q, k, v = _split_qkv(self.in_proj, x, self.heads, self.kv_heads, self.head)
        q = apply_rope(q.view(batch, length, self.heads, self.head), self.cfg, start).transpose(1, 2)
        k = apply_rope(k.view(batch, length, self.kv_heads, self.head), self.cfg, start).transpose(1, 2)
        v = v.view(batch, length, self.kv_heads, self.head).transpose(1, 2)
        if past is not None:
            k, v = torch.cat((past["k"], k), dim=2), torch.cat((past["v"], v), dim=2)
        groups = self.heads // self.kv_heads
        keys, values = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)
        query_at = torch.arange(start, start + length, device=x.device)[:, None]
        key_at = torch.arange(start + length, device=x.device)[None, :]
        allowed = key_at <= query_at
        if self.cfg.get("sliding_window"):
            allowed = allowed & (key_at > query_at - self.cfg["sliding_window"])
        allowed = allowed[None]
        if self.bidirectional:  # the prefix is read in the first call only; later tokens are causal
            allowed = allowed | (prefix[:, :, None] & F.pad(prefix, (start, 0))[:, None, :])
        out = F.scaled_dot_product_attention(q, keys, values, attn_mask=allowed[:, None])
        return self.out_proj(out.transpose(1, 2).flatten(2)), {"k": k, "v": v}


class LinearAttention(nn.Module):
    """SUPRA: relu feature map, RoPE, per-head decay gamma^(i-j), GroupNorm per head (quadratic form)."""

    def __init__(self, cfg: dict) -> None:
        super().__init__()
        self.cfg = cfg
        self.heads, self.kv_heads, self.head = cfg["n_heads"], cfg["kv_heads"], cfg["head_size"]
        q_width, kv_width = self.heads * self.head, self.kv_heads * self.head
        self.in_proj = nn.Linear(cfg["d_model"], q_width + 2 * kv_width, bias=False)
        self.out_proj = nn.Linear(q_width, cfg["d_model"], bias=False)
        self._totrain_embed = nn.Linear(q_width, q_width)
        self._totrain_embed_kv = nn.Linear(kv_width, kv_width) if self.kv_heads != self.heads else None
        self._totrain_q_norm = build_norm(cfg, q_width) if cfg["qk_norm"] else None
        self._totrain_k_norm = build_norm(cfg, kv_width) if cfg["qk_norm"] else None
        self._totrain_gn = nn.GroupNorm(self.heads, q_width, eps=1e-5, affine=False)

    def forward(self, x: Tensor, prefix: Tensor, start: int, past: Tensor | None) -> tuple[Tensor, Tensor]:
        """x (B, T, D) at positions start.., after ``past`` (the (B, H, d, d) state after position start - 1)."""
        batch, length, _ = x.shape
        q, k, v = _split_qkv(self.in_proj, x, self.heads, self.kv_heads, self.head)
        q = F.relu(self._totrain_embed(q))
        k = F.relu((self._totrain_embed_kv or self._totrain_embed)(k))
        if self._totrain_q_norm is not None:
            q, k = self._totrain_q_norm(q), self._totrain_k_norm(k)
        q = apply_rope(q.view(batch, length, self.heads, self.head), self.cfg, start).transpose(1, 2)
        k = apply_rope(k.view(batch, length, self.kv_heads, self.head), self.cfg, start).transpose(1, 2)
        k = k * self.head**-0.5
        v = v.view(batch, length, self.kv_heads, self.head).transpose(1, 2)
        groups = self.heads // self.kv_heads
        dtype = torch.promote_types(x.dtype, torch.float32)
        q, k = q.to(dtype), k.repeat_interleave(groups, dim=1).to(dtype)
        v = v.repeat_interleave(groups, dim=1).to(dtype)
        index = torch.arange(length + 1, device=x.device, dtype=dtype)
        distance = index[:-1, None] - index[None, :-1]
        log_decay = torch.tensor(self.cfg["log_decay"], device=x.device, dtype=dtype)[:, None, None]
        weights = torch.where(distance >= 0, (log_decay * distance.clamp(min=0)).exp(), 0.0)  # (H, T, T)
        attended = ((q @ k.transpose(-1, -2)) * weights) @ v  # (B, H, T, d)
        # the state after the last token, sum_j gamma^(T-1-j) k_j^T v_j (+ gamma^T past)
        state = (k * (log_decay[..., 0] * (length - 1 - index[:-1])).exp()[..., None]).transpose(-1, -2) @ v
        if past is not None:  # token t also sees gamma^(t+1) past
            attended = attended + (q @ past) * (log_decay[..., 0] * index[1:]).exp()[..., None]
            state = state + past * (log_decay * length).exp()
        flat = attended.transpose(1, 2).reshape(batch * length, self.heads * self.head)
        return self.out_proj(self._totrain_gn(flat).view(batch, length, -1).to(x.dtype)), state


def _scan(a: Tensor, x: Tensor, resets: Tensor, reverse: bool, initial: Tensor | None = None) -> Tensor:
    """h_t = x_t + (0 if resets_t else a_t) * h_(t -/+ 1): a, x (B, T, W), resets (B, T) or (B, T, W);
    ``initial`` (B, W) is h before the first position (zeros when None)."""
    if resets.dim() == 2:
        resets = resets[..., None]
    state = torch.zeros_like(x[:, 0]) if initial is None else initial
    outputs = [None] * x.shape[1]
    for t in (range(x.shape[1] - 1, -1, -1) if reverse else range(x.shape[1])):
        state = torch.where(resets[:, t], 0.0, a[:, t]) * state + x[:, t]
        outputs[t] = state
    return torch.stack(outputs, dim=1)


def _resets(prefix: Tensor, continuing: bool) -> tuple[Tensor, Tensor]:
    """(forward resets, reverse resets), each (B, T): the row start (unless ``continuing`` a state); everywhere
    the prefix does not continue."""
    forward = torch.zeros_like(prefix)
    forward[:, 0] = not continuing
    flows = torch.zeros_like(prefix)
    flows[:, :-1] = prefix[:, :-1] & prefix[:, 1:]
    return forward, ~flows


def _bidirectional_scan(a: Tensor, x: Tensor, prefix: Tensor, n_reverse: int, initial: Tensor | None) -> Tensor:
    """Forward channels from ``initial`` (B, n_forward) or zeros; the last ``n_reverse`` right to left over the
    prefix only."""
    forward_resets, reverse_resets = _resets(prefix, initial is not None)
    n_forward = x.shape[-1] - n_reverse
    h = _scan(a[..., :n_forward], x[..., :n_forward], forward_resets, reverse=False, initial=initial)
    if n_reverse == 0:
        return h
    return torch.cat((h, _scan(a[..., n_forward:], x[..., n_forward:], reverse_resets, reverse=True)), dim=-1)


class HawkMixer(nn.Module):
    """Hawk's recurrent block: in_proj -> causal depthwise conv -> RG-LRU, times a GeLU gate -> out_proj."""

    def __init__(self, cfg: dict, bidirectional: bool) -> None:
        super().__init__()
        width, heads = cfg["recurrent_width"], cfg["n_heads"]
        self.width, self.heads, self.conv_width = width, heads, cfg["conv_width"]
        self.n_reverse = width // 2 if bidirectional else 0
        block = width // heads
        self.in_proj = nn.Linear(cfg["d_model"], 2 * width)
        self.conv_weight = nn.Parameter(torch.empty(self.conv_width, width))
        self.conv_bias = nn.Parameter(torch.zeros(width))
        self.gate_weight = nn.Parameter(torch.empty(2, heads, block, block))
        self.gate_bias = nn.Parameter(torch.zeros(2 * width))
        self.decay_param = nn.Parameter(torch.empty(width))
        self.out_proj = nn.Linear(width, cfg["d_model"])

    def forward(self, x: Tensor, prefix: Tensor, start: int, past: dict | None) -> tuple[Tensor, dict]:
        """x (B, T, D) after ``past`` (forward-channel state ``h`` and the last conv inputs ``conv``) -> y, past."""
        dtype = torch.promote_types(x.dtype, torch.float32)
        batch, length, _ = x.shape
        u, gate = self.in_proj(x).to(dtype).chunk(2, dim=-1)
        lags = self.conv_width - 1
        history = u.new_zeros(batch, lags, self.width) if past is None else past["conv"]
        padded = torch.cat((history, u), dim=1)
        conv = self.conv_bias.to(dtype).expand_as(u)
        for lag in range(self.conv_width):
            start = self.conv_width - 1 - lag
            conv = conv + padded[:, start: start + length] * self.conv_weight[lag].to(dtype)
        blocks = conv.unflatten(-1, (self.heads, -1))
        gates = torch.einsum("...hi,ghij->g...hj", blocks, self.gate_weight.to(dtype))
        gates = torch.sigmoid(gates + self.gate_bias.to(dtype).view(2, 1, 1, self.heads, -1))
        recurrence_gate, input_gate = gates.flatten(-2).unbind(0)
        log_a = -RG_LRU_C * recurrence_gate * F.softplus(self.decay_param.to(dtype))
        initial = None if past is None else past["h"]
        forward_resets, reverse_resets = _resets(prefix, initial is not None)
        n_forward = self.width - self.n_reverse
        channel_resets = torch.cat((forward_resets[..., None].expand(-1, -1, n_forward),
                                    reverse_resets[..., None].expand(-1, -1, self.n_reverse)), dim=-1)
        multiplier = torch.where(channel_resets, 1.0, torch.sqrt(1.0 - torch.exp(2.0 * log_a)))
        h = _bidirectional_scan(torch.exp(log_a), conv * input_gate * multiplier, prefix, self.n_reverse, initial)
        y = self.out_proj((F.gelu(gate, approximate="tanh") * h).to(x.dtype))
        return y, {"h": h[:, -1, :n_forward], "conv": padded[:, padded.shape[1] - lags:]}


class GatedSSMMixer(nn.Module):
    """Birdie's Gated SSM: h_t = sigmoid(W_f x) h_(t-1) + sigmoid(W_i x) z; y = W_o (gelu(W_g x) h)."""

    def __init__(self, cfg: dict, bidirectional: bool) -> None:
        super().__init__()
        self.width = cfg["recurrent_width"]
        self.n_reverse = self.width // 2 if bidirectional else 0
        self.in_proj = nn.Linear(cfg["d_model"], 3 * self.width)
        self.forget_proj = nn.Linear(cfg["d_model"], self.width)
        self.out_proj = nn.Linear(self.width, cfg["d_model"])

    def forward(self, x: Tensor, prefix: Tensor, start: int, past: Tensor | None) -> tuple[Tensor, Tensor]:
        """x (B, T, D) after ``past`` (the forward channels' state (B, n_forward)) -> y, new state."""
        dtype = torch.promote_types(x.dtype, torch.float32)
        input_gate, z, output_gate = self.in_proj(x).to(dtype).chunk(3, dim=-1)
        forget = torch.sigmoid(self.forget_proj(x).to(dtype))
        h = _bidirectional_scan(forget, torch.sigmoid(input_gate) * z, prefix, self.n_reverse, past)
        y = self.out_proj((F.gelu(output_gate, approximate="tanh") * h).to(x.dtype))
        return y, h[:, -1, : self.width - self.n_reverse]


class Block(nn.Module):
    def __init__(self, cfg: dict, index: int) -> None:
        super().__init__()
        bidirectional = index in cfg["bidirectional"]
        family = cfg["family"]
        self.attention_norm = build_norm(cfg, cfg["d_model"])
        if family == "transformer":
            self.attention = Attention(cfg, bidirectional)
        elif family == "supra":
            self.attention = LinearAttention(cfg)
        elif family == "hawk":
            self.attention = HawkMixer(cfg, bidirectional)
        else:
            self.attention = GatedSSMMixer(cfg, bidirectional)
        self.ffn_norm = build_norm(cfg, cfg["d_model"]) if cfg["has_mlp"] else None
        self.feed_forward = GatedMLP(cfg) if cfg["has_mlp"] else None

    def forward(self, x: Tensor, prefix: Tensor, start: int, past: Any) -> tuple[Tensor, Any]:
        mixed, present = self.attention(self.attention_norm(x), prefix, start, past)
        x = x + mixed
        if self.feed_forward is not None:
            x = x + self.feed_forward(self.ffn_norm(x))
        return x, present


def _select(value: Any, index: Tensor) -> Any:
    """``value`` (a tensor or a dict of tensors, batch first) with rows ``index``."""
    if isinstance(value, dict):
        return {key: item.index_select(0, index) for key, item in value.items()}
    return value.index_select(0, index)


class BirdieState:
    """What cached generation keeps: ``layers`` (one state per layer, see the module docstring) and ``tokens``
    (B, L), the ids read so far (position ``L`` is the next)."""

    def __init__(self, layers: list[Any], tokens: Tensor) -> None:
        self.layers, self.tokens = layers, tokens

    @property
    def length(self) -> int:
        return self.tokens.shape[1]

    def continues(self, input_ids: Tensor) -> bool:
        """Whether ``input_ids`` (B, T) are the ids read so far followed by at least one new id."""
        length = self.length
        return input_ids.shape[1] > length and torch.equal(input_ids[:, :length], self.tokens)

    def select(self, index: Tensor) -> "BirdieState":
        """The state of rows ``index`` (B',), e.g. beam search's reordering."""
        return BirdieState([_select(layer, index) for layer in self.layers], self.tokens.index_select(0, index))


@dataclass
class BirdieOutput(CausalLMOutputWithPast):
    """``CausalLMOutputWithPast`` plus ``state``, the :class:`BirdieState` after the input (``use_cache=True``)."""

    state: BirdieState | None = None


class BirdieForCausalLM(PreTrainedModel, GenerationMixin):
    """A birdie model with birdie's parameter names (``tok_embeddings``, ``layers.{i}``, ``norm``, ``output``)."""

    config_class = BirdieConfig
    base_model_prefix = ""

    def __init__(self, config: BirdieConfig) -> None:
        super().__init__(config)
        cfg = config.birdie
        self.tok_embeddings = nn.Embedding(cfg["vocab_size"], cfg["d_model"])
        self.layers = nn.ModuleList(Block(cfg, index) for index in range(cfg["n_layers"]))
        self.norm = build_norm(cfg, cfg["d_model"])
        self.output = nn.Linear(cfg["d_model"], cfg["vocab_size"], bias=False)
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        """Weights come from the checkpoint; nothing is initialised here."""

    def get_input_embeddings(self) -> nn.Embedding:
        return self.tok_embeddings

    def get_output_embeddings(self) -> nn.Linear:
        return self.output

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None, prefix_mask: Tensor | None = None,
                labels: Tensor | None = None, state: BirdieState | None = None, use_cache: bool | None = None,
                **kwargs) -> BirdieOutput:
        """input_ids (B, T) -> logits (B, T, V). ``attention_mask`` may only mark padding-free rows (all ones);
        ``prefix_mask`` (B, T) marks the bidirectional prefix; ``labels`` are shifted inside (HF convention).
        With ``state`` the ids continue the sequence it read (causally); ``use_cache=True`` returns the new state."""
        if attention_mask is not None and not bool(attention_mask.bool().all()):
            raise ValueError("birdie's exported models take unpadded rows: attention_mask must be all ones")
        prefix = torch.zeros_like(input_ids, dtype=torch.bool) if prefix_mask is None else prefix_mask.bool()
        if state is not None and bool(prefix.any()):
            raise ValueError("prefix_mask marks the prefix of a sequence's first call; a continued state is causal")
        start = 0 if state is None else state.length
        pasts = [None] * len(self.layers) if state is None else state.layers
        x = self.tok_embeddings(input_ids)
        presents = []
        for block, past in zip(self.layers, pasts):
            x, present = block(x, prefix, start, past)
            presents.append(present)
        logits = self.output(self.norm(x))
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), labels[:, 1:].flatten(), ignore_index=-100)
        if not use_cache:
            return BirdieOutput(loss=loss, logits=logits)
        tokens = input_ids if state is None else torch.cat((state.tokens, input_ids), dim=1)
        return BirdieOutput(loss=loss, logits=logits, state=BirdieState(presents, tokens))

    @classmethod
    def _supports_default_dynamic_cache(cls) -> bool:
        """The state is not a transformers ``Cache``: ``generate`` must not build one for this model."""
        return False

    def prepare_inputs_for_generation(self, input_ids: Tensor, attention_mask: Tensor | None = None,
                                      prefix_mask: Tensor | None = None, state: BirdieState | None = None,
                                      use_cache: bool | None = None, **kwargs) -> dict[str, Any]:
        """The ids the model has not read yet. Without a (matching) state: the whole sequence, its prefix as
        ``prefix_mask`` marks it (generated positions are causal)."""
        if state is not None and state.continues(input_ids):
            return {"input_ids": input_ids[:, state.length:], "state": state, "use_cache": use_cache}
        if prefix_mask is not None:
            prefix_mask = F.pad(prefix_mask.bool(), (0, input_ids.shape[1] - prefix_mask.shape[1]))
        return {"input_ids": input_ids, "attention_mask": attention_mask, "prefix_mask": prefix_mask,
                "use_cache": use_cache}

    def _update_model_kwargs_for_generation(self, outputs: BirdieOutput, model_kwargs: dict, *args, **kwargs) -> dict:
        """transformers' bookkeeping, plus the new state for the next step."""
        model_kwargs = super()._update_model_kwargs_for_generation(outputs, model_kwargs, *args, **kwargs)
        model_kwargs["state"] = outputs.state
        return model_kwargs

    def _reorder_cache(self, state: BirdieState | None, beam_idx: Tensor) -> BirdieState | None:
        """Beam search: the state of the beams it keeps (rows ``beam_idx``)."""
        return None if state is None else state.select(beam_idx.to(state.tokens.device))
