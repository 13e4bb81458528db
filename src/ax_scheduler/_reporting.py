"""``report()``: what an objective calls while it runs. Standard library only.

This module runs inside worker processes (the local pool's, a job on an SSH host
or a Slurm node), so it imports nothing of Ax or the rest of ax-scheduler but the
error it raises. A trial reports through whichever channel its runner gave it:

* a local pool worker process: a Unix socket to the driver (:class:`SocketReporter`),
  event-driven both ways: the driver's "stop" arrives on the same connection;
* a thread of the driver (``backend="threading"``) or an ``async def`` objective on
  the driver's loop: a direct call (:class:`CallbackReporter`);
* anywhere else (a job on an SSH host or a Slurm node, a Python script that
  imports ax-scheduler): JSON lines appended to ``$JOB_PROGRESS_FILE``
  (:class:`FileReporter`), which the driver reads on its status tick; the stop is
  SIGTERM, which the job's worker turns into ``JOB_STOP_REQUESTED`` for us.

A stop decided by the early-stopping strategy makes the objective's next
:func:`report` raise :class:`~ax_scheduler.TrialStoppedEarly`.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import math
import os
import socket
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Protocol

from ._exceptions import TrialStoppedEarly

#: The file a trial's JSON progress lines go to (set for scripts, containers and remote jobs).
PROGRESS_FILE_VARIABLE = "JOB_PROGRESS_FILE"
#: Set (to the reason) in a job's environment once its worker was told to stop.
STOP_VARIABLE = "JOB_STOP_REQUESTED"
#: The progress file's name in a trial's folder.
PROGRESS_FILE_NAME = "progress.jsonl"

#: Seconds a pool worker waits for the driver to confirm it has the trial's reports.
ACK_TIMEOUT_SECONDS = 5.0

#: A metric's value: a number, or ``(mean, sem)``.
MetricValue = float | tuple[float, float | None]


class Reporter(Protocol):
    """Where one trial's reports go."""

    def send(self, step: float, metrics: dict[str, Any]) -> None:
        """Hand one report to the driver."""

    def stop_reason(self) -> str | None:
        """Why the driver wants the trial stopped, or None while it may go on."""


_current: contextvars.ContextVar[Reporter | None] = contextvars.ContextVar(
    "ax_scheduler_reporter", default=None
)
#: The reporter of this whole process: a local pool worker runs one trial at a
#: time, and threads an objective starts itself do not inherit context variables.
_process_reporter: Reporter | None = None
_steps: dict[int, float] = {}  # id(reporter) -> last step, for report() without a step


def report(metrics: Mapping[str, MetricValue], step: float | None = None) -> None:
    """Report a running trial's intermediate results.

    Call it from the objective while it runs, e.g. once per epoch or iteration::

        from ax_scheduler import report

        def train(params):
            for epoch in range(30):
                loss = fit_one_epoch(params)
                report({"loss": loss}, step=epoch)
            return {"loss": loss}

    The values go to Ax as the trial's curve (``step`` is Ax's progression), the
    early-stopping strategy judges them, and ``results()`` and the report show
    them. A trial the strategy stops gets :class:`~ax_scheduler.TrialStoppedEarly`
    from its next ``report()``: an objective that does not catch it ends there.

    Args:
        metrics: Metric name -> a number or ``(mean, sem)``.
        step: The progression (epoch, iteration, simulated time); it should grow
            from report to report. None counts reports: 1, 2, 3, ...

    Raises:
        TrialStoppedEarly: The early-stopping strategy stopped this trial.
        TypeError: ``metrics`` is not a mapping of names to numbers, or ``step`` is
            not a number.
        RuntimeError: Called outside a trial run by ax-scheduler.
    """
    reporter = current_reporter()
    if reporter is None:
        raise RuntimeError(
            "ax_scheduler.report() was called outside a trial: call it from an objective"
            " that an AxScheduler runs (or set JOB_PROGRESS_FILE to a file to append to)"
        )
    reason = reporter.stop_reason()
    if reason is not None:
        raise TrialStoppedEarly(reason)
    reporter.send(_step(reporter, step), check_metrics(metrics))


def current_reporter() -> Reporter | None:
    """This trial's reporter: the context's, the process's, or the progress file's."""
    reporter = _current.get() or _process_reporter
    if reporter is None and os.environ.get(PROGRESS_FILE_VARIABLE):
        reporter = FileReporter(os.environ[PROGRESS_FILE_VARIABLE])
        _set_process_reporter(reporter)
    return reporter


def _step(reporter: Reporter, step: float | None) -> float:
    if step is None:
        value = _steps.get(id(reporter), 0.0) + 1
    elif isinstance(step, bool) or not isinstance(step, int | float) or not math.isfinite(step):
        raise TypeError(f"report(step=...) must be a finite number, got {step!r}")
    else:
        value = step
    _steps[id(reporter)] = value
    return value


