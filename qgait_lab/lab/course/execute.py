"""Execute a notebook top to bottom in a fresh kernel, robust to lost messages and lost requests.

Two ways a headless run can sit idle although nothing is slow:

* **A missed wake-up on the client's socket.**  nbclient waits for a cell's
  reply with one ``poll`` on the shell socket, as long as the cell timeout.
  pyzmq's asyncio sockets learn about incoming messages from libzmq's
  edge-triggered ``ZMQ_FD``, and libzmq documents that after a send on the same
  socket a message can become readable without a new edge.  The client sends
  every request on the socket it then polls for the reply, so now and then the
  reply sits in the socket while the poll sleeps on; at the timeout pyzmq
  checks the socket once more, finds the reply, and the run goes on as if the
  cell had taken the whole timeout.  This is the stall seen in this project's
  notebook tests: twice in six runs, 10 minutes (the cell timeout) between a
  cell's reply and the next cell's start, after which the run passed.
  :class:`WatchedClient` therefore polls both channels in short slices
  (``poll_slice_s``, 1 s): every slice ends with that final check, so a missed
  wake-up costs at most one slice.
* **A request the kernel never reads** (ipykernel 7, issue #1554, the same
  edge-triggered corollary on the kernel's side).  The package pins ipykernel
  below 7, and the watchdog catches the symptom: a kernel that has not even
  *started* a cell (no ``busy`` status for that request on IOPub) within
  ``silence_s`` seconds is reported at once as :class:`KernelStall`, naming the
  notebook and the cell.  A cell that is merely slow has gone busy and is left
  alone, up to ``cell_timeout``.

The test suite, ``qgait-lab lab grade`` and the run-time measurements of the
notebooks all execute through :func:`execute_notebook`.
"""
from __future__ import annotations

import asyncio
import os
import time
from queue import Empty
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError


class KernelStall(RuntimeError):
    """The kernel never started executing a cell: the request was lost."""


class NotebookTimeout(RuntimeError):
    """The notebook as a whole ran past its time limit."""


def _cell_label(nb, index: int) -> str:
    source = nb.cells[index].source.strip().splitlines()
    first = source[0][:70] if source else ""
    return f"cell {index} ({first!r})"


class WatchedClient(NotebookClient):
    """nbclient's client plus sliced polls, a lost-request watchdog and a whole-notebook deadline."""

    def __init__(self, nb, *, name: str = "notebook", silence_s: float = 60.0, deadline: float | None = None,
                 poll_slice_s: float | None = 1.0, **kwargs):
        super().__init__(nb, **kwargs)
        self.name = name
        self.silence_s = silence_s
        self.poll_slice_s = poll_slice_s
        self.deadline = deadline
        self.stalled: int | None = None
        self.cell_seconds: dict[int, float] = {}
        self._watch: asyncio.Task | None = None
        self._started = 0.0
        self.on_cell_complete = self._arm
        self.on_cell_executed = self._disarm

    async def async_start_new_kernel_client(self):
        kc = await super().async_start_new_kernel_client()
        if self.poll_slice_s is not None:
            self._slice_polls(kc)
        return kc

    def _slice_polls(self, kc) -> None:
        """Make every wait on the shell and IOPub channels a series of short polls (module docstring)."""
        for channel in (kc.shell_channel, kc.iopub_channel):
            channel.get_msg = sliced_get_msg(channel.get_msg, self.poll_slice_s)

    def _get_timeout(self, cell):
        timeout = super()._get_timeout(cell)
        if self.deadline is None:
            return timeout
        left = max(1, int(self.deadline - time.monotonic()))
        return left if timeout is None else min(timeout, left)

    async def _arm(self, cell, cell_index: int) -> None:
        """Called once the execute request is sent: start the watch for this cell."""
        self._started = time.monotonic()
        self._watch = asyncio.ensure_future(self._watch_for_start(cell, cell_index))

    async def _disarm(self, cell, cell_index: int, execute_reply) -> None:
        self.cell_seconds[cell_index] = time.monotonic() - self._started
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None

    async def _watch_for_start(self, cell, cell_index: int) -> None:
        await asyncio.sleep(self.silence_s)
        execution = cell.get("metadata", {}).get("execution", {})
        if "iopub.status.busy" not in execution and "iopub.execute_input" not in execution:
            self.stalled = cell_index
            if self.task_poll_for_reply is not None:
                self.task_poll_for_reply.cancel()


