"""lm-eval's own ``hf`` backend on a ``to-hf`` directory gives ``birdie-lm-eval``'s per-sample results.

The same offline task pack (``birdie_smoke``: multiple choice and loglikelihood, rolling perplexity, greedy
generation) runs through ``lm_eval.models.huggingface.HFLM`` on the converted directory and through birdie's
``BirdieLM`` (``scoring=causal``) on the export, and every logged response is compared. The lengths are chosen so
that contexts, perplexity windows and generation prompts are all truncated: the test also pins down how the two
backends' ``max_length`` correspond (``docs/interop.md``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("lm_eval")

from birdie.convert.to_hf import convert_to_hf  # noqa: E402
from birdie.harness.tasks import TASKS_DIR  # noqa: E402
from tests.convert.test_to_hf import _birdie_export  # noqa: E402

#: birdie's max_length; lm-eval's hf backend needs N - 2 for scoring and N - 1 for generation (see the docs)
N = 40
#: fp32 log-likelihood sums of up to ~40 tokens: observed differences are <= 2e-5 (the two stacks order the float
#: operations differently), so 1e-4 is the honest bound
ATOL = 1e-4
GEN_TOKENS = 16  # birdie_gen's max_gen_toks
SCORING_TASKS = ["birdie_mc", "birdie_ll", "birdie_ppl"]


def _export(tmp_path, preset, **overrides):
    """An export whose output rows for birdie's special ids are zero, so greedy decoding never emits one.

    lm-eval's hf backend decodes generations with ``skip_special_tokens=True`` while birdie's harness writes a
    special token's name; with random weights special ids would otherwise be generated and only the text of those
    control tokens would differ. Zero rows give logit 0, and the largest of 256 random byte logits is positive.
    """
    from birdie.train.export import export_model

    model, tokenizer = _birdie_export(tmp_path / "export", preset, **overrides)
    with torch.no_grad():
        model.output.weight[tokenizer.specials.ids[0]:] = 0.0
    export_model(tmp_path / "export", model, model.config.to_dict(), tokenizer)
    convert_to_hf(tmp_path / "export", tmp_path / "hf")
    return tokenizer


def _docs(name):
    return [json.loads(line) for line in (Path(TASKS_DIR) / name).read_text().splitlines()]


def _responses(results):
    return {task: [sample["resps"] for sample in sorted(rows, key=lambda s: s["doc_id"])]
            for task, rows in results["samples"].items()}


def _run_hf(path, max_length, tasks, tokenizer):
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    model = HFLM(pretrained=str(path), device="cpu", dtype="float32", batch_size=1, max_length=max_length,
                 trust_remote_code=True, prefix_token_id=tokenizer.specials.eos)
    manager = TaskManager(include_path=[TASKS_DIR], include_defaults=False)
    return _responses(simple_evaluate(model=model, tasks=tasks, task_manager=manager, log_samples=True))


def _assert_same(ours, theirs):
    assert ours.keys() == theirs.keys()
    for task in ours:
        assert len(ours[task]) == len(theirs[task]), task
        for our_doc, their_doc in zip(ours[task], theirs[task]):
            for [mine], [yours] in zip(our_doc, their_doc, strict=True):
                if isinstance(mine, str):
                    assert mine == yours, (task, mine, yours)
                elif isinstance(mine, (tuple, list)):
                    assert float(yours[0]) == pytest.approx(float(mine[0]), abs=ATOL, rel=0), (task, mine, yours)
                    assert bool(yours[1]) == bool(mine[1]), (task, mine, yours)
                else:
                    assert float(yours) == pytest.approx(float(mine), abs=ATOL, rel=0), (task, mine, yours)


@pytest.mark.slow
@pytest.mark.parametrize("preset,overrides", [("transformer-tiny", {"bidirectional_layers": "none"}),
                                              ("hawk-tiny", {})], ids=["llama-native", "hawk-remote-code"])
def test_lm_eval_hf_backend_equals_birdie_lm_eval(tmp_path, preset, overrides):
    from birdie.harness.evaluation import evaluate
    from birdie.harness.lm import BirdieLM

    tokenizer = _export(tmp_path, preset, **overrides)
    ours = _responses(evaluate(BirdieLM(checkpoint=str(tmp_path / "export"), scoring="causal", max_length=N),
                               tasks=["birdie_smoke"], builtin_tasks=False, log_samples=True))
    theirs = {**_run_hf(tmp_path / "hf", N - 2, SCORING_TASKS, tokenizer),
              **_run_hf(tmp_path / "hf", N - 1, ["birdie_gen"], tokenizer)}
    _assert_same(ours, theirs)
    # the comparison covers truncation: a perplexity document spans several windows, a prompt is cut, and
    # generations are not empty (a stop at the first token would compare nothing)
    assert max(len(tokenizer.encode(doc["text"])) for doc in _docs("ppl.jsonl")) > 2 * N
    assert max(len(tokenizer.encode(doc["prompt"])) for doc in _docs("gen.jsonl")) > N - 1 - GEN_TOKENS
    assert all(text for [[text]] in ours["birdie_gen"])
