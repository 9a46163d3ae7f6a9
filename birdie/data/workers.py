"""Worker processes that produce batches for the pipeline.

Each worker owns some of the pipeline's streams and talks to the training process over its own duplex pipe:
the main process sends ``(batch_index, probs)`` tasks, the worker answers ``(batch_index, buffer, state,
stats)`` with the packed batch as one int64 numpy array (pickled with protocol 5: a buffer copy, never Python
lists). Private pipes mean a killed worker cannot leave a shared queue locked.

Failures: a worker that raises sends its traceback and exits; the main process waits on every pipe *and* every
process sentinel at once, so an exception or a death (SIGKILL, out of memory) surfaces as
:class:`PipelineWorkerError` as soon as it happens, and a worker that stays silent for ``batch_timeout_s`` while
its batch is due (a stuck source) does too. Workers ignore SIGINT (Ctrl-C reaches only the training
process, which then shuts them down), exit when their pipe closes or their parent changes, and are daemonic, so
none outlives the training process.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time
import traceback
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Sequence

import numpy as np

from birdie.data.sources import Source
from birdie.data.config import PipelineConfig
from birdie.data.streams import BatchStats, BatchStream, StreamState
from birdie.objectives.base import ObjectiveConfig
from birdie.tokenizers import Tokenizer

POLL_SECONDS = 1.0
SHUTDOWN_SECONDS = 2.0


class PipelineWorkerError(RuntimeError):
    """A pipeline worker raised or died; the message carries its traceback or exit status."""


@dataclass(frozen=True)
class StreamFactory:
    """Builds the training streams of one rank; picklable when its source and tokenizer are (spawn)."""

    source: Source
    tokenizer: Tokenizer
    objectives: tuple[ObjectiveConfig, ...]
    config: PipelineConfig

    def make(self, stream: int, state: StreamState | None = None) -> BatchStream:
        config = self.config
        return BatchStream(
            self.source, self.tokenizer, self.objectives, config, "train",
            stream=config.rank * config.num_streams + stream, num_streams=config.world_size * config.num_streams,
            rng_key=(config.seed, 0, config.rank), state=state,
        )


def _worker_main(conn: Connection, factory: StreamFactory, states: dict[int, StreamState], parent_pid: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    streams = {s: factory.make(s, state) for s, state in states.items()}
    while True:
        try:
            while not conn.poll(POLL_SECONDS):
                if os.getppid() != parent_pid:  # the training process is gone
                    return
            task = conn.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        batch_index, probs = task
        try:
            stream = streams[batch_index % factory.config.num_streams]
            buffer, stats = stream.next_batch(batch_index, probs)
            conn.send((batch_index, buffer, stream.state, stats))
        except Exception:
            conn.send((batch_index, None, traceback.format_exc(), None))
            return


class WorkerPool:
    """``num_workers`` processes; worker ``w`` owns the streams ``s`` with ``s % num_workers == w``.

    Args:
        factory: builds each worker's streams.
        states: the state of every stream to start from.
        num_workers: processes to start (at most ``len(states)``).
        start_method: multiprocessing start method; ``"fork"`` (the default where available) also works with
            sources and tokenizers that cannot be pickled.
        batch_timeout_s: how long a worker may deliver nothing while one of its batches is due (None: forever).
    """

    def __init__(self, factory: StreamFactory, states: Sequence[StreamState], num_workers: int,
                 start_method: str | None = None, batch_timeout_s: float | None = None) -> None:
        context = mp.get_context(start_method or ("fork" if "fork" in mp.get_all_start_methods() else "spawn"))
        self.num_streams = len(states)
        self.num_workers = num_workers
        self.batch_timeout_s = batch_timeout_s
        self.processes: list[mp.process.BaseProcess] = []
        self.conns: list[Connection] = []
        self._ready: dict[int, tuple[np.ndarray, StreamState, BatchStats]] = {}
        for w in range(num_workers):
            parent, child = context.Pipe(duplex=True)
            owned = {s: states[s] for s in range(w, self.num_streams, num_workers)}
            process = context.Process(target=_worker_main, args=(child, factory, owned, os.getpid()), daemon=True,
                                      name=f"birdie-data-worker-{w}")
            process.start()
            child.close()
            self.processes.append(process)
            self.conns.append(parent)

    def owner(self, batch_index: int) -> int:
        return (batch_index % self.num_streams) % self.num_workers

    def submit(self, batch_index: int, probs: np.ndarray) -> None:
        """Ask the owning worker for batch ``batch_index`` under ``probs``."""
        w = self.owner(batch_index)
        try:
            self.conns[w].send((batch_index, probs))
        except (BrokenPipeError, ConnectionResetError, OSError):
            self._collect(w)
            self._raise_if_dead(w)
            raise

    def result(self, batch_index: int) -> tuple[np.ndarray, StreamState, BatchStats]:
        """Wait for batch ``batch_index``; raise :class:`PipelineWorkerError` as soon as any worker fails, or
        when its worker has delivered nothing for ``batch_timeout_s``."""
        owner = self.owner(batch_index)
        deadline = None if self.batch_timeout_s is None else time.monotonic() + self.batch_timeout_s
        while batch_index not in self._ready:
            sentinels = [p.sentinel for p in self.processes]
            ready = wait(self.conns + sentinels, timeout=POLL_SECONDS)
            for w in range(self.num_workers):
                if self.conns[w] in ready or self.processes[w].sentinel in ready:
                    self._collect(w)
                    self._raise_if_dead(w)
            if self.conns[owner] in ready and deadline is not None:
                deadline = time.monotonic() + self.batch_timeout_s
            if deadline is not None and time.monotonic() > deadline and batch_index not in self._ready:
                raise PipelineWorkerError(
                    f"pipeline worker {owner} (pid {self.processes[owner].pid}) delivered nothing for "
                    f"{self.batch_timeout_s} s while batch {batch_index} was due: a stuck source or objective? "
                    "Check the source, or raise PipelineConfig.batch_timeout_s (None waits forever)"
                )
        return self._ready.pop(batch_index)

    def _collect(self, w: int) -> None:
        conn = self.conns[w]
        while True:
            try:
                if not conn.poll():
                    return
                batch_index, buffer, state, stats = conn.recv()
            except (EOFError, OSError):
                return
            if buffer is None:
                raise PipelineWorkerError(
                    f"pipeline worker {w} (pid {self.processes[w].pid}) raised while producing batch {batch_index}:\n"
                    f"{state}"
                )
            self._ready[batch_index] = (buffer, state, stats)

    def _raise_if_dead(self, w: int) -> None:
        process = self.processes[w]
        if process.is_alive():
            return
        process.join(0)
        code = process.exitcode
        cause = f"was killed by signal {signal.Signals(-code).name}" if code is not None and code < 0 else \
            f"exited with code {code}"
        raise PipelineWorkerError(
            f"pipeline worker {w} (pid {process.pid}) {cause} without reporting an error (killed by the OS or "
            "the user, out of memory, or a crash in native code); the pipeline has been shut down"
        )

    def close(self) -> None:
        """Stop every worker: ask politely, then terminate, then kill; idempotent."""
        for conn in self.conns:
            try:
                conn.send(None)
            except (OSError, ValueError):
                pass
        for process in self.processes:
            process.join(SHUTDOWN_SECONDS)
            if process.is_alive():
                process.terminate()
                process.join(SHUTDOWN_SECONDS)
            if process.is_alive():
                process.kill()
                process.join()
        for conn in self.conns:
            conn.close()
        self.processes, self.conns = [], []
        self._ready.clear()