def check_metrics(metrics: Any) -> dict[str, Any]:
    """``metrics`` as a JSON-safe dict of names to numbers or ``[mean, sem]``.

    Raises:
        TypeError: It is not a mapping of names to numbers or pairs.
    """
    if not isinstance(metrics, Mapping) or not metrics:
        raise TypeError(f"report() takes a non-empty dict of metric name -> value, got {metrics!r}")
    checked: dict[str, Any] = {}
    for name, value in metrics.items():
        if not isinstance(name, str):
            raise TypeError(f"report(): metric names must be strings, got {name!r}")
        checked[name] = _plain_value(name, value)
    return checked


def _plain_value(name: str, value: Any) -> Any:
    if isinstance(value, tuple | list) and len(value) == 2:
        return [_number(name, value[0]), None if value[1] is None else _number(name, value[1])]
    return _number(name, value)


def _number(name: str, value: Any) -> float:
    if hasattr(value, "item"):  # numpy and torch scalars
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"report(): metric {name!r} must be a number or (mean, sem), got {value!r}")
    return float(value)


@contextlib.contextmanager
def reporting_to(reporter: Reporter, *, whole_process: bool = False) -> Iterator[None]:
    """Send the ``report()`` calls made inside this block to ``reporter``.

    Args:
        whole_process: Also for threads the objective starts (a local pool worker,
            which runs one trial at a time).
    """
    token = _current.set(reporter)
    if whole_process:
        _set_process_reporter(reporter)
    try:
        yield
    finally:
        _current.reset(token)
        _steps.pop(id(reporter), None)
        if whole_process:
            _set_process_reporter(None)


def _set_process_reporter(reporter: Reporter | None) -> None:
    global _process_reporter
    _process_reporter = reporter


class CallbackReporter:
    """Reports of an objective on a driver's thread or its loop: a direct call.

    Args:
        deliver: Takes ``(step, metrics)``; safe to call from any thread (the
            caller wraps it in ``loop.call_soon_threadsafe`` where needed).
    """

    def __init__(self, deliver: Callable[[float, dict[str, Any]], None]) -> None:
        self._deliver = deliver
        self.reason: str | None = None

    def send(self, step: float, metrics: dict[str, Any]) -> None:
        self._deliver(step, metrics)

    def stop_reason(self) -> str | None:
        return self.reason


class SocketReporter:
    """Reports of a local pool worker: JSON lines on a Unix socket to the driver.

    The connection is made at the first report and names the trial by ``token``;
    the driver answers with a line ``{"stop": reason}`` when the trial is to stop,
    read without blocking before each report.
    """

    def __init__(self, path: str, token: str) -> None:
        self._path = path
        self._token = token
        self._socket: socket.socket | None = None
        self._buffer = b""
        self._reason: str | None = None
        self._lock = threading.Lock()

    def send(self, step: float, metrics: dict[str, Any]) -> None:
        line = json.dumps({"token": self._token, "step": step, "metrics": metrics})
        with self._lock:
            self._connected().sendall(line.encode() + b"\n")

    def stop_reason(self) -> str | None:
        with self._lock:
            if self._reason is None and self._socket is not None:
                self._read_replies()
            return self._reason

    def _connected(self) -> socket.socket:
        if self._socket is None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(self._path)
            self._socket = sock
        return self._socket

    def _read_replies(self) -> None:
        assert self._socket is not None
        self._socket.setblocking(False)
        try:
            while chunk := self._socket.recv(4096):
                self._buffer += chunk
        except (BlockingIOError, InterruptedError):
            pass
        finally:
            self._socket.setblocking(True)
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            with contextlib.suppress(ValueError, AttributeError):
                self._reason = str(json.loads(line)["stop"])

    def close(self) -> None:
        """Wait until the driver has every report (its ack of an end line), then close.

        The trial's result travels by another pipe: without this, it could be
        recorded before its last reports arrive.
        """
        if self._socket is None:
            return
        with contextlib.suppress(OSError):
            self._socket.sendall(json.dumps({"token": self._token, "end": True}).encode() + b"\n")
            self._socket.settimeout(ACK_TIMEOUT_SECONDS)
            while b'"ack"' not in self._buffer:
                chunk = self._socket.recv(4096)
                if not chunk:
                    break
                self._buffer += chunk
        self._socket.close()
        self._socket = None


class FileReporter:
    """Reports as JSON lines appended to a file (``$JOB_PROGRESS_FILE``).

    Each line is written whole with one ``write`` on a file opened for appending,
    so the driver never reads half a line as a whole one. The stop is SIGTERM,
    which the job's worker turns into ``$JOB_STOP_REQUESTED``.
    """

    def __init__(self, path: str) -> None:
        self._path = path

    def send(self, step: float, metrics: dict[str, Any]) -> None:
        line = json.dumps({"step": step, **metrics}) + "\n"
        with open(self._path, "a", encoding="utf-8") as file:
            file.write(line)

    def stop_reason(self) -> str | None:
        return os.environ.get(STOP_VARIABLE) or None
