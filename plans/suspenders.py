"""Suspenders for the SRASH instrument: pump mode-lock and shutter interlock.

:class:`ModeLockSuspender` is bluesky's :class:`~bluesky.suspenders.SuspendBoolLow`
(suspend while the signal reads False, resume when it reads True again) plus a **poller
while tripped**: the simulated status signals (``mic.pump.mode_locked``) run their
subscriptions only when something reads them (the detector reads the pump at every
trigger, which is how the loss is noticed during a scan), and nothing reads them while
the RunEngine waits suspended. So once tripped, the suspender reads the signal every
``poll_period_s`` seconds on a daemon thread until the value recovers (or the suspender
is removed) and resumes the run; EPICS signals, which push monitors, work the same
(the poll is then redundant and harmless).

It does not poll while the scan runs normally: a suspension requested from another
thread can land between an event's ``save`` and the next checkpoint, and bluesky's rewind
would then replay that save (a duplicated event). Detection at the detector's own read
(the start of each frame) keeps the suspension on a frame boundary.

What happens on a trip: see :mod:`plans.stubs` (checkpoint per frame; a frame failed by
the fault is retried after a short sleep, where the suspension takes effect, and
re-acquired once the laser recovers). Known limit: with simulated time
(``time_scale > 0``) a frame already in flight when the suspension starts still fails
its status later, which bluesky does not pardon: the run then ends with ``fail``
(every earlier frame kept).

Typical use (the session does this)::

    for s in make_suspenders(mic.pump.mode_locked):
        RE.install_suspender(s)
"""

from __future__ import annotations

import threading
from typing import Any

from bluesky.suspenders import SuspendBoolLow

from .errors import PlanError

__all__ = ["InterlockSuspender", "ModeLockSuspender", "make_suspenders"]


class ModeLockSuspender(SuspendBoolLow):
    """Suspend while ``signal`` reads False (pump not mode-locked); resume when True.

    Parameters
    ----------
    signal : ophyd-style signal
        Boolean status with ``get()``, ``subscribe()``, ``clear_sub()`` and ``name``
        (e.g. ``mic.pump.mode_locked``).
    poll_period_s : float or None
        While tripped, read the signal this often (s) to notice the recovery; None
        disables polling (signals that push monitors).
    sleep : float
        Seconds to wait after recovery before resuming (bluesky's ``sleep``), e.g. to let
        the laser settle.
    **kwargs
        ``pre_plan``, ``post_plan``, ``tripped_message`` of bluesky's suspenders.
    """

    default_message = ("pump laser lost mode-lock: SRS/SHG frames are invalid; the scan "
                       "resumes (re-acquiring the interrupted frame) when it relocks")

    def __init__(self, signal: Any, *, poll_period_s: float | None = 0.1, sleep: float = 0.0,
                 **kwargs: Any) -> None:
        kwargs.setdefault("tripped_message", self.default_message)
        super().__init__(signal, sleep=sleep, **kwargs)
        if poll_period_s is not None and not float(poll_period_s) > 0:
            raise PlanError(f"poll_period_s {poll_period_s!r} not allowed: > 0 or None")
        self.poll_period_s = None if poll_period_s is None else float(poll_period_s)
        self._poller: threading.Thread | None = None
        self._stop_poll = threading.Event()

    def _should_suspend(self, value: Any) -> bool:
        suspend = super()._should_suspend(value)
        if suspend:
            self._start_poller()
        return suspend

    def _start_poller(self) -> None:
        if self.poll_period_s is None:
            return
        if self._poller is not None and self._poller.is_alive():
            return
        self._stop_poll.clear()
        self._poller = threading.Thread(target=self._poll, name=f"poll-{self._sig.name}",
                                        daemon=True)
        self._poller.start()

    def _poll(self) -> None:
        period = self.poll_period_s or 0.1
        while not self._stop_poll.wait(period):
            if self.RE is None:
                return
            try:
                value = self._sig.get()
            except Exception:  # noqa: BLE001 - a failed read leaves the suspension in place
                continue
            self(value=value)  # also for signals whose get() runs no subscriptions
            if not self.tripped:
                return

    def remove(self) -> None:
        self._stop_poll.set()
        super().remove()


class InterlockSuspender(ModeLockSuspender):
    """Suspend while a shutter/laser-safety interlock reads False (open / broken); resume
    when it reads True (closed / safe) again. Same polling as :class:`ModeLockSuspender`."""

    default_message = ("laser-safety shutter interlock open: the lasers are blocked; the "
                       "scan resumes when the interlock is closed again")


def make_suspenders(mode_locked_signal: Any, interlock_signal: Any = None, *,
                    poll_period_s: float | None = 0.1, sleep: float = 0.0
                    ) -> list[ModeLockSuspender]:
    """The SRASH suspenders, ready for ``RE.install_suspender``.

    Parameters
    ----------
    mode_locked_signal : signal
        Pump mode-lock status, True = locked (``mic.pump.mode_locked``).
    interlock_signal : signal, optional
        Shutter interlock status, True = closed/safe.
    poll_period_s : float or None
        Poll period while tripped (s).
    sleep : float
        Settle time after recovery before resuming (s).

    Returns
    -------
    list of ModeLockSuspender
    """
    out: list[ModeLockSuspender] = [
        ModeLockSuspender(mode_locked_signal, poll_period_s=poll_period_s, sleep=sleep)]
    if interlock_signal is not None:
        out.append(InterlockSuspender(interlock_signal, poll_period_s=poll_period_s,
                                      sleep=sleep))
    return out