def sliced_get_msg(get_msg, slice_s: float):
    """``get_msg(timeout)`` made of polls of at most ``slice_s`` seconds each, same contract.

    It returns the first message, or raises ``queue.Empty`` once ``timeout``
    (``None``: never) has passed without one.
    """
    async def get(timeout: float | None = None):
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            wait = slice_s if deadline is None else min(slice_s, max(0.0, deadline - time.monotonic()))
            try:
                return await get_msg(timeout=wait)
            except Empty:
                if deadline is not None and time.monotonic() >= deadline:
                    raise

    return get


@dataclass
class ExecutionReport:
    """What one execution did: the executed notebook, its time, each cell's time, and the error if any."""

    name: str
    notebook: nbformat.NotebookNode
    seconds: float
    cell_seconds: dict[int, float] = field(default_factory=dict)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def execute_notebook(path: str | Path | nbformat.NotebookNode, workdir: str | Path, *,
                     env: Mapping[str, str] | None = None, cell_timeout: float = 600,
                     notebook_timeout: float | None = None, silence_s: float = 60.0,
                     name: str | None = None, raise_on_error: bool = True, allow_errors: bool = False,
                     poll_slice_s: float | None = 1.0,
                     client_class: type[WatchedClient] = WatchedClient) -> ExecutionReport:
    """Run every cell in a new ``python3`` kernel whose working directory is ``workdir``.

    ``env`` is added to the kernel's environment.  ``poll_slice_s`` is the longest single
    poll of a channel (``None``: nbclient's one poll per wait, which a missed wake-up stalls).  With ``allow_errors`` a cell
    that raises is recorded in its outputs and the next cells still run (grading).  A cell error raises
    ``CellExecutionError`` (or, with ``raise_on_error=False``, is recorded in the
    report and execution stops there); a lost request raises :class:`KernelStall`
    and an overrun of ``notebook_timeout`` raises :class:`NotebookTimeout`
    whatever ``raise_on_error`` says, since the notebook did not finish.
    """
    if isinstance(path, nbformat.NotebookNode):
        nb, label = path, name or "notebook"
    else:
        nb, label = nbformat.read(str(path), as_version=4), name or Path(path).stem
    Path(workdir).mkdir(parents=True, exist_ok=True)
    deadline = None if notebook_timeout is None else time.monotonic() + notebook_timeout
    kernel_env = {**os.environ, **dict(env or {})}
    client = client_class(nb, name=label, silence_s=silence_s, deadline=deadline, poll_slice_s=poll_slice_s,
                          timeout=int(cell_timeout),
                          kernel_name="python3", resources={"metadata": {"path": str(workdir)}},
                          allow_errors=allow_errors)
    start = time.monotonic()
    error = None
    try:
        client.execute(env=kernel_env)
    except DeadKernelError as err:
        if client.stalled is not None:
            raise KernelStall(f"{label}: the kernel never started {_cell_label(nb, client.stalled)} within "
                              f"{silence_s:.0f} s of the request: a lost request (ipykernel #1554), not a slow "
                              "cell") from None
        error = f"{label}: the kernel died: {err}"
        if raise_on_error:
            raise
    except CellTimeoutError as err:
        if deadline is not None and time.monotonic() >= deadline - 1:
            raise NotebookTimeout(f"{label}: ran past its limit of {notebook_timeout:.0f} s") from None
        error = f"{label}: a cell ran past {cell_timeout:.0f} s: {str(err)[:300]}"
        if raise_on_error:
            raise
    except CellExecutionError as err:
        error = f"{label}: {str(err)[-3000:]}"
        if raise_on_error:
            raise
    return ExecutionReport(label, nb, time.monotonic() - start, dict(client.cell_seconds), error)
