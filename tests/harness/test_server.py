"""``birdie serve``: stock lm-eval ``local-completions`` against it equals the in-process model; echo shape;
robustness; concurrency; model switching (in process and through replaced child processes). Loopback only."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from birdie.harness.endpoint import ServerLimits
from birdie.harness.evaluation import evaluate
from birdie.harness.server import make_server, serve_in_thread
from birdie.harness.tasks import TASKS_DIR
from harness_reference import assert_same_responses, logged_responses

pytestmark = pytest.mark.multiprocess
NUMPY_ARGS = "module=birdie.harness.numpy_example,tag=tiny"


def _post(url: str, body: bytes | dict, timeout: float = 60) -> tuple[int, dict]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def served(birdie_checkpoint):
    """``birdie serve`` in its own process with the numpy module (``tiny``) and the exported checkpoint."""
    port = _free_port()
    command = [sys.executable, "-m", "birdie", "serve", "--checkpoint", birdie_checkpoint, "--name", "ckpt",
               "--scoring", "causal", "--model", "tiny", f"{NUMPY_ARGS},scoring=causal", "--port", str(port)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               env={**os.environ, "OMP_NUM_THREADS": "1"})
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2):
                break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"birdie serve did not start: {process.stdout.read().decode()[-2000:]}")
            time.sleep(0.2)
    yield url
    process.terminate()
    process.wait(10)


# The numpy model's rows do not depend on how they are batched, so the two paths agree bit for bit. The torch
# transformer sees different batch shapes on the two paths (the client's batches of 4 full prompts vs. the core's
# context/continuation split), which changes float reduction order in the last bits.
@pytest.mark.slow
@pytest.mark.parametrize("name, args, rel", [("tiny", NUMPY_ARGS, 0.0), ("ckpt", None, 1e-6)])
def test_stock_local_completions_equals_the_in_process_model(served, birdie_checkpoint, name, args, rel):
    import lm_eval
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=TASKS_DIR, include_defaults=False)
    tasks = ["birdie_smoke"] if name == "tiny" else ["birdie_mc", "birdie_ppl"]
    remote = lm_eval.simple_evaluate(
        model="local-completions", model_args=f"base_url={served}/v1/completions,model={name},max_length=257",
        tasks=tasks, task_manager=manager, log_samples=True, batch_size=4,
    )
    local_args = args or f"checkpoint={birdie_checkpoint}"
    local = evaluate(f"{local_args},scoring=causal,max_length=257", tasks=tasks, builtin_tasks=False,
                     log_samples=True)
    assert_same_responses(logged_responses(remote["samples"]), logged_responses(local["samples"]), rel=rel)


def test_echo_returns_one_logprob_per_prompt_token_plus_one(served):
    prompt = [116, 104, 101, 32, 99, 97, 116]
    status, reply = _post(f"{served}/v1/completions", {"model": "tiny", "prompt": [prompt], "echo": True,
                                                         "max_tokens": 1, "logprobs": 3, "temperature": 0})
    assert status == 200
    logprobs = reply["choices"][0]["logprobs"]
    assert len(logprobs["token_logprobs"]) == len(prompt) + 1 == len(logprobs["top_logprobs"])
    assert logprobs["token_logprobs"][0] is None
    generated = logprobs["token_logprobs"][-1]
    assert generated == max(logprobs["top_logprobs"][-1].values())  # the generated token is the greedy one
    for value, top in zip(logprobs["token_logprobs"][1:], logprobs["top_logprobs"][1:]):
        assert len(top) == 3 and value <= max(top.values())


def test_string_prompts_stop_strings_and_tokenizer_endpoints(served):
    status, reply = _post(f"{served}/v1/completions", {"model": "tiny", "prompt": ["the cat", "a"],
                                                         "max_tokens": 12, "temperature": 0})
    assert status == 200 and [c["index"] for c in reply["choices"]] == [0, 1]
    text = reply["choices"][0]["text"]
    stop = text[2:4]
    _, cut = _post(f"{served}/v1/completions", {"model": "tiny", "prompt": "the cat", "max_tokens": 12,
                                                "temperature": 0, "stop": [stop]})
    assert cut["choices"][0]["text"] == text[: text.find(stop)]
    _, tokens = _post(f"{served}/tokenize", {"prompt": "hi<|eos|>", "add_special_tokens": False})
    with urllib.request.urlopen(f"{served}/tokenizer_info") as response:
        info = json.loads(response.read())
    _, eos = _post(f"{served}/tokenize", {"prompt": info["eos_token"]})
    assert tokens["tokens"] == [104, 105] + eos["tokens"] and len(eos["tokens"]) == 1
    _, text_back = _post(f"{served}/detokenize", {"tokens": tokens["tokens"]})
    assert text_back["prompt"] == "hi<|eos|>"


@pytest.mark.parametrize("body, status, message", [
    (b"{not json", 400, "not valid JSON"),
    (b"[1, 2]", 400, "JSON object"),
    ({"model": "tiny", "prompt": 5}, 400, "'prompt' must be"),
    ({"model": "tiny", "prompt": "hi", "max_tokens": "ten"}, 400, "'max_tokens' must be"),
    ({"model": "tiny", "prompt": "hi", "echo": True, "max_tokens": 3}, 400, "exactly one generated token"),
    ({"model": "tiny", "prompt": [[1, 99999]]}, 400, "outside"),
    ({"model": "tiny", "prompt": [1] * 5000, "echo": True, "max_tokens": 1}, 400, "at most 4096 positions"),
    ({"model": "tiny", "prompt": [{"role": "user", "content": "hi"}]}, 400, "this model has no chat template"),
    ({"model": "tiny", "prompt": [1, 2], "prefix_length": 1}, 400, "'prefix_length' needs a prefix-LM model"),
    ({"model": "tiny", "prompt": ["a"] * 300}, 413, "the limit is 256"),
    ({"model": "nope", "prompt": "hi"}, 404, "unknown model 'nope'; served models: ckpt, tiny"),
])
def test_bad_requests_get_4xx_with_a_message_and_the_server_keeps_serving(served, body, status, message):
    got_status, reply = _post(f"{served}/v1/completions", body)
    assert got_status == status and message in reply["error"]["message"]
    ok_status, ok = _post(f"{served}/v1/completions", {"model": "tiny", "prompt": "hi", "max_tokens": 2,
                                                       "temperature": 0})
    assert ok_status == 200 and len(ok["choices"]) == 1


def test_a_concurrent_burst_is_answered_correctly_while_models_switch(served):
    prompts = [[104, 105 + i % 7, 32, 97 + i] for i in range(12)]
    names = ["tiny", "ckpt"]

    def ask(i: int) -> list[float]:
        status, reply = _post(f"{served}/v1/completions", {"model": names[i % 2], "prompt": [prompts[i]],
                                                             "echo": True, "max_tokens": 1, "logprobs": 1})
        assert status == 200
        return reply["choices"][0]["logprobs"]["token_logprobs"]

    sequential = [ask(i) for i in range(12)]
    with ThreadPoolExecutor(6) as pool:
        concurrent = list(pool.map(ask, range(12)))
    assert concurrent == sequential
    assert sequential[0] != sequential[1]  # the two names really are different models


def test_oversize_body_is_refused_before_it_is_read():
    server = make_server({"tiny": NUMPY_ARGS}, port=0, limits=ServerLimits(max_body_bytes=1000))
    serve_in_thread(server)
    try:
        status, reply = _post(f"{server.url}/v1/completions", {"model": "tiny", "prompt": "x" * 2000})
        assert status == 413 and "limit is 1000" in reply["error"]["message"]
        assert _post(f"{server.url}/tokenize", {"prompt": "ok"})[0] == 200
    finally:
        server.shutdown()
        server.server_close()


def test_an_isolated_model_runs_in_a_child_process_that_a_switch_stops():
    models = {"a": f"{NUMPY_ARGS},seed=1,isolate=true", "b": f"{NUMPY_ARGS},seed=2"}
    server = make_server(models, port=0)
    serve_in_thread(server)
    body = {"prompt": [[104, 105, 32]], "echo": True, "max_tokens": 1, "logprobs": 1}
    try:
        first = _post(f"{server.url}/v1/completions", {**body, "model": "a"})[1]
        child = server.pool._active.process
        assert child.is_alive() and child.pid != os.getpid()
        other = _post(f"{server.url}/v1/completions", {**body, "model": "b"})[1]
        assert not child.is_alive()
        assert first["choices"] != other["choices"] and server.pool.loads == 2
    finally:
        server.shutdown()
        server.server_close()


def test_switching_in_process_models_releases_the_old_one():
    import gc
    import weakref

    from birdie.harness.pool import ModelPool

    pool = ModelPool({"a": f"{NUMPY_ARGS},seed=1", "b": f"{NUMPY_ARGS},seed=2"})
    body = {"prompt": "hi", "echo": True, "max_tokens": 1, "logprobs": 1}
    pool.call("a", "completions", body)
    old = weakref.ref(pool._active.scorer.model.model)
    pool.call("b", "completions", body)
    gc.collect()
    assert old() is None and pool.active_name == "b"
    with pytest.raises(Exception, match="unknown model 'c'"):
        pool.call("c", "completions", body)
    pool.close()
