"""bluesky-queueserver end to end: the RE manager with the SRASH profile (``python -m
srash_ophyd.qserver``) against the local Redis, driven by the ``qserver`` commands of the
README: open the environment, queue a mosaic and a hyperspectral stack (a bad item is
refused), run the queue, then read both runs and the live LBNet-Dx analysis run back from
the catalog.

Needs Redis on 127.0.0.1:6379. Outside CI the test is skipped when Redis does not answer
(the reason says how to start it); in CI (``CI`` set, see .ci/run) it fails instead. The
manager keeps its keys under a prefix of its own (deleted afterwards) and binds 0MQ to free
loopback ports, so parallel runs do not meet.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.slow,
    # third-party: tiled's in-process Context uses starlette's TestClient over httpx
    pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient` is "
                               "deprecated"),
]

REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
REPO = Path(__file__).resolve().parents[2]
QSERVER = str(Path(sys.executable).with_name("qserver"))
# fields of 160 px over 96 um (0.6 um/px): LBNet-Dx resamples them to 320 px at its 0.3 um/px,
# one 300 px window each, so the live analysis classifies every field
PROFILE_ENV = {"SRASH_QS_SPECIMEN": "testis", "SRASH_QS_PHENOTYPE": "NOA-SCO",
               "SRASH_QS_SEED": "3", "SRASH_QS_PIXELS": "160", "SRASH_QS_FOV_UM": "96",
               "SRASH_QS_AVERAGES": "1", "SRASH_QS_LIVE_DX": "normal-vs-noa",
               "SRASH_QS_DX_WAIT_S": "300"}
FULL_PLANS = {"mosaic", "hyperspectral_stack", "dark_frames", "flat_field", "power_reference"}
DETECTORS_AND_AXES = [["mic"], "mic.raman", "mic.xyz.x", "mic.xyz.y"]
MOSAIC = {"name": "mosaic", "args": DETECTORS_AND_AXES,
          "kwargs": {"rows": 1, "cols": 2, "fov_um": 96.0, "overlap": 0.1,
                     "md": {"sample_id": "QS-1", "patient_id": "P-QS"}}}
STACK = {"name": "hyperspectral_stack", "args": [["mic"], "mic.raman"],
         "kwargs": {"start_cm1": 2850, "stop_cm1": 2950, "step_cm1": 50,
                    "md": {"sample_id": "QS-1"}}}
# generous limits for a busy 2-core machine (never asserted on): opening the environment
# imports torch and tiled and creates the catalog in the worker
OPEN_S, QUEUE_S, STOP_S = 600.0, 600.0, 60.0


def _redis_or_skip():
    import redis

    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, socket_timeout=3,
                         socket_connect_timeout=3)
    try:
        client.ping()
    except redis.exceptions.RedisError as exc:
        where = f"Redis on {REDIS_HOST}:{REDIS_PORT} does not answer ({exc})"
        if os.environ.get("CI"):
            pytest.fail(f"{where}; in CI it must run (.ci/run starts it)")
        pytest.skip(f"{where}: start it with `redis-server --daemonize yes --bind "
                    f"127.0.0.1 --port {REDIS_PORT}` (or `sudo systemctl start "
                    "redis-server`)")
    return client


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class Manager:
    """The RE manager subprocess and the ways to talk to it."""

    def __init__(self, tmp: Path, redis) -> None:
        self.data_dir = tmp / "data"
        self.log = tmp / "manager.log"
        self.prefix = f"srash_test_{uuid.uuid4().hex[:12]}"
        self.redis = redis
        import zmq

        self.zmq = zmq.Context()
        control, info = _free_ports(2)
        self.address = f"tcp://127.0.0.1:{control}"
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("SRASH_", "QSERVER_", "TILED_"))}
        env.update(PROFILE_ENV)
        env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "srash_ophyd.qserver", "--data-dir",
                 str(self.data_dir), "--port", str(control), "--info-port", str(info),
                 "--redis-addr", f"{REDIS_HOST}:{REDIS_PORT}", "--redis-prefix",
                 self.prefix],
                cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True)

    def log_tail(self, n: int = 60) -> str:
        lines = self.log.read_text(errors="replace").splitlines()
        return "\n".join(lines[-n:])

    def qserver(self, *args: str) -> subprocess.CompletedProcess:
        """A ``qserver`` command as a user types it (plus the manager's address)."""
        return subprocess.run([QSERVER, "-a", self.address, *args], capture_output=True,
                              text=True, timeout=120)

    def request(self, method: str, params: dict | None = None) -> dict:
        """One request on the control socket, as qserver sends it."""
        import zmq

        sock = self.zmq.socket(zmq.REQ)
        sock.linger = 0
        try:
            sock.connect(self.address)
            sock.send_json({"method": method, "params": params or {}})
            if not sock.poll(5000):
                raise AssertionError(f"{method}: no answer from {self.address}")
            reply = sock.recv_json()
        finally:
            sock.close()
        if not isinstance(reply, dict) or reply.get("success") is False:
            raise AssertionError(f"{method}: {reply}\n{self.log_tail()}")
        return reply

    def wait_for(self, what: str, ok, timeout: float) -> dict:
        t_end = time.monotonic() + timeout
        while True:
            assert self.proc.poll() is None, f"manager exited\n{self.log_tail()}"
            try:
                status = self.request("status")
            except AssertionError:
                status = None  # the manager is still starting
            if status is not None and ok(status):
                return status
            if time.monotonic() > t_end:
                raise AssertionError(f"timed out waiting for {what}: {status}\n"
                                     f"{self.log_tail()}")
            time.sleep(0.5)

    def stop(self) -> None:
        try:
            if self.proc.poll() is None:
                try:
                    self.request("manager_stop", {"option": "safe_off"})
                except AssertionError:
                    pass  # killed below
                try:
                    self.proc.wait(STOP_S)
                except subprocess.TimeoutExpired:
                    os.killpg(self.proc.pid, signal.SIGKILL)  # the session this test started
                    self.proc.wait(STOP_S)
        finally:
            self.zmq.term()
            keys = list(self.redis.scan_iter(match=f"{self.prefix}*"))
            if keys:
                self.redis.delete(*keys)


@pytest.fixture
def manager(tmp_path):
    redis = _redis_or_skip()
    m = Manager(tmp_path, redis)
    try:
        yield m
    finally:
        m.stop()


def _ok(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_queue_a_mosaic_and_a_stack_and_read_them_back(manager):
    from tiled.queries import Key

    from srash_ophyd.catalog import close_catalog, open_catalog

    t0 = time.perf_counter()
    m = manager
    m.wait_for("the manager", lambda s: s["manager_state"] == "idle", STOP_S)
    _ok(m.qserver("environment", "open"))
    m.wait_for("the environment", lambda s: s["worker_environment_state"] == "idle"
               and s["manager_state"] == "idle", OPEN_S)
    t_open = time.perf_counter() - t0

    allowed = m.request("plans_allowed", {"user_group": "primary"})["plans_allowed"]
    assert set(allowed) == FULL_PLANS
    devices = m.request("devices_allowed", {"user_group": "primary"})["devices_allowed"]
    assert "mic" in devices

    _ok(m.qserver("queue", "add", "plan", json.dumps(MOSAIC)))
    _ok(m.qserver("queue", "add", "plan", json.dumps(STACK)))
    bad = m.qserver("queue", "add", "plan", json.dumps(
        {**MOSAIC, "kwargs": {**MOSAIC["kwargs"], "rows": "many"}}))
    assert bad.returncode != 0 and "rows" in bad.stdout + bad.stderr
    assert m.request("status")["items_in_queue"] == 2

    t1 = time.perf_counter()
    _ok(m.qserver("queue", "start"))
    m.wait_for("the queue", lambda s: s["items_in_queue"] == 0 and s["items_in_history"] == 2
               and s["manager_state"] == "idle", QUEUE_S)
    t_queue = time.perf_counter() - t1
    assert "'items_in_history': 2" in _ok(m.qserver("status"))

    history = m.request("history_get")["items"]
    assert [h["name"] for h in history] == ["mosaic", "hyperspectral_stack"]
    for h in history:
        assert h["result"]["exit_status"] == "completed", h["result"]
    (scan_uid,), (stack_uid,) = (h["result"]["run_uids"] for h in history)

    catalog = open_catalog(m.data_dir)
    try:
        scan = catalog[scan_uid].metadata
        assert scan["start"]["plan_name"] == "mosaic" and scan["start"]["shape"] == [1, 2]
        assert scan["start"]["sample_id"] == "QS-1" and scan["start"]["patient_id"] == "P-QS"
        # the session's metadata, added by the profile under the item's own
        assert scan["start"]["phenotype"] == "NOA-SCO" and "calibration" in scan["start"]
        assert scan["stop"]["exit_status"] == "success"
        assert scan["stop"]["num_events"]["primary"] == 4  # 2 fields x 2 shifts
        stack = catalog[stack_uid].metadata
        assert stack["start"]["plan_name"] == "hyperspectral_stack"
        assert stack["start"]["shifts_cm1"] == [2850.0, 2900.0, 2950.0]
        assert stack["stop"]["num_events"]["primary"] == 3
        # the live analysis is in the catalog when the queue item ends (DrainAtStop)
        (analysis_uid,) = list(catalog.search(Key("scan_uid") == scan_uid))
        analysis = catalog[analysis_uid].metadata
        assert analysis["start"]["analysis"] == "lbnet-dx"
        assert analysis["start"]["task"] == "normal-vs-noa"
        assert analysis["start"]["sample_id"] == "QS-1"
        assert analysis["stop"]["exit_status"] == "success", analysis["stop"]
        assert analysis["stop"]["num_events"] == {"fields": 2, "vote": 1}
        assert list(catalog.search(Key("scan_uid") == stack_uid)) == []  # not a SRASH field
    finally:
        close_catalog(catalog)

    _ok(m.qserver("environment", "close"))
    m.wait_for("the environment to close",
               lambda s: s["worker_environment_state"] == "closed", STOP_S)
    _ok(m.qserver("manager", "stop"))
    assert m.proc.wait(STOP_S) == 0
    print(f"\nqueueserver e2e: environment open {t_open:.1f} s, queue (mosaic + stack) "
          f"{t_queue:.1f} s, total {time.perf_counter() - t0:.1f} s")
