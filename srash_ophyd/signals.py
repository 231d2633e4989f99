"""SIGTERM and SIGHUP end a scan the way Ctrl-C does: the run is closed, nothing is lost.

A service manager (systemd, ``timeout``, a batch system, a closed terminal) ends a process
with SIGTERM or SIGHUP. Python's default for both is to die at once, which leaves the open
run with only its start document in the catalog (the writer keeps events until the stop
document). Here:

- :class:`TerminationHandler` is one of the RunEngine's ``context_managers`` (the place of
  bluesky's own ``SigintHandler``), active only while the RunEngine runs a plan. On SIGTERM or
  SIGHUP it aborts the run from a helper thread (``RE.abort(reason="terminated by
  SIGTERM")``): the RunEngine runs its cleanup, the stop document (``exit_status "abort"``,
  that reason) reaches the writer, the finished tiles are written. When the RunEngine returns,
  the handler raises :class:`Terminated`.
- :func:`terminate_gracefully` (a context manager around a whole command) turns the same
  signals into :class:`Terminated` whenever no plan runs, so ``finally`` blocks close the
  catalog and temporary files are removed.
- In the interactive shell, ``exit_after_run=True`` re-delivers the signal with its default
  action once the run is closed (the process then dies by it, as a plain SIGTERM would have
  done, but after the data are safe).

SIGKILL and power loss cannot be caught: :mod:`srash_ophyd.journal` covers those.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
from typing import Any, Iterator

__all__ = ["TERMINATION_SIGNALS", "Terminated", "TerminationHandler", "exit_status_for",
           "keep_abort_reason", "terminate_gracefully"]

#: The signals handled like Ctrl-C (SIGHUP where the platform has it).
TERMINATION_SIGNALS: tuple[signal.Signals, ...] = tuple(
    s for s in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None)) if s)


class Terminated(BaseException):
    """The process received SIGTERM or SIGHUP. A ``BaseException`` (like
    ``KeyboardInterrupt``), so ``except Exception`` does not swallow it."""

    def __init__(self, signum: int) -> None:
        self.signum = int(signum)
        self.signame = signal.Signals(signum).name
        super().__init__(f"terminated by {self.signame}")


def exit_status_for(exc: Terminated) -> int:
    """The shell convention for a process ended by a signal: 128 + signal number."""
    return 128 + exc.signum


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


class TerminationHandler:
    """RunEngine context manager (``RE.context_managers.append(TerminationHandler)``).

    The signal is noticed by a watch thread through :func:`signal.set_wakeup_fd`, not only
    by the Python-level handler: the kernel delivers a process-directed signal to any thread
    that does not block it, and when that is not the main thread, the main thread (blocked
    in the RunEngine's wait for the plan) would run the Python handler only after the plan
    had finished, so the abort would come too late. The C-level handler writes the signal
    number to the wakeup socket whichever thread it runs on; the watch thread reads it and
    aborts at once. Bytes of other signals are passed on to the wakeup fd that was set
    before (an asyncio loop of the main thread, say).

    ``exit_after_run``: class attribute; when True the signal is re-delivered with its default
    action after the run is closed instead of raising :class:`Terminated`.
    """

    exit_after_run = False

    def __init__(self, RE: Any) -> None:
        self._RE = RE
        self._signum: int | None = None
        self._done = False
        self._previous: dict[int, Any] = {}
        self._previous_fd = -1
        self._thread: threading.Thread | None = None
        self._rsock: socket.socket | None = None
        self._wsock: socket.socket | None = None

    def _forward(self, data: bytes) -> None:
        """Pass wakeup bytes of other signals on to the previous wakeup fd."""
        if self._previous_fd < 0 or not data:
            return
        with contextlib.suppress(OSError):
            os.write(self._previous_fd, data)

    def _watch(self) -> None:
        assert self._rsock is not None
        termination = {int(s) for s in TERMINATION_SIGNALS}
        while True:
            try:
                data = self._rsock.recv(256)
            except OSError:
                return
            if not data or self._done:
                return
            hits = [b for b in data if b in termination]
            self._forward(bytes(b for b in data if b not in termination and b != 0))
            if not hits:
                continue
            if self._signum is None:
                self._signum = hits[0]
            break
        name = signal.Signals(self._signum).name
        try:
            self._RE.abort(reason=f"terminated by {name}")
        except Exception:  # noqa: BLE001 - already idle or aborting: nothing left to close
            pass

    def _poke(self, value: int) -> None:
        if self._wsock is not None:
            with contextlib.suppress(OSError):
                self._wsock.send(bytes([value]))

    def _handler(self, signum: int, frame: Any) -> None:  # must stay tiny (signal context)
        if self._signum is None:
            self._signum = signum
        self._poke(signum)  # where no wakeup fd could be set, this wakes the watch thread

    def __enter__(self) -> "TerminationHandler":
        if not _in_main_thread():  # signal handlers can only be set in the main thread
            return self
        self._rsock, self._wsock = socket.socketpair()
        self._wsock.setblocking(False)
        for s in TERMINATION_SIGNALS:
            self._previous[s] = signal.signal(s, self._handler)
        try:
            self._previous_fd = signal.set_wakeup_fd(self._wsock.fileno(),
                                                     warn_on_full_buffer=False)
        except (ValueError, OSError):  # the Python handler still pokes the watch thread
            self._previous_fd = -1
        self._thread = threading.Thread(target=self._watch, name="srash-termination",
                                        daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._done = True
        self._poke(0)
        if self._thread is not None:
            self._thread.join()
            with contextlib.suppress(ValueError, OSError):
                signal.set_wakeup_fd(self._previous_fd)
        for s, previous in self._previous.items():
            signal.signal(s, previous)
        self._previous.clear()
        for sock in (self._rsock, self._wsock):
            if sock is not None:
                sock.close()
        self._rsock = self._wsock = None
        self._thread = None
        if self._signum is None:
            return
        signum, self._signum = self._signum, None
        if self.exit_after_run:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
        raise Terminated(signum)


def keep_abort_reason(RE: Any) -> None:
    """Make the reason given to ``RE.abort(reason=...)`` reach the stop document.

    bluesky's ``run_wrapper`` closes an aborted run with ``close_run(exit_status="abort")``,
    whose message carries ``reason=None`` explicitly, so the RunEngine's stored abort reason
    is never used and the stop document says nothing. This wraps the ``close_run`` command:
    a close without reason of a run being aborted gets the abort's reason. Idempotent.
    """
    registry = getattr(RE, "_command_registry", None)
    original = registry.get("close_run") if isinstance(registry, dict) else None
    if original is None or getattr(original, "_srash_keeps_reason", False):
        return

    async def close_run(msg: Any) -> Any:
        reason = getattr(RE, "_reason", "")
        if msg.kwargs.get("reason") is None and reason and RE.state == "aborting":
            msg.kwargs["reason"] = reason
        return await original(msg)

    close_run._srash_keeps_reason = True  # type: ignore[attr-defined]
    RE.register_command("close_run", close_run)


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated(signum)


@contextlib.contextmanager
def terminate_gracefully() -> Iterator[None]:
    """Within the block, SIGTERM / SIGHUP raise :class:`Terminated` in the main thread
    (outside RunEngine runs, where :class:`TerminationHandler` takes over). No-op outside
    the main thread."""
    if not _in_main_thread():
        yield
        return
    previous = {s: signal.signal(s, _raise_terminated) for s in TERMINATION_SIGNALS}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
