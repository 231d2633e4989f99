"""SIGTERM aborts the running plan whichever thread the kernel hands the signal to.

A process-directed signal goes to any thread that does not block it. When it lands on a
worker thread, the main thread (blocked in the RunEngine's wait for the plan) would run
Python's handler only after the plan had finished: the whole scan would run on and the
abort would come too late (a flaky CI failure: 18 frames recorded instead of 3). Here the
signal is sent with ``pthread_kill`` to a worker thread, which is the worst case, and to
the main thread, the usual case.
"""

from __future__ import annotations

import signal
import threading

import pytest
from bluesky import RunEngine
from bluesky import plan_stubs as bps
from bluesky import preprocessors as bpp
from ophyd.sim import det

from srash_ophyd.signals import Terminated, TerminationHandler, keep_abort_reason

pytestmark = pytest.mark.skipif(not hasattr(signal, "pthread_kill"), reason="POSIX only")

#: long enough that a lost abort is unmistakable: the plan would record all of these
STEPS = 400


def _plan():
    @bpp.run_decorator(md={"purpose": "termination test"})
    def inner():
        for _ in range(STEPS):
            yield from bps.trigger_and_read([det])
            yield from bps.sleep(0.02)
    return (yield from inner())


def _target(where: str, RE: RunEngine, parked: threading.Event, stop: threading.Event
            ) -> int:
    if where == "main":
        return threading.main_thread().ident or 0
    if where == "runengine-loop":
        return RE._th.ident  # the RunEngine's event-loop thread
    worker = threading.Thread(target=lambda: (parked.set(), stop.wait()), daemon=True)
    worker.start()
    parked.wait()
    return worker.ident or 0


@pytest.mark.parametrize("where", ["main", "runengine-loop", "idle-worker"])
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_signal_on_any_thread_aborts_the_running_plan(where, sig):
    RE = RunEngine({}, call_returns_result=False)
    RE.context_managers.append(TerminationHandler)
    keep_abort_reason(RE)
    docs: dict[str, list] = {"event": [], "stop": []}
    three = threading.Event()

    def collect(name, doc):
        if name in docs:
            docs[name].append(doc)
        if len(docs["event"]) == 3:
            three.set()

    RE.subscribe(collect)
    before = signal.getsignal(sig)
    parked, stop = threading.Event(), threading.Event()
    target = _target(where, RE, parked, stop)

    def shoot():
        three.wait()
        signal.pthread_kill(target, sig)

    shooter = threading.Thread(target=shoot, daemon=True)
    shooter.start()
    try:
        with pytest.raises(Terminated) as info:
            RE(_plan())
    finally:
        stop.set()
    assert info.value.signum == sig
    (stop_doc,) = docs["stop"]
    assert stop_doc["exit_status"] == "abort"
    assert stop_doc["reason"] == f"terminated by {sig.name}"
    assert 3 <= len(docs["event"]) < STEPS
    # the handlers are restored: the previous disposition is back
    assert signal.getsignal(sig) == before
    assert signal.set_wakeup_fd(-1) == -1  # and no wakeup fd of ours is left behind


def test_other_signals_reach_the_wakeup_fd_that_was_set_before():
    import os
    import socket

    r, w = socket.socketpair()
    w.setblocking(False)
    previous = signal.set_wakeup_fd(w.fileno())
    old = signal.signal(signal.SIGUSR1, lambda *a: None)
    try:
        RE = RunEngine({}, call_returns_result=False)
        RE.context_managers.append(TerminationHandler)

        def plan():
            yield from bps.null()
            os.kill(os.getpid(), signal.SIGUSR1)
            yield from bps.sleep(0.2)

        RE(plan())
        assert signal.set_wakeup_fd(w.fileno()) == w.fileno()  # ours, restored
        r.settimeout(5)
        assert signal.SIGUSR1 in r.recv(16)
    finally:
        signal.signal(signal.SIGUSR1, old)
        signal.set_wakeup_fd(previous)
        r.close()
        w.close()
