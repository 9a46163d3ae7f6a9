"""``birdie serve`` under load and bad input: a burst of 100 clients, malformed values, keep-alive, TCP_NODELAY and
a health check that runs the model. Loopback only; every client has a timeout, so nothing here can hang."""

from __future__ import annotations

import http.client
import json
import shutil
import socket
import threading

import pytest
import torch

from birdie.harness.server import LISTEN_BACKLOG, make_server, serve_in_thread

pytestmark = pytest.mark.multiprocess
NUMPY_ARGS = "module=birdie.harness.numpy_example,tag=tiny"
TIMEOUT_S = 60


@pytest.fixture(scope="module")
def server():
    served = make_server({"tiny": NUMPY_ARGS}, port=0)
    serve_in_thread(served)
    yield served
    served.shutdown()
    served.server_close()


def _request(server, method: str, path: str, body: bytes | None = None,
             headers: dict[str, str] | None = None) -> tuple[int, dict]:
    """One request on a fresh connection; a dropped connection raises (and fails the test)."""
    host, port = server.server_address[:2]
    connection = http.client.HTTPConnection(host, port, timeout=TIMEOUT_S)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def _post(server, path: str, body) -> tuple[int, dict]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return _request(server, "POST", path, data, {"Content-Type": "application/json"})


def _nested(depth: int) -> bytes:
    return b'{"model": "tiny", "prompt": "hi", "x": ' + b"[" * depth + b"]" * depth + b"}"


GOOD = {"model": "tiny", "prompt": "hi", "max_tokens": 2, "temperature": 0}

MALFORMED_COMPLETIONS = [
    (b'{"model": "tiny", "prompt": "hi", "temperature": NaN}', "NaN"),
    (b'{"model": "tiny", "prompt": "hi", "temperature": Infinity}', "Infinity"),
    (b'{"model": "tiny", "prompt": "hi", "temperature": -Infinity}', "Infinity"),
    (b'{"model": "tiny", "prompt": "hi", "temperature": 1e999}', "finite"),
    ({**GOOD, "temperature": 10 ** 400}, "finite"),
    ({**GOOD, "temperature": -1}, "temperature"),
    ({**GOOD, "temperature": "hot"}, "temperature"),
    ({**GOOD, "seed": 2 ** 80}, "seed"),
    ({**GOOD, "seed": -1}, "seed"),
    ({**GOOD, "seed": 1.5}, "seed"),
    ({**GOOD, "seed": "7"}, "seed"),
    ({**GOOD, "max_tokens": -1}, "max_tokens"),
    ({**GOOD, "max_tokens": 2 ** 80}, "max_tokens"),
    ({**GOOD, "max_tokens": 1.5}, "max_tokens"),
    ({**GOOD, "max_tokens": True}, "max_tokens"),
    ({**GOOD, "echo": "yes"}, "echo"),
    ({**GOOD, "echo": True, "max_tokens": 1, "logprobs": -1}, "logprobs"),
    ({**GOOD, "echo": True, "max_tokens": 1, "logprobs": 10 ** 30}, "logprobs"),
    ({**GOOD, "n": 2}, "'n'"),
    ({**GOOD, "stop": 5}, "stop"),
    ({**GOOD, "stop": [1]}, "stop"),
    ({**GOOD, "model": 5}, "'model' must be a string"),
    ({**GOOD, "model": ["tiny"]}, "'model' must be a string"),
    ({**GOOD, "prompt": {}}, "prompt"),
    ({**GOOD, "prompt": []}, "prompt"),
    ({**GOOD, "echo": True, "max_tokens": 1, "prompt": [[]]}, "at least one token"),
    ({**GOOD, "prompt": [1.5]}, "prompt"),
    ({**GOOD, "prompt": [[1, [2]]]}, "integer token ids"),
    ({**GOOD, "prompt": [-1]}, "outside"),
    (_nested(100_000), "nested too deeply"),
    (b"{not json", "not valid JSON"),
    (b'{"prompt": "\xff\xfe"}', "not valid JSON"),
    (b"", "not valid JSON"),
    (b"null", "JSON object"),
    (b'"hi"', "JSON object"),
]


@pytest.mark.parametrize("body, message", MALFORMED_COMPLETIONS, ids=range(len(MALFORMED_COMPLETIONS)))
def test_each_malformed_value_is_a_4xx_with_a_json_error_and_the_server_keeps_serving(server, body, message):
    status, reply = _post(server, "/v1/completions", body)
    assert 400 <= status < 500 and message in reply["error"]["message"]
    assert reply["error"]["code"] == status
    assert _post(server, "/v1/completions", GOOD)[0] == 200


@pytest.mark.parametrize("path, body, message", [
    ("/tokenize", {"prompt": 5}, "'prompt' must be"),
    ("/tokenize", {}, "required"),
    ("/detokenize", {"tokens": "abc"}, "integer token ids"),
    ("/detokenize", {"tokens": [2 ** 80]}, "outside"),
    ("/detokenize", {"tokens": [1.0]}, "integer token ids"),
])
def test_malformed_tokenizer_requests_are_4xx(server, path, body, message):
    status, reply = _post(server, path, body)
    assert 400 <= status < 500 and message in reply["error"]["message"]


