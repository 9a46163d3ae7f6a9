"""The server's models: loaded by name on request, one at a time, switched without restarting the server.

Each served name maps to load arguments (``checkpoint=DIR`` or ``module=pkg.mod,tag=T,...``, plus the scoring
options ``scoring``, ``batch_size``, ``state_reuse``, ``prefix_cache``, ``device``). A request for another name
unloads the current model first. In-process models are released by dropping every reference (then
``gc.collect`` and, on GPUs, ``torch.cuda.empty_cache``). Models loaded with ``isolate=true`` (frameworks that
cannot free their memory, such as JAX) run in a child process that the switch terminates; the parent and child
exchange JSON only.
"""

from __future__ import annotations

import gc
import json
import math
import multiprocessing
import threading
from typing import Any

from birdie.harness.core import Scorer, ScorerConfig
from birdie.harness.endpoint import ModelEndpoint, RequestError, ServerLimits
from birdie.harness.adapters import as_bool, load_scoring_model, parse_model_args

#: how long a child may take to load its model before the request fails (seconds)
CHILD_LOAD_TIMEOUT_S = 600.0
#: the request of the health check's smoke forward pass (log-probs of a short prompt and one greedy token)
SMOKE_REQUEST = {"prompt": "Hello", "echo": True, "max_tokens": 1, "logprobs": 1, "temperature": 0}


def smoke_test(endpoint: Any) -> str | None:
    """Run one forward pass through ``endpoint``; None when it gave finite log-probs, else what went wrong."""
    try:
        reply = endpoint.handle("completions", dict(SMOKE_REQUEST))
        logprobs = reply["choices"][0]["logprobs"]
        values = [v for v in logprobs["token_logprobs"] if v is not None]
        values += [v for top in logprobs["top_logprobs"] if top for v in top.values()]
    except Exception as error:  # whatever breaks the model breaks its health, with the reason
        return f"the smoke forward pass failed: {type(error).__name__}: {error}"
    if not values or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
        return f"the smoke forward pass gave non-finite log-probs {values[:8]}: the weights are corrupt"
    return None


def build_endpoint(name: str, args: dict[str, Any], limits: ServerLimits) -> ModelEndpoint:
    """Load the model named ``name`` from its load arguments (``isolate`` must already be removed)."""
    options = dict(args)
    config = ScorerConfig(
        batch_size=int(options.pop("batch_size", 16)),
        state_reuse=as_bool(options.pop("state_reuse", True), "state_reuse"),
        prefix_cache_size=int(options.pop("prefix_cache", 0)),
    )
    return ModelEndpoint(name, Scorer(load_scoring_model(**options), config), limits)


def _child_main(connection: Any, name: str, args: dict[str, Any], limits: dict[str, int]) -> None:
    """Child process: load the model, then answer JSON requests until told to exit or the pipe closes."""
    try:
        endpoint = build_endpoint(name, args, ServerLimits(**limits))
    except Exception as error:  # the parent reports it to the client
        connection.send_bytes(json.dumps({"error": f"{type(error).__name__}: {error}", "status": 500}).encode())
        return
    connection.send_bytes(b'{"ready": true}')
    while True:
        try:
            message = json.loads(connection.recv_bytes())
        except EOFError:
            return
        if message.get("op") == "exit":
            return
        try:
            reply = {"result": endpoint.handle(message["op"], message["body"])}
        except RequestError as error:
            reply = {"error": error.message, "status": error.status}
        except Exception as error:
            reply = {"error": f"{type(error).__name__}: {error}", "status": 500}
        connection.send_bytes(json.dumps(reply).encode())


