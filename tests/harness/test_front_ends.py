"""Both front-ends give the same per-sample results on all four request types and match a direct computation:

* an NTP-trained Transformer at lm-eval's defaults, the server's client given exactly the advertised
  ``model_max_length`` (the in-process model's default);
* a Birdie-trained (prefix-LM) Hawk in the same mode on both sides: causal through the stock ``local-completions``
  client, prefix through birdie's ``prefix_length`` extension (``--model birdie-completions``).

The server runs in a thread of the test process (the HTTP path and the JSON endpoint are the same code as
``birdie serve``'s process; ``test_server.py`` covers the process).
"""

from __future__ import annotations

import json
import urllib.request

import pytest
import torch

from birdie.harness.adapters import load_scoring_model
from birdie.harness.evaluation import evaluate
from birdie.harness.server import make_server, serve_in_thread
from birdie.harness.tasks import TASKS_DIR
from harness_reference import assert_same_responses, direct_responses, logged_responses

pytestmark = pytest.mark.slow  # four lm-eval runs per test
TASKS = ["birdie_smoke"]  # loglikelihood (mc, ll), loglikelihood_rolling (ppl), generate_until (gen)


def _export(directory, preset: str, prefix_lm: bool) -> str:
    from birdie.models import create
    from birdie.tokenizers import ByteTokenizer
    from birdie.train.export import export_model, write_training_record

    torch.manual_seed(5)
    tokenizer = ByteTokenizer()
    model = create(preset, vocab_size=tokenizer.vocab_size)
    export_model(directory, model, model.config.to_dict(), tokenizer)
    write_training_record(directory, {"prefix_lm": prefix_lm, "agent": "birdie" if prefix_lm else "ntp"})
    return str(directory)


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    root = tmp_path_factory.mktemp("front_ends")
    return {"ntp": _export(root / "ntp", "transformer-tiny", prefix_lm=False),
            "hawk": _export(root / "hawk", "hawk-tiny", prefix_lm=True)}


@pytest.fixture(scope="module")
def server(exports):
    served = make_server({name: f"checkpoint={path}" for name, path in exports.items()}, port=0)
    serve_in_thread(served)
    yield served.url
    served.shutdown()
    served.server_close()


def _remote(url: str, name: str, client: str = "local-completions") -> dict:
    import lm_eval
    from lm_eval.tasks import TaskManager

    import birdie.harness.client  # noqa: F401  -- registers birdie-completions

    with urllib.request.urlopen(f"{url}/tokenizer_info?model={name}") as response:
        advertised = json.loads(response.read())["model_max_length"]
    manager = TaskManager(include_path=TASKS_DIR, include_defaults=False)
    return lm_eval.simple_evaluate(model=client, tasks=TASKS, task_manager=manager, log_samples=True,
                                   model_args=f"base_url={url}/v1/completions,model={name},max_length={advertised}")


def test_ntp_transformer_at_lm_eval_defaults_agrees_on_both_front_ends(exports, server):
    model = load_scoring_model(checkpoint=exports["ntp"])
    assert not model.prefix_lm  # the training record says NTP, although the architecture has bidirectional layers
    local = evaluate(f"checkpoint={exports['ntp']}", tasks=TASKS, builtin_tasks=False, log_samples=True)
    remote = _remote(server, "ntp")
    assert set(local["samples"]) == {"birdie_mc", "birdie_ll", "birdie_ppl", "birdie_gen"}
    assert_same_responses(logged_responses(remote["samples"]), logged_responses(local["samples"]))
    assert_same_responses(logged_responses(local["samples"]), direct_responses(model, local["samples"], prefix=False))


@pytest.mark.parametrize("mode, client", [("prefix", "birdie-completions"), ("causal", "local-completions")])
def test_prefix_lm_hawk_agrees_on_both_front_ends_in_the_same_mode(exports, server, mode, client):
    model = load_scoring_model(checkpoint=exports["hawk"], scoring=mode)
    local = evaluate(f"checkpoint={exports['hawk']},scoring={mode}", tasks=TASKS, builtin_tasks=False,
                     log_samples=True)
    remote = _remote(server, "hawk", client)
    assert_same_responses(logged_responses(remote["samples"]), logged_responses(local["samples"]))
    assert_same_responses(logged_responses(local["samples"]),
                          direct_responses(model, local["samples"], prefix=mode == "prefix"))