@pytest.mark.parametrize("headers, status", [
    ({"Content-Length": "abc"}, 411),
    ({"Content-Length": "-5"}, 411),
    ({"Content-Length": str(1 << 40)}, 413),
])
def test_bad_content_lengths_are_4xx_with_json(server, headers, status):
    got, reply = _request(server, "POST", "/v1/completions", None, headers)
    assert got == status and reply["error"]["code"] == status


def test_a_malformed_request_line_gets_a_json_400(server):
    with socket.create_connection(server.server_address[:2], timeout=TIMEOUT_S) as client:
        client.sendall(b"GARBAGE\r\n\r\n")
        reply = client.makefile("rb").read()
    # An unparsable request line is answered HTTP/0.9 style (no status line), as the stdlib does: the body only.
    assert json.loads(reply[reply.index(b"{"):])["error"]["code"] == 400


def test_keep_alive_serves_many_requests_on_one_connection_even_after_an_error(server):
    host, port = server.server_address[:2]
    connection = http.client.HTTPConnection(host, port, timeout=TIMEOUT_S)
    try:
        connection.connect()
        first_socket = connection.sock
        local = first_socket.getsockname()
        statuses = []
        for body in [GOOD, {"prompt": 5}, GOOD, {"prompt": "x"}, GOOD]:
            connection.request("POST", "/v1/completions" if "model" in body else "/tokenize",
                               body=json.dumps(body), headers={"Content-Type": "application/json"})
            response = connection.getresponse()
            json.loads(response.read())
            statuses.append(response.status)
            assert response.getheader("Connection") != "close"
        assert statuses == [200, 400, 200, 200, 200]
        assert connection.sock is first_socket and first_socket.getsockname() == local  # never reconnected
    finally:
        connection.close()


@pytest.mark.parametrize("nodelay", [True, False])
def test_accepted_sockets_have_tcp_nodelay_unless_switched_off(nodelay):
    server = make_server({"tiny": NUMPY_ARGS}, port=0, tcp_nodelay=nodelay)
    try:
        assert server.request_queue_size == LISTEN_BACKLOG >= 128
        with socket.create_connection(server.server_address[:2], timeout=TIMEOUT_S):
            accepted, _ = server.get_request()
            with accepted:
                assert bool(accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)) is nodelay
    finally:
        server.server_close()


def test_100_clients_arriving_together_are_all_served(server):
    clients = 100
    start = threading.Barrier(clients)
    results: list[object] = [None] * clients

    def client(index: int) -> None:
        try:
            start.wait(TIMEOUT_S)
            results[index] = _post(server, "/tokenize", {"prompt": f"client {index}"})
        except Exception as error:  # recorded, so the assertion names every failure
            results[index] = error

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(2 * TIMEOUT_S)
    failures = [r for r in results if not (isinstance(r, tuple) and r[0] == 200)]
    assert not failures, f"{len(failures)} of {clients} clients failed: {failures[:3]}"
    counts = sorted(r[1]["count"] for r in results)
    assert counts == sorted(len(f"client {i}".encode()) for i in range(clients))


def test_health_is_ok_after_a_smoke_pass_of_the_first_model():
    server = make_server({"tiny": NUMPY_ARGS}, port=0)
    serve_in_thread(server)
    try:
        assert server.pool.active_name is None
        status, reply = _request(server, "GET", "/health")
        assert status == 200 and reply["status"] == "ok" and reply["active_model"] == "tiny"
    finally:
        server.shutdown()
        server.server_close()


def _corrupt_copy(source: str, target, how: str) -> str:
    from safetensors.torch import load_file, save_file

    from birdie.train.integrity import write_manifest

    shutil.copytree(source, target)
    weights = target / "model.safetensors"
    if how == "nan":
        tensors = load_file(weights)
        save_file({k: torch.full_like(v, float("nan")) if v.is_floating_point() else v for k, v in tensors.items()},
                  weights)
        write_manifest(target)  # a consistent export whose weights are NaN: the finite check must catch it
    else:
        weights.write_bytes(weights.read_bytes()[:100])
    return str(target)


@pytest.mark.parametrize("how, reason", [("nan", "NaN or infinite"), ("truncated", "failed to load")])
def test_health_reports_a_broken_model_with_the_reason(birdie_checkpoint, tmp_path, how, reason):
    broken = _corrupt_copy(birdie_checkpoint, tmp_path / "broken", how)
    server = make_server({"bad": {"checkpoint": broken, "scoring": "causal"}, "tiny": NUMPY_ARGS}, port=0)
    serve_in_thread(server)
    try:
        for _ in range(2):  # the verdict holds on a second probe
            status, reply = _request(server, "GET", "/health")
            assert status == 503 and reply["status"] == "error"
            assert "model 'bad'" in reply["error"]["message"] and reason in reply["error"]["message"]
        assert _post(server, "/v1/completions", {**GOOD, "model": "tiny"})[0] == 200
        assert _request(server, "GET", "/health")[0] == 200  # the active model is now the healthy one
    finally:
        server.shutdown()
        server.server_close()
