"""SQuAD v2 (answerable questions): loading the official JSON, the official metrics, "answer contains label".

The input a model sees is ``"{context}\\n\\n{question}"`` (Birdie §6.1). Exact match and F1 re-implement the
official ``evaluate-v2.0.py``: answers are normalised (lower case, punctuation removed, the articles a/an/the
removed, whitespace collapsed), and an example scores the maximum over its gold answers. "Contains label" is the
paper's metric: some gold answer appears in the output; we test it on normalised text, token for token, so
``"5"`` is not found inside ``"15"``.

Results are also bucketed by context length (tokens when a tokenizer is given, else whitespace words).
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import string
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from birdie.eval.registry import EvalTask, evaluate_task, register

#: Context-length bucket edges (the paper plots 100..500 tokens); the last bucket is open.
DEFAULT_BUCKET_EDGES = (0, 100, 200, 300, 400, 500)
_PUNCTUATION = set(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)


def normalize_answer(text: str) -> str:
    """The official normalisation: lower case, drop punctuation, drop articles, collapse whitespace."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match(prediction: str, gold: str) -> float:
    """1.0 when the normalised strings are equal."""
    return float(normalize_answer(prediction) == normalize_answer(gold))


def f1_score(prediction: str, gold: str) -> float:
    """The official token F1 of the normalised strings (both empty = 1, one empty = 0)."""
    prediction_tokens = normalize_answer(prediction).split()
    gold_tokens = normalize_answer(gold).split()
    if not prediction_tokens or not gold_tokens:
        return float(prediction_tokens == gold_tokens)
    common = collections.Counter(prediction_tokens) & collections.Counter(gold_tokens)
    overlap = sum(common.values())
    if overlap == 0:
        return 0.0
    precision = overlap / len(prediction_tokens)
    recall = overlap / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def contains_label(prediction: str, gold: str) -> float:
    """1.0 when the normalised gold tokens occur contiguously in the normalised prediction."""
    gold_tokens = normalize_answer(gold).split()
    prediction_tokens = normalize_answer(prediction).split()
    if not gold_tokens:
        return 0.0
    width = len(gold_tokens)
    return float(any(prediction_tokens[i:i + width] == gold_tokens
                     for i in range(len(prediction_tokens) - width + 1)))


def load_squad(path: str | Path) -> list[dict[str, Any]]:
    """The answerable questions of an official SQuAD v2 JSON file.

    Returns:
        One dict per question: ``id``, ``title``, ``context``, ``question``, ``answers`` (gold texts, non-empty),
        ``prompt`` (``"{context}\\n\\n{question}"``).

    Raises:
        ValueError: the file is not in the official format (it names what is missing).
    """
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise ValueError(f"{path}: not a SQuAD v2 file (expected a JSON object with a 'data' list of articles)")
    examples = []
    for article in data["data"]:
        for paragraph in article.get("paragraphs", []):
            if "context" not in paragraph or "qas" not in paragraph:
                raise ValueError(f"{path}: a paragraph of {article.get('title')!r} lacks 'context' or 'qas'")
            for qa in paragraph["qas"]:
                answers = [answer["text"] for answer in qa.get("answers", []) if answer.get("text")]
                if qa.get("is_impossible", False) or not answers:
                    continue
                examples.append({
                    "id": qa["id"], "title": article.get("title", ""), "context": paragraph["context"],
                    "question": qa["question"], "answers": answers,
                    "prompt": f"{paragraph['context']}\n\n{qa['question']}",
                })
    if not examples:
        raise ValueError(f"{path}: no answerable questions found")
    return examples


def _bucket_name(length: int, edges: Sequence[int]) -> str:
    for low, high in zip(edges, edges[1:]):
        if low <= length < high:
            return f"{low}-{high}"
    return f"{edges[-1]}+"


def score_squad(
    examples: Sequence[dict[str, Any]],
    predictions: Mapping[str, str],
    length_of: Callable[[str], int] | None = None,
    bucket_edges: Sequence[int] = DEFAULT_BUCKET_EDGES,
) -> dict[str, Any]:
    """Score ``predictions`` (question id -> answer text) like the official script, on answerable questions.

    A question without a prediction scores 0 and is counted in ``missing``. ``length_of`` measures a context
    (default: whitespace words) for the ``by_context_length`` buckets.

    Returns:
        ``{"exact_match", "f1", "contains_label", "num_questions", "missing", "by_context_length": {bucket: {...}}}``;
        scores are percentages (0..100) as the official script prints them.
    """
    if not examples:
        raise ValueError("score_squad: no examples to score")
    length_of = length_of or (lambda text: len(text.split()))
    sums: dict[str, dict[str, float]] = collections.defaultdict(lambda: collections.defaultdict(float))
    missing = 0
    for example in examples:
        prediction = predictions.get(example["id"])
        if prediction is None:
            missing += 1
            prediction = ""
        scores = {
            "exact_match": max(exact_match(prediction, gold) for gold in example["answers"]),
            "f1": max(f1_score(prediction, gold) for gold in example["answers"]),
            "contains_label": max(contains_label(prediction, gold) for gold in example["answers"]),
        }
        for key in ("all", _bucket_name(length_of(example["context"]), bucket_edges)):
            for metric, value in scores.items():
                sums[key][metric] += value
            sums[key]["count"] += 1

    def summary(bucket: dict[str, float]) -> dict[str, Any]:
        count = bucket["count"]
        return {**{m: 100.0 * bucket[m] / count for m in ("exact_match", "f1", "contains_label")},
                "num_questions": int(count)}

    result = summary(sums.pop("all"))
    result["missing"] = missing
    order = [_bucket_name(low, bucket_edges) for low in bucket_edges]
    result["by_context_length"] = {name: summary(sums[name]) for name in order if name in sums}
    return result


