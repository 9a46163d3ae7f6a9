"""The three fine-tuning objectives the loop runs (see :class:`birdie.finetune.engine.Objective`).

* :class:`SFT` -- token-level cross-entropy on assistant tokens, normalised by the global target-token count;
  logs ``accuracy`` (argmax = target over all target tokens of the global batch).
* :class:`DPO` -- :func:`~birdie.finetune.losses.dpo_loss` per pair, normalised by the global pair count; logs
  TRL's names (``rewards/chosen``, ``rewards/rejected``, ``rewards/accuracies``, ``rewards/margins``,
  ``logps/chosen``, ``logps/rejected``) and EasyLM's (``reward_accuracy``, ``score_chosen``, ``score_rejected``,
  ``score_margin``).
* :class:`RewardModelling` -- Bradley-Terry loss on a scalar head; logs ``accuracy``, ``rewards/chosen``,
  ``rewards/rejected``, ``rewards/margins``.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from birdie.finetune.base import data_rows, heldout_pairs, load_base, load_data
from birdie.finetune.batches import pack, pad
from birdie.finetune.chat_template import write_tokenizer_config
from birdie.finetune.config import FinetuneConfig
from birdie.finetune.evaluate import pair_accuracy
from birdie.finetune.losses import dpo_loss, reward_model_loss, sequence_logps
from birdie.finetune.reference import cached_reference_logps, compute_reference_logps
from birdie.finetune.reward_model import HEAD, RewardModel, score_inputs
from birdie.models.lm import IGNORE_INDEX, token_loss_sum
from birdie.train.distributed import Runtime, unwrap
from birdie.train.export import export_model, read_training_record
from birdie.train.integrity import write_manifest

MODEL_INPUTS = ("input_ids", "segment_ids", "position_ids")


class _Base:
    """Shared parts: the base model, tokenizer, held-out pairs and the export."""

    preference = True

    def __init__(self, config: FinetuneConfig, runtime: Runtime) -> None:
        self.config, self.runtime = config, runtime
        rows = data_rows(config, self.preference)  # first: bad data fails before a quick base is trained
        self.lm, self.tokenizer, self.base_path = load_base(config, runtime)
        self.pad_id = self.tokenizer.specials.id("pad")
        self.items, self.report = load_data(config, self.tokenizer, rows, self.preference, runtime)
        self.num_examples = len(self.items)
        self.heldout = heldout_pairs(config, self.tokenizer)

    def model(self) -> nn.Module:
        return self.lm

    def _device(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        return {k: v.to(self.runtime.device) for k, v in batch.items()}

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        if not self.heldout:
            return {}
        return {"answer_accuracy": pair_accuracy(model, self.heldout, self.pad_id,
                                                 reward_model=isinstance(unwrap(model), RewardModel))}

    def export(self, directory: Path, model: nn.Module, is_main: bool) -> Path:
        record = dict(read_training_record(self.base_path) or {})
        record.update({"source": f"birdie {self.config.command}", "base": str(self.base_path),
                       "chat_format": "template" if self.config.data.chat_template else "tulu",
                       "sequence_length": self.config.train.sequence_length})
        record.setdefault("prefix_lm", False)
        if isinstance(unwrap(model), RewardModel):
            record["head"] = HEAD
        export_model(directory, model, self.lm.config.to_dict(), self.tokenizer, is_main, training_record=record)
        if is_main and not self.config.data.chat_template:
            write_tokenizer_config(directory)
            write_manifest(directory)  # again, now listing tokenizer_config.json
        return directory


class SFT(_Base):
    preference = False

    def _batch(self, indices: list[int]) -> dict[str, Tensor]:
        examples = [self.items[i] for i in indices]
        length = self.config.train.sequence_length
        batch = pack(examples, length, self.pad_id) if self.config.data.packing else pad(examples, length,
                                                                                          self.pad_id)
        return self._device(batch)

    def count(self, indices: list[int]) -> int:
        return sum(int(self.items[i].mask[1:].sum()) for i in indices)

    def loss_sum(self, model: nn.Module, indices: list[int]) -> tuple[Tensor, dict[str, Tensor]]:
        batch = self._batch(indices)
        logits, _ = model(**{k: batch[k] for k in MODEL_INPUTS})
        labels = batch["label_ids"]
        keep = labels != IGNORE_INDEX
        correct = (logits.detach().argmax(-1) == labels) & keep
        return token_loss_sum(logits, labels), {"accuracy": correct.sum()}


#: EasyLM's names for TRL's DPO metrics (logged as aliases).
EASYLM_ALIASES = {"rewards/accuracies": "reward_accuracy", "rewards/chosen": "score_chosen",
                  "rewards/rejected": "score_rejected", "rewards/margins": "score_margin"}


class DPO(_Base):
    aliases = EASYLM_ALIASES

    def __init__(self, config: FinetuneConfig, runtime: Runtime) -> None:
        super().__init__(config, runtime)
        self.reference: nn.Module | None = None
        self.cache: Tensor | None = None
        if config.dpo.reference == "live":
            self.reference = copy.deepcopy(self.lm).requires_grad_(False).eval().to(runtime.device)
        else:
            self.cache = cached_reference_logps(self.lm, self.items, self.base_path, config, runtime, self.pad_id)
        # the held-out pairs under the reference (the base), for the implicit-reward accuracy on them
        self.heldout_reference: Tensor | None = None
        if self.heldout:
            self.heldout_reference = compute_reference_logps(self.lm.to(runtime.device), self.heldout, self.pad_id)

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        """Held-out ``answer_accuracy`` (policy log-prob of chosen > rejected) and ``reward_accuracy`` (the
        implicit DPO reward of chosen > rejected, i.e. ``rewards/accuracies`` on held-out pairs)."""
        if self.heldout_reference is None:
            return {}
        policy, reference = compute_reference_logps(model, self.heldout, self.pad_id), self.heldout_reference
        rewards = policy - reference
        return {"answer_accuracy": float((policy[:, 0] > policy[:, 1]).double().mean()),
                "reward_accuracy": float((rewards[:, 0] > rewards[:, 1]).double().mean())}

    def count(self, indices: list[int]) -> int:
        return len(indices)

    def _logps(self, model: nn.Module, indices: list[int]) -> Tensor:
        examples = [self.items[i].chosen for i in indices] + [self.items[i].rejected for i in indices]
        batch = self._device(pad(examples, None, self.pad_id))
        logits, _ = model(**{k: batch[k] for k in MODEL_INPUTS})
        return sequence_logps(logits, batch["label_ids"])

    def loss_sum(self, model: nn.Module, indices: list[int]) -> tuple[Tensor, dict[str, Tensor]]:
        n = len(indices)
        policy = self._logps(model, indices)
        if self.reference is not None:
            with torch.no_grad():
                ref = self._logps(self.reference, indices)
            ref_chosen, ref_rejected = ref[:n], ref[n:]
        else:
            cached = self.cache[indices].to(policy.device)
            ref_chosen, ref_rejected = cached[:, 0], cached[:, 1]
        dpo = self.config.dpo
        losses, chosen, rejected = dpo_loss(policy[:n], policy[n:], ref_chosen, ref_rejected, dpo.beta,
                                            dpo.label_smoothing, dpo.loss_type)
        stats = {"rewards/chosen": chosen.sum(), "rewards/rejected": rejected.sum(),
                 "rewards/accuracies": (chosen > rejected).sum(), "rewards/margins": (chosen - rejected).sum(),
                 "logps/chosen": policy[:n].detach().sum(), "logps/rejected": policy[n:].detach().sum()}
        return losses.sum(), stats


class RewardModelling(_Base):
    def __init__(self, config: FinetuneConfig, runtime: Runtime) -> None:
        super().__init__(config, runtime)
        self.reward_model = RewardModel(self.lm)

    def model(self) -> nn.Module:
        return self.reward_model

    def count(self, indices: list[int]) -> int:
        return len(indices)

    def loss_sum(self, model: nn.Module, indices: list[int]) -> tuple[Tensor, dict[str, Tensor]]:
        n = len(indices)
        sequences = [self.items[i].chosen.ids for i in indices] + [self.items[i].rejected.ids for i in indices]
        scores = model(**self._device(score_inputs(sequences, self.pad_id)))
        margin = None
        if self.config.rm.use_margin:
            margin = torch.tensor([self.items[i].margin for i in indices], device=scores.device)
        losses = reward_model_loss(scores[:n], scores[n:], margin)
        chosen, rejected = scores[:n].detach(), scores[n:].detach()
        stats = {"accuracy": (chosen > rejected).sum(), "rewards/chosen": chosen.sum(),
                 "rewards/rejected": rejected.sum(), "rewards/margins": (chosen - rejected).sum()}
        return losses.sum(), stats


OBJECTIVE_BY_COMMAND: dict[str, Any] = {"sft": SFT, "dpo": DPO, "rm": RewardModelling}


def build_objective(config: FinetuneConfig, runtime: Runtime) -> Any:
    return OBJECTIVE_BY_COMMAND[config.command](config, runtime)