class ChildEndpoint:
    """A :class:`ModelEndpoint` living in a spawned child process."""

    def __init__(self, name: str, args: dict[str, Any], limits: ServerLimits) -> None:
        context = multiprocessing.get_context("spawn")
        self._connection, child_end = context.Pipe()
        limit_values = {k: getattr(limits, k) for k in limits.__dataclass_fields__}
        self.process = context.Process(target=_child_main, args=(child_end, name, args, limit_values), daemon=True)
        self.process.start()
        child_end.close()
        self._receive(CHILD_LOAD_TIMEOUT_S)

    def _receive(self, timeout: float) -> Any:
        waited = 0.0
        while not self._connection.poll(0.5):
            waited += 0.5
            if not self.process.is_alive() or waited >= timeout:
                self.close()
                raise RuntimeError("the model's child process died or did not answer; see the server log")
        message = json.loads(self._connection.recv_bytes())
        if "error" in message:
            if message["status"] >= 500:
                self.close()
                raise RuntimeError(message["error"])
            raise RequestError(message["status"], message["error"])
        return message.get("result")

    def handle(self, operation: str, body: dict[str, Any]) -> dict[str, Any]:
        self._connection.send_bytes(json.dumps({"op": operation, "body": body}).encode())
        return self._receive(float("inf"))

    def close(self) -> None:
        """Stop the child (politely, then by force) and wait for it."""
        if self.process.is_alive():
            try:
                self._connection.send_bytes(b'{"op": "exit"}')
            except (BrokenPipeError, OSError):
                pass
            self.process.join(5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(5)
        self._connection.close()


class ModelPool:
    """Named models served one at a time; thread-safe (requests are serialised on the active model).

    Args:
        models: served name -> load arguments (a dict, or an lm-eval style ``key=value,...`` string).
        limits: request limits.
        isolate: run every model in a child process (per model: ``isolate=true`` in its arguments).
    """

    def __init__(self, models: dict[str, dict[str, Any] | str], limits: ServerLimits | None = None,
                 isolate: bool = False) -> None:
        if not models:
            raise ValueError("serve at least one model (--checkpoint DIR or --model NAME ARGS)")
        self.models = {name: parse_model_args(args) if isinstance(args, str) else dict(args)
                       for name, args in models.items()}
        self.default = next(iter(self.models))
        self.limits = limits or ServerLimits()
        self.isolate = isolate
        self._lock = threading.Lock()
        self._active_name: str | None = None
        self._active: Any = None
        self._checked: tuple[Any, str | None] | None = None  # (loaded model, its smoke test's problem or None)
        self._load_errors: dict[str, str] = {}  # models whose load failed in a health check -> why
        self.loads = 0

    @property
    def active_name(self) -> str | None:
        return self._active_name

    def call(self, name: str | None, operation: str, body: dict[str, Any]) -> dict[str, Any]:
        """Run ``operation`` on model ``name`` (default: the first served model), loading it if needed."""
        name = self.default if name is None else name
        if not isinstance(name, str):
            raise RequestError(400, f"'model' must be a string; served models: {', '.join(self.models)}")
        if name not in self.models:
            raise RequestError(404, f"unknown model {name!r}; served models: {', '.join(self.models)}")
        with self._lock:
            self._activate(name)
            return self._active.handle(operation, body)

    def health(self) -> str | None:
        """None when the active model (else the first served one) passed a smoke forward pass, else the reason.

        The pass runs once per load. A model that failed to load is not loaded again by health checks (requests
        still try, so a repaired file is picked up).
        """
        with self._lock:
            name = self._active_name or self.default
            if self._active is None and name in self._load_errors:
                return self._load_errors[name]
            try:
                self._activate(name)
            except Exception as error:
                self._load_errors[name] = f"model {name!r} failed to load: {type(error).__name__}: {error}"
                return self._load_errors[name]
            if self._checked is None or self._checked[0] is not self._active:
                self._checked = (self._active, smoke_test(self._active))
            problem = self._checked[1]
            return None if problem is None else f"model {name!r}: {problem}"

    def _activate(self, name: str) -> None:
        """Make ``name`` the loaded model (the caller holds the lock)."""
        if self._active_name != name:
            self._unload()
            self._active = self._load(name)
            self._active_name = name
            self._load_errors.pop(name, None)
            self.loads += 1

    def _load(self, name: str) -> Any:
        args = dict(self.models[name])
        isolate = as_bool(args.pop("isolate", self.isolate), "isolate")
        if isolate:
            return ChildEndpoint(name, args, self.limits)
        return build_endpoint(name, args, self.limits)

    def _unload(self) -> None:
        active, self._active, self._active_name, self._checked = self._active, None, None, None
        if isinstance(active, ChildEndpoint):
            active.close()
            return
        del active
        gc.collect()
        try:
            import torch
        except ImportError:
            return
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def close(self) -> None:
        """Unload the active model (stops its child process, if any)."""
        with self._lock:
            self._unload()
