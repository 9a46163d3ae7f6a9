"""The evaluation-task registry: ``birdie eval`` numbers equal the direct computation, lm-eval gives the same
per-sample results as ``birdie eval`` on the same checkpoint and items, and a toy task is one class + one
registration on both paths."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import torch

from birdie.cli import main
from birdie.eval.registry import EvalTask, register, unregister
from birdie.eval.tasks import get_task

FIXTURE = Path(__file__).parent / "fixtures" / "squad_v2_mini.json"
PHONEBOOK = ["--num-books", "4", "--min-entries", "5", "--max-entries", "8", "--num-queries", "1-2"]


@pytest.fixture(scope="module", params=["hawk-tiny", "transformer-tiny"])
def export(request, tmp_path_factory):
    """A Birdie-trained (prefix-LM) tiny model whose window holds the test prompts (lm-eval left-truncates to it)."""
    from birdie.models import create
    from birdie.tokenizers import ByteTokenizer
    from birdie.train.export import export_model, write_training_record

    tokenizer = ByteTokenizer()
    torch.manual_seed(0)
    model = create(request.param, vocab_size=tokenizer.vocab_size, max_seq_len=2048)
    directory = tmp_path_factory.mktemp("export")
    export_model(directory, model, model.config.to_dict(), tokenizer)
    write_training_record(directory, {"prefix_lm": True, "agent": "birdie"})
    return str(directory)


def _birdie_eval(argv: list[str], out: Path) -> dict:
    assert main(["eval", *argv, "--out", str(out), "--no-progress"]) == 0
    return json.loads(out.read_text())


def _direct(task_name: str, export: str, items: list[dict], options: argparse.Namespace) -> list:
    """Predictions computed without the registry: option losses one request at a time, or each prompt decoded
    alone by Scorer.generate (the path birdie eval took before batching)."""
    import birdie
    from birdie.eval.scoring import option_losses
    from birdie.harness.adapters import BirdieScoringModel
    from birdie.harness.core import Scorer

    model, tokenizer = birdie.load(export)
    task = get_task(task_name)
    if task.request_type == "multiple_choice":
        losses = option_losses(model, tokenizer, [i["prompt"] for i in items], [i["options"] for i in items], 1)
        return [row.index(min(row)) for row in losses]
    scorer = Scorer(BirdieScoringModel(model, tokenizer, prefix_lm=True))
    return [task.prediction(item, scorer.generate([int(t) for t in tokenizer.encode(item["prompt"])],
                                                  task.max_new_tokens(item, tokenizer, options)).text)
            for item in items]


@pytest.mark.parametrize("task_name, argv, metadata", [
    ("story-infilling", ["--num-items", "5"], {"num_items": 5}),
    ("phonebook", PHONEBOOK, {"num_books": 4, "min_entries": 5, "max_entries": 8, "num_queries": "1-2"}),
    ("squad-v2", ["--data", str(FIXTURE), "--max-new-tokens", "6"], {"data": str(FIXTURE), "max_new_tokens": 6}),
])
def test_birdie_eval_and_lm_eval_agree_per_sample(task_name, argv, metadata, export, tmp_path):
    from birdie.eval.lm_eval_tasks import task_options
    from birdie.harness.evaluation import evaluate

    task = get_task(task_name)
    cached = ["--cache-dir", str(tmp_path)] if task_name != "squad-v2" else []
    result = _birdie_eval([task_name, *argv, *cached, "--checkpoint", export], tmp_path / "out.json")
    metadata = {**metadata, **({"cache_dir": str(tmp_path)} if cached else {})}
    options = task_options(task, metadata)
    items = task.items(options)
    predictions = result["predictions"]
    if task_name == "squad-v2":
        predictions = [predictions[item["id"]] for item in items]

    # birdie eval's numbers are those of the direct computation, through the registry and batched decoding
    assert predictions == _direct(task_name, export, items, options)
    import birdie

    _, tokenizer = birdie.load(export)
    assert result["metrics"] == json.loads(json.dumps(task.score(items, predictions, tokenizer)))

    # lm-eval on the first 3 items: the same predictions, and the task's own metrics over those items
    name = f"birdie_{task_name.replace('-', '_')}"
    lm = evaluate(f"checkpoint={export}", tasks=[name], builtin_tasks=False, log_samples=True, limit=3,
                  metadata={name: metadata})
    samples = sorted(lm["samples"][name], key=lambda s: s["doc"]["index"])
    assert [s[task.metrics[0]][1] for s in samples] == predictions[:3]
    expected = task.score(items[:3], predictions[:3], tokenizer)
    for metric in task.metrics:
        assert lm["results"][name][f"{metric},none"] == pytest.approx(expected[metric])
    if task.request_type == "multiple_choice":  # the per-option log-likelihoods are those birdie eval ranks
        from birdie.eval.scoring import option_losses

        losses = option_losses(*birdie.load(export), [i["prompt"] for i in items[:3]], [i["options"] for i in items[:3]])
        for sample, row in zip(samples, losses):
            logged = [-ll / len(tokenizer.encode(o)) for (ll, _), o in zip(sample["filtered_resps"],
                                                                             items[sample["doc"]["index"]]["options"])]
            assert logged == pytest.approx(row, rel=1e-5)


@pytest.mark.slow  # lm-eval's CLI indexes its ~10k built-in tasks first
def test_birdie_lm_eval_command_runs_a_paper_task(export, tmp_path):
    from birdie.harness.cli import main as lm_eval_main

    metadata = {"birdie_story_infilling": {"num_items": 4, "cache_dir": str(tmp_path)}}
    lm_eval_main(["run", "--model", "birdie", "--model_args", f"checkpoint={export}", "--tasks",
                  "birdie_story_infilling", "--limit", "2", "--metadata", json.dumps(metadata), "--log_samples",
                  "--output_path", str(tmp_path / "lm")])
    logged = [json.loads(line) for path in (tmp_path / "lm").rglob("samples_birdie_story_infilling_*.jsonl")
              for line in path.read_text().splitlines()]
    result = _birdie_eval(["story-infilling", "--num-items", "4", "--cache-dir", str(tmp_path), "--checkpoint", export],
                          tmp_path / "si.json")
    assert sorted((s["doc"]["index"], s["accuracy"][1]) for s in logged) == list(enumerate(result["predictions"][:2]))


class Echo(EvalTask):
    """A toy task: does the model's first generated character repeat the prompt's last one?"""

    name = "echo"
    help = "repeat the last letter"
    request_type = "generate_until"
    metrics = ("hit_rate",)
    max_tokens = 2

    def items(self, options):
        return [{"prompt": word, "answer": word[-1]} for word in ("abc", "hello", "xyz", "birdie")]

    def score(self, items, predictions, tokenizer):
        hits = [p[:1] == item["answer"] for item, p in zip(items, predictions)]
        return {"hit_rate": sum(hits) / len(hits), "num_items": len(hits)}

    def table(self, metrics, options):
        return ["items", "hit_rate"], [[metrics["num_items"], metrics["hit_rate"]]]


@pytest.fixture
def echo_task():
    register(Echo)
    yield get_task("echo")
    unregister("echo")


def test_a_toy_task_is_one_class_and_one_registration(echo_task, export, tmp_path, capsys):
    from birdie.harness.evaluation import evaluate

    result = _birdie_eval(["echo", "--checkpoint", export], tmp_path / "echo.json")
    assert "hit_rate" in capsys.readouterr().out
    assert len(result["predictions"]) == 4 and result["metrics"]["num_items"] == 4
    lm = evaluate(f"checkpoint={export}", tasks=["birdie_echo"], builtin_tasks=False, log_samples=True)
    samples = sorted(lm["samples"]["birdie_echo"], key=lambda s: s["doc"]["index"])
    assert [s["hit_rate"][1] for s in samples] == result["predictions"]
    assert lm["results"]["birdie_echo"]["hit_rate,none"] == result["metrics"]["hit_rate"]


def test_registration_errors_name_the_fix():
    class Nameless(Echo):
        name = "Bad Name"

    class NoMetrics(Echo):
        name = "no-metrics"
        metrics = ()

    class Chatty(Echo):
        request_type = "chat"

    with pytest.raises(ValueError, match="lower-case letters"):
        register(Nameless)
    with pytest.raises(ValueError, match="headline keys"):
        register(NoMetrics)
    with pytest.raises(ValueError, match="request_type='chat'"):
        register(Chatty)
    with pytest.raises(ValueError, match="already registered"):
        register(type("Phonebook2", (Echo,), {"name": "phonebook"}))
    with pytest.raises(ValueError, match="registered: .*phonebook"):
        get_task("nope")


def test_lm_eval_task_options_and_tokenizer_errors_name_the_fix():
    from birdie.eval.lm_eval_tasks import PaperTask, task_options

    with pytest.raises(ValueError, match=r"birdie_squad_v2: .*--data.*--metadata"):
        task_options(get_task("squad-v2"), {})
    with pytest.raises(ValueError, match="needs the model's tokenizer"):
        PaperTask(config={"task": "birdie_story_infilling", "metadata": {}})
