"""The measurements of one finished arm: phone-book retrieval, story infilling, validation losses, loss curves.

Phone-book retrieval scores the fine-tuned model (prompt as bidirectional prefix, the layout the fine-tuning
recipe trains); story infilling scores the pretrained model before fine-tuning, in both prompt layouts (``prefix``:
prompt bidirectional, Birdie's format; ``causal``: after the NTP paradigm token, what next-token prediction
trains), since which one suits a model depends on how it was pretrained. Evaluation sets depend only on the seed,
so every arm of a seed answers the same items.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from birdie.experiment.plan import ExperimentPlan
from birdie.train.metrics import read_metrics

INFILLING_MODES = ("prefix", "causal")


def _load(export: Path) -> tuple[Any, Any]:
    """The exported model (on the GPU when there is one, as training was) and its tokenizer."""
    import torch

    import birdie

    model, tokenizer = birdie.load(export)
    return model.to("cuda" if torch.cuda.is_available() else "cpu"), tokenizer


def phonebook_items(plan: ExperimentPlan, seed: int) -> list[dict[str, Any]]:
    """The seed's evaluation books: ``plan.eval_books`` books cycling through 1..max_queries queries."""
    from birdie.eval.phonebook import PhonebookConfig, generate_phonebooks

    scale = plan.spec
    low, high = scale.book_entries
    return generate_phonebooks(PhonebookConfig(num_books=plan.eval_books, min_entries=low, max_entries=high,
                                               num_queries=tuple(range(1, scale.max_queries + 1)), seed=seed,
                                               number_digits=scale.number_digits))


def infilling_items(plan: ExperimentPlan, seed: int) -> list[dict[str, Any]]:
    from birdie.eval.story_infilling import InfillingConfig, synthetic_items

    return synthetic_items(InfillingConfig(num_items=plan.eval_infilling_items, seed=seed))


def evaluate_phonebook_model(plan: ExperimentPlan, export: Path, seed: int) -> dict[str, Any]:
    """``score_phonebook``'s metrics of the fine-tuned model in ``export`` (plus three sample predictions)."""
    from birdie.eval.phonebook import evaluate_phonebook

    model, tokenizer = _load(export)
    items = phonebook_items(plan, seed)
    metrics, predictions = evaluate_phonebook(model, tokenizer, items, batch_size=16)
    for key in ("by_num_queries", "by_num_entries"):
        metrics[key] = {str(k): v for k, v in metrics[key].items()}
    metrics["samples"] = [{"answer": item["answer"], "prediction": prediction}
                          for item, prediction in zip(items[:3], predictions[:3])]
    return metrics


def evaluate_infilling_model(plan: ExperimentPlan, export: Path, seed: int) -> dict[str, float]:
    """Story-infilling accuracy of the pretrained model in ``export``, per prompt layout."""
    from birdie.eval.scoring import PromptFormat
    from birdie.eval.story_infilling import evaluate_story_infilling

    model, tokenizer = _load(export)
    items = infilling_items(plan, seed)
    return {mode: evaluate_story_infilling(model, tokenizer, items, batch_size=16,
                                           prompt_format=PromptFormat(mode=mode))[0]["accuracy"]
            for mode in INFILLING_MODES}


def final_validation_losses(metrics_file: Path) -> dict[str, float]:
    """The last evaluation's validation loss per objective configuration in a run's ``metrics.jsonl``."""
    evaluations = [r for r in read_metrics(metrics_file) if r.get("val_loss")]
    if not evaluations:
        raise ValueError(f"{metrics_file}: no validation losses were logged (the run measured none)")
    return {key: float(value) for key, value in evaluations[-1]["val_loss"].items()}


def loss_curve(metrics_files: list[Path], tokens_per_step: int) -> list[tuple[int, float]]:
    """``(training tokens, training loss)`` over the stages in order (a later stage's tokens continue)."""
    curve: list[tuple[int, float]] = []
    offset = 0
    for path in metrics_files:
        records = read_metrics(path)
        curve += [(offset + r["step"] * tokens_per_step, float(r["loss"])) for r in records if r.get("loss")
                  is not None]
        offset += max((r["step"] for r in records), default=0) * tokens_per_step
    return curve


def final_training_loss(metrics_file: Path) -> float:
    """The last logged training loss of a run (the phone-book fine-tuning's answer-token loss)."""
    records = [r for r in read_metrics(metrics_file) if r.get("loss") is not None]
    if not records:
        raise ValueError(f"{metrics_file}: no training loss was logged")
    return float(records[-1]["loss"])
