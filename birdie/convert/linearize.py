"""``birdie linearize SRC OUT``: SUPRA (Mercat et al. 2024) from a pretrained softmax Transformer export.

Every weight of the Transformer is reused under the same name -- embeddings, norms, the fused q/k/v projection
``in_proj``, ``out_proj`` and the MLP -- because birdie's SUPRA layer shares the Transformer's layout (open_lm's
``LinearAttn``). SUPRA adds what the paper adds (models.md §1.4):

* ``_totrain_embed`` (weight and bias): the feature map phi(x) = relu(W x + b) shared by queries and keys;
  ``_totrain_embed_kv`` for the keys when the model uses grouped-query attention;
* ``_totrain_q_norm`` / ``_totrain_k_norm`` when ``qk_norm`` is asked for;
* a fixed per-head decay (ALiBi slopes by default) and a GroupNorm per head in place of the softmax
  denominator -- constants, not weights.

The new weights keep PyTorch's default ``nn.Linear`` initialisation, as upstream does. Then
``birdie train --pretrained OUT`` uptrains all weights jointly (the paper's one-step recipe).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from birdie.models.config import ModelConfig
from birdie.models.lm import LanguageModel
from birdie.tokenizers import load_tokenizer
from birdie.train.export import MODEL_CONFIG, TOKENIZER, export_model, load_weights, read_training_record, read_weights
from birdie.train.integrity import write_manifest

REPORT = "linearize_report.json"


@dataclass(frozen=True)
class LinearizeReport:
    """Which weights of the SUPRA model came from the Transformer and which are new; config fields changed."""

    reused: list[str]
    new: list[str]
    changed: dict[str, list]

    def to_dict(self) -> dict:
        return {"reused": self.reused, "new": self.new, "changed": self.changed}


def supra_config(config: ModelConfig, qk_norm: bool = False, decay: str = "alibi") -> tuple[ModelConfig, dict]:
    """The SUPRA config sharing ``config``'s shapes, and ``{field: [before, after]}`` for the fields that change
    (SUPRA layers are causal and have no sliding window)."""
    if config.family != "transformer":
        raise ValueError(f"linearize converts a softmax Transformer; this export's family is {config.family!r}")
    after = config.replace(family="supra", qk_norm=qk_norm, decay=decay, bidirectional_layers="none",
                           sliding_window=None)
    before_values, after_values = config.to_dict(), after.to_dict()
    changed = {key: [before_values[key], value] for key, value in after_values.items()
               if before_values[key] != value and key != "family"}
    return after, changed


def linearize(source: str | Path, out: str | Path, qk_norm: bool = False, decay: str = "alibi",
              seed: int = 0) -> LinearizeReport:
    """Write the SUPRA model made from the Transformer export ``source`` to ``out``, with ``linearize_report.json``.

    ``seed`` seeds the new weights' initialisation. The export's tokenizer and training record come along
    (``source`` becomes ``linearize``).
    """
    source, out = Path(source), Path(out)
    if not (source / MODEL_CONFIG).is_file():
        raise FileNotFoundError(f"{source / MODEL_CONFIG} not found: linearize reads a birdie export directory")
    if (out / MODEL_CONFIG).exists():
        raise FileExistsError(f"{out / MODEL_CONFIG} exists; choose a new output directory")
    config, changed = supra_config(ModelConfig.from_dict(json.loads((source / MODEL_CONFIG).read_text())),
                                   qk_norm, decay)
    torch.manual_seed(seed)
    model = LanguageModel(config)
    loaded = load_weights(model, read_weights(source), strict=False)
    if loaded["unexpected"] or loaded["mismatched"]:
        raise ValueError(f"{source}: weights {loaded['unexpected'] + loaded['mismatched']} do not fit the SUPRA "
                         "model of the same shape; the export's config.json and weights disagree")
    new = loaded["missing"]
    report = LinearizeReport(reused=sorted(set(model.state_dict()) - set(new)), new=new, changed=changed)
    tokenizer = load_tokenizer(source / TOKENIZER)
    record = {**(read_training_record(source) or {}), "prefix_lm": False, "source": "linearize",
              "linearized_from": str(source.resolve())}
    export_model(out, model, config.to_dict(), tokenizer, training_record=record)
    (out / REPORT).write_text(json.dumps(report.to_dict(), indent=2))
    write_manifest(out)
    return report