def load_predictions(path: str | Path) -> dict[str, str]:
    """An official-format predictions file: a JSON object mapping question id to answer text."""
    predictions = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(predictions, dict) or not all(isinstance(v, str) for v in predictions.values()):
        raise ValueError(f"{path}: predictions must be a JSON object {{question_id: answer_text}}")
    return predictions


def evaluate_squad(
    model: Any, tokenizer: Any, examples: Sequence[dict[str, Any]], max_new_tokens: int = 128,
    batch_size: int = 8, progress: bool = False, bucket_edges: Sequence[int] = DEFAULT_BUCKET_EDGES,
    prompt_format: Any = None,
) -> tuple[dict[str, Any], dict[str, str]]:
    """Greedy answers (up to ``max_new_tokens``, first line kept) scored with contexts bucketed by token length.

    ``prompt_format`` is a :class:`birdie.eval.scoring.PromptFormat` (default: prompt as bidirectional prefix).

    Returns:
        ``(score_squad(...), predictions)`` with predictions in the official format ``{question_id: answer}``.
    """
    task = SquadV2()
    _, answers = evaluate_task(task, model, tokenizer, examples, argparse.Namespace(max_new_tokens=max_new_tokens),
                               batch_size, progress, prompt_format)
    predictions = task.record(examples, answers)
    return score_squad(examples, predictions, lambda text: len(tokenizer.encode(text)), bucket_edges), predictions


@register
class SquadV2(EvalTask):
    """SQuAD v2 answerable questions: greedy answers (first line), contains-label, F1 and exact match."""

    name = "squad-v2"
    help = "SQuAD v2 answerable questions (contains-label, F1, exact match)"
    request_type = "generate_until"
    metrics = ("contains_label", "f1", "exact_match")
    batch_size = 8
    standalone_hint = " or --predictions PRED.json"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--data", metavar="FILE", required=True,
                            help="official SQuAD v2 JSON (e.g. dev-v2.0.json)")
        parser.add_argument("--predictions", metavar="PRED.json", help="score this {question_id: answer} file "
                                                                        "instead of a checkpoint (like the official "
                                                                        "script)")
        parser.add_argument("--limit", type=int, help="score only the first N answerable questions")
        parser.add_argument("--max-new-tokens", type=int, default=128, help="greedy decoding limit (paper: 128)")
        parser.add_argument("--write-predictions", metavar="FILE", help="also write the model's predictions here")

    def standalone(self, options: argparse.Namespace) -> bool:
        return bool(options.predictions)

    def items(self, options: argparse.Namespace) -> list[dict[str, Any]]:
        return load_squad(options.data)[: options.limit]

    def max_new_tokens(self, item: dict[str, Any], tokenizer: Any, options: argparse.Namespace) -> int:
        return options.max_new_tokens

    def prediction(self, item: dict[str, Any], output: Any) -> str:
        """The first line of the generated text, stripped."""
        return output.strip().split("\n")[0].strip()

    def given_predictions(self, options: argparse.Namespace, items: list[dict[str, Any]]) -> list[Any] | None:
        if not options.predictions:
            return None
        by_id = load_predictions(options.predictions)
        return [by_id.get(item["id"]) for item in items]

    def score(self, items: Sequence[dict[str, Any]], predictions: Sequence[Any], tokenizer: Any) -> dict[str, Any]:
        """Contexts are bucketed by token length when a model's tokenizer is given, else by words."""
        length_of = (lambda text: len(tokenizer.encode(text))) if tokenizer is not None else None
        return score_squad(items, self.record(items, predictions), length_of)

    def record(self, items: Sequence[dict[str, Any]], predictions: Sequence[Any]) -> dict[str, str]:
        """The official predictions format ``{question_id: answer}`` (questions without one left out)."""
        return {item["id"]: p for item, p in zip(items, predictions) if p is not None}

    def finish(self, options: argparse.Namespace, items: Sequence[dict[str, Any]], predictions: Sequence[Any]) -> None:
        if options.write_predictions:
            Path(options.write_predictions).write_text(
                json.dumps(self.record(items, predictions), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")

    def table(self, metrics: dict[str, Any], options: argparse.Namespace) -> tuple[list[str], list[list[Any]]]:
        unit = "tokens" if options.checkpoint and not options.predictions else "words"
        keys = ("num_questions", "contains_label", "f1", "exact_match")
        rows = [[f"context {name} {unit}", *(m[key] for key in keys)] for name, m in metrics["by_context_length"].items()]
        rows.append(["all", *(metrics[key] for key in keys)])
        return ["bucket", "questions", "contains_label", "f1", "exact_match"], rows

    def notes(self, metrics: dict[str, Any]) -> list[str]:
        return [f"{metrics['missing']} questions had no prediction (scored 0)"] if metrics["missing"] else []

    def result_options(self, options: argparse.Namespace) -> dict[str, Any]:
        return {"data": options.data, "limit": options.limit, "max_new_tokens": options.max_new_tokens,
                "predictions": options.predictions}
