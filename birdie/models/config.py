"""``ModelConfig``: every architectural choice of a language model, validated, JSON round-trippable.

One dataclass serves every family; fields a family does not read are ignored by it (``state_dim`` means nothing to
a Transformer). Family-specific extras that have no field here go in ``options``, which the family's mixer validates.
``to_dict``/``from_dict`` give the ``config.json`` written next to exported weights.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Mapping

from birdie.checks import check, is_int

NORMS = ("rmsnorm", "layernorm")
MLP_ACTIVATIONS = ("silu", "gelu_tanh")
BIDIRECTIONAL_PATTERNS = ("none", "all", "alternate")
SUPRA_DECAYS = ("alibi", "retnet", "none")
#: RoPE frequency scalings and the keys each needs (the names Hugging Face configs use).
ROPE_SCALINGS: dict[str, tuple[str, ...]] = {
    "linear": ("factor",),
    "llama3": ("factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"),
}


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of a :class:`~birdie.models.lm.LanguageModel`.

    Attributes:
        family: registered mixer family: ``transformer``, ``supra``, ``hawk``, ``gated_ssm`` (or your own).
        vocab_size: rows of the embedding and the output head; must cover the tokenizer's ``vocab_size``.
        d_model: width of the residual stream.
        n_layers: number of residual blocks.
        n_heads: attention / linear-attention heads (Hawk: diagonal blocks of its gates).
        n_kv_heads: key/value heads for grouped-query attention; ``None`` = ``n_heads`` (plain MHA).
        head_dim: per-head width; ``None`` = ``d_model // n_heads`` (must divide evenly then).
        mlp_hidden: hidden width of the gated MLP; ``None`` = 8/3 * d_model rounded up to ``mlp_multiple_of``.
            Families without an MLP (Gated SSM) ignore it.
        mlp_multiple_of: rounding for the default ``mlp_hidden`` (open_lm uses 256).
        mlp_activation: ``silu`` (SwiGLU) or ``gelu_tanh`` (GeGLU, Hawk).
        state_dim: recurrent width (Hawk's RG-LRU width, the Gated SSM's N); ``None`` = ``d_model``.
        conv_width: temporal convolution width of Hawk's recurrent block.
        norm: ``rmsnorm`` or ``layernorm`` (gain only, no bias; open_lm's ``gain_only_lp_layer_norm``).
        norm_eps: epsilon of every norm.
        rope_base: RoPE base frequency (10,000 open_lm; 250,000 the Birdie Transformer).
        rope_scaling: ``None`` or ``{"rope_type": "linear" | "llama3", ...}`` (keys as in Hugging Face configs, see
            :data:`ROPE_SCALINGS`): rescaled rotary frequencies of models converted from Llama 3 / linear scaling.
        sliding_window: Transformer: a query attends to at most this many most recent keys (itself included;
            Mistral's ``sliding_window``); ``None`` = unbounded.
        tie_embeddings: share the input embedding with the output head.
        bidirectional_layers: which layers give prefix positions (``attention_mask == 1``) a view of later prefix
            tokens: ``"none"`` (causal model), ``"all"`` (prefix-LM Transformer), ``"alternate"`` (layers 0, 2,
            4, ... as in the paper's recurrent models) or an explicit tuple of layer indices.
        qk_norm: SUPRA: normalise the feature-mapped q and k (open_lm ``qk_norm``).
        decay: SUPRA per-head decay: ``alibi`` (open_lm default), ``retnet`` or ``none``.
        chunk_size: SUPRA chunk length of the parallel form.
        z_loss: coefficient of the z-loss ``mean(logsumexp(logits) ** 2)`` over target positions; 0 disables.
        init_std: standard deviation of the shell's weight init (embeddings, MLP, head).
        max_seq_len: the sequence length the preset is meant for (informational; RoPE needs no table).
        options: family-specific extras, validated by that family's mixer.
    """

    family: str
    vocab_size: int
    d_model: int
    n_layers: int
    n_heads: int = 1
    n_kv_heads: int | None = None
    head_dim: int | None = None
    mlp_hidden: int | None = None
    mlp_multiple_of: int = 256
    mlp_activation: str = "silu"
    state_dim: int | None = None
    conv_width: int = 4
    norm: str = "rmsnorm"
    norm_eps: float = 1e-6
    rope_base: float = 10_000.0
    rope_scaling: Mapping[str, Any] | None = None
    sliding_window: int | None = None
    tie_embeddings: bool = False
    bidirectional_layers: str | tuple[int, ...] = "none"
    qk_norm: bool = False
    decay: str = "alibi"
    chunk_size: int = 64
    z_loss: float = 0.0
    init_std: float = 0.02
    max_seq_len: int = 2048
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check(self, "family", isinstance(self.family, str) and self.family != "", "must be a non-empty family name")
        for name in ("vocab_size", "d_model", "n_layers", "n_heads", "mlp_multiple_of", "conv_width", "chunk_size",
                     "max_seq_len"):
            check(self, name, _positive_int(getattr(self, name)), "must be a positive integer")
        for name in ("n_kv_heads", "head_dim", "mlp_hidden", "state_dim", "sliding_window"):
            value = getattr(self, name)
            check(self, name, value is None or _positive_int(value), "must be a positive integer (or None)")
        check(self, "n_kv_heads", self.n_heads % self.kv_heads == 0,
              f"must divide n_heads={self.n_heads} (grouped-query attention)")
        check(self, "d_model", self.head_dim is not None or self.d_model % self.n_heads == 0,
              f"is not divisible by n_heads={self.n_heads}; set head_dim explicitly")
        check(self, "head_dim", self.head_size % 2 == 0,
              f"gives head size {self.head_size}, which must be even for RoPE")
        for name, choices in (("mlp_activation", MLP_ACTIVATIONS), ("norm", NORMS), ("decay", SUPRA_DECAYS)):
            check(self, name, getattr(self, name) in choices, f"must be one of {list(choices)}")
        for name in ("norm_eps", "rope_base", "init_std"):
            value = getattr(self, name)
            check(self, name, isinstance(value, (int, float)) and value > 0, "must be a positive number")
        check(self, "z_loss", isinstance(self.z_loss, (int, float)) and self.z_loss >= 0, "must be >= 0")
        self._validate_bidirectional()
        self._validate_rope_scaling()
        check(self, "sliding_window", self.sliding_window is None or self.family == "transformer",
              f"is a Transformer option; family {self.family!r} has no attention window (use None)")
        object.__setattr__(self, "options", dict(self.options))

    def _validate_rope_scaling(self) -> None:
        scaling = self.rope_scaling
        if scaling is None:
            return
        kind = dict(scaling).get("rope_type")
        check(self, "rope_scaling", kind in ROPE_SCALINGS,
              f"rope_type={kind!r} must be one of {list(ROPE_SCALINGS)}")
        missing = [key for key in ROPE_SCALINGS[kind] if not isinstance(scaling.get(key), (int, float))]
        check(self, "rope_scaling", not missing, f"({kind}) needs numeric {missing}")
        object.__setattr__(self, "rope_scaling", dict(scaling))

    def _validate_bidirectional(self) -> None:
        pattern = self.bidirectional_layers
        if isinstance(pattern, str):
            check(self, "bidirectional_layers", pattern in BIDIRECTIONAL_PATTERNS,
                  f"must be one of {list(BIDIRECTIONAL_PATTERNS)} or a tuple of layer indices")
            return
        layers = tuple(pattern)
        bad = [i for i in layers if not is_int(i) or not 0 <= i < self.n_layers]
        check(self, "bidirectional_layers", not bad, f"has {bad}, not layer indices in [0, {self.n_layers})")
        object.__setattr__(self, "bidirectional_layers", tuple(sorted(set(layers))))

    @property
    def kv_heads(self) -> int:
        """Key/value heads (``n_kv_heads`` or ``n_heads``)."""
        return self.n_kv_heads or self.n_heads

    @property
    def head_size(self) -> int:
        """Per-head width (``head_dim`` or ``d_model // n_heads``)."""
        return self.head_dim or self.d_model // self.n_heads

    @property
    def mlp_width(self) -> int:
        """Hidden width of the gated MLP: ``mlp_hidden`` or 8/3 * d_model rounded up to ``mlp_multiple_of``."""
        if self.mlp_hidden is not None:
            return self.mlp_hidden
        return self.mlp_multiple_of * math.ceil(8 * self.d_model / 3 / self.mlp_multiple_of)

    @property
    def recurrent_width(self) -> int:
        """Recurrent state width (``state_dim`` or ``d_model``)."""
        return self.state_dim or self.d_model

    def is_bidirectional(self, layer_index: int) -> bool:
        """Whether layer ``layer_index`` lets prefix positions see later prefix positions of their segment."""
        pattern = self.bidirectional_layers
        if pattern == "all":
            return True
        if pattern == "none":
            return False
        if pattern == "alternate":
            return layer_index % 2 == 0
        return layer_index in pattern

    def replace(self, **overrides: Any) -> "ModelConfig":
        """A copy with ``overrides`` applied (and validated); unknown names raise ``TypeError``."""
        unknown = sorted(set(overrides) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            known = [f.name for f in dataclasses.fields(self)]
            raise TypeError(f"ModelConfig has no field(s) {unknown}; known: {known}")
        return dataclasses.replace(self, **overrides)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (tuples become lists); ``from_dict`` reads it back."""
        data = dataclasses.asdict(self)
        if isinstance(self.bidirectional_layers, tuple):
            data["bidirectional_layers"] = list(self.bidirectional_layers)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ModelConfig":
        """Inverse of :meth:`to_dict`; unknown keys raise ``TypeError`` naming them."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise TypeError(f"ModelConfig.from_dict: unknown key(s) {unknown}; known: {sorted(known)}")
        values = dict(data)
        if isinstance(values.get("bidirectional_layers"), list):
            values["bidirectional_layers"] = tuple(values["bidirectional_layers"])
        return cls(**values)


def _positive_int(value: Any) -> bool:
    return is_int(value) and value > 0
