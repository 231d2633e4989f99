"""The SRASH instrument over Channel Access: ``srash ioc`` as a subprocess on loopback, the
EPICS devices (ophyd on caproto) running the same plans as the in-process simulator.

Ports: a free TCP port for the IOC and a free UDP port for the repeater, chosen when this
module is imported (before any CA context exists) and put in caproto's environment
variables, so parallel sessions do not meet. The IOC needs no service: nothing is skipped.
"""

import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest
from ophyd.utils import LimitError


def _free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


CA_ENV = {"EPICS_CA_AUTO_ADDR_LIST": "NO", "EPICS_CA_ADDR_LIST": "127.0.0.1",
          "EPICS_CAS_INTF_ADDR_LIST": "127.0.0.1", "EPICS_CAS_AUTO_BEACON_ADDR_LIST": "NO",
          "EPICS_CAS_BEACON_ADDR_LIST": "127.0.0.1",
          "EPICS_CA_SERVER_PORT": str(_free_port(socket.SOCK_STREAM)),
          "EPICS_CA_REPEATER_PORT": str(_free_port(socket.SOCK_DGRAM))}
CA_ENV["EPICS_CAS_BEACON_PORT"] = CA_ENV["EPICS_CA_REPEATER_PORT"]
os.environ.update(CA_ENV)  # before any CA context of this process exists

pytestmark = [pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
PREFIX = f"SRT{uuid.uuid4().hex[:6]}:"
SEEDS = {"specimen": "testis", "seed": 3, "noise_seed": 5}
SCAN = {"pixels": 32, "fov_um": 40.0, "averages": 1, "dwell_s": 10e-6}
START_S = 180.0  # a busy 2-core machine imports slowly; never asserted on


def _start_ioc(prefix: str, log: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, **CA_ENV, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "srash_ophyd.cli", "ioc", "--prefix", prefix,
           "--specimen", SEEDS["specimen"], "--seed", str(SEEDS["seed"]),
           "--noise-seed", str(SEEDS["noise_seed"]), "--pixels", str(SCAN["pixels"]),
           "--fov-um", str(SCAN["fov_um"]), *extra]
    with open(log, "w") as f:
        return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=f, stderr=subprocess.STDOUT)


def _wait_ready(proc: subprocess.Popen, prefix: str, log: Path) -> None:
    import ophyd

    pv = ophyd.cl.get_pv(prefix + "Info-RB")
    deadline = time.monotonic() + START_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"srash ioc exited {proc.returncode}: {log.read_text()}")
        try:
            if pv.wait_for_connection(timeout=1.0):
                return
        except TimeoutError:  # caproto raises where pyepics returns False
            pass
    proc.kill()
    raise AssertionError("srash ioc did not serve within the start budget")


@pytest.fixture(scope="module")
def ioc(tmp_path_factory):
    import ophyd

    ophyd.set_cl("caproto")
    log = tmp_path_factory.mktemp("ioc") / "ioc.log"
    proc = _start_ioc(PREFIX, log)
    try:
        _wait_ready(proc, PREFIX, log)
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


def _put(pvname: str, value) -> None:
    import ophyd

    pv = ophyd.cl.get_pv(pvname)
    assert pv.wait_for_connection(timeout=5.0)
    pv.put(value, wait=True, timeout=5.0)


class Sink:
    def __init__(self):
        self.docs = []

    def __call__(self, name, doc):
        self.docs.append((name, doc))

    def of(self, name):
        return [d for n, d in self.docs if n == name]


def _run_mosaic(mic, sink, *, suspenders=False, rows=1, cols=2):
    from bluesky import RunEngine

    import plans

    RE = RunEngine({})
    RE.subscribe(sink)
    if suspenders:
        for s in plans.make_suspenders(mic.pump.mode_locked, poll_period_s=0.02):
            RE.install_suspender(s)
    return RE, plans.mosaic([mic], mic.raman, mic.xyz.x, mic.xyz.y, rows=rows, cols=cols,
                            fov_um=SCAN["fov_um"], center_um=(0.0, 0.0))


def _frames(sink):
    """(event data, pixels) per event, the pixels read from the announced file."""
    import tifffile

    res = {d["uid"]: d for d in sink.of("stream_resource")}
    out = []
    for ev, datum in zip(sink.of("event"), sink.of("stream_datum")):
        r = res[datum["stream_resource"]]
        folder = Path(urlparse(r["uri"]).path)
        path = folder / r["parameters"]["template"].format(datum["indices"]["start"])
        out.append((ev["data"], tifffile.imread(path)))
    return out


#: in process, ``pump.wavelength.setpoint`` is that axis object's own last command (the Raman
#: axis tunes the pump through its own axis object); over CA it is the IOC's setpoint PV,
#: which every client shares. The one value that differs, by design (docs/epics.md).
SETPOINT_OF_THE_INSTRUMENT = {"srash_pump_wavelength_setpoint"}


def _norm(v):
    return bool(v) if isinstance(v, (bool, np.bool_)) else v


@pytest.fixture(scope="module")
def epics_mic(ioc, tmp_path_factory):
    from srash_ophyd.devices.factory import make_microscope

    return make_microscope(control="epics", prefix=PREFIX,
                           data_dir=tmp_path_factory.mktemp("ca-frames"), connect_timeout_s=60.0,
                           **SCAN)


def test_mosaic_over_ca_matches_in_process(epics_mic, tmp_path):
    from srash_ophyd.devices.factory import make_microscope

    local = make_microscope(SEEDS["specimen"], seed=SEEDS["seed"],
                            noise_seed=SEEDS["noise_seed"], data_dir=tmp_path / "local",
                            x_um=0.0, y_um=0.0, **SCAN)
    runs = {}
    for label, mic in (("local", local), ("epics", epics_mic)):
        sink = Sink()
        RE, plan = _run_mosaic(mic, sink)
        RE(plan)
        runs[label] = sink
    a, b = runs["local"], runs["epics"]
    assert b.of("stop")[0]["exit_status"] == "success"
    fa, fb = _frames(a), _frames(b)
    assert len(fa) == len(fb) == 4
    for (da, ia), (db, ib) in zip(fa, fb):
        assert ia.shape == ib.shape == (2, 32, 32)
        np.testing.assert_array_equal(ia, ib)  # the same pixels, bit for bit
        assert set(da) == set(db)  # the same data keys
        for key in set(da) - SETPOINT_OF_THE_INSTRUMENT:
            assert _norm(da[key]) == pytest.approx(_norm(db[key])), key
    da, db = a.of("descriptor")[0], b.of("descriptor")[0]
    assert set(da["data_keys"]) == set(db["data_keys"])
    for key, dk in da["data_keys"].items():
        assert dk["dtype"] == db["data_keys"][key]["dtype"], key
        assert dk.get("shape") == db["data_keys"][key].get("shape"), key
    for dev, conf in da["configuration"].items():
        other = db["configuration"][dev]["data"]
        assert set(conf["data"]) == set(other), dev
        for key, value in conf["data"].items():
            assert _norm(value) == pytest.approx(_norm(other[key])), key
    assert len(b.of("stream_resource")) == 1 and len(b.of("stream_datum")) == 4


def test_refused_put_keeps_value_and_says_why(epics_mic):
    power = epics_mic.pump.power
    before = power.get()
    with pytest.raises(LimitError, match="Pump:Power-SP: total laser power .* safety limit"):
        power.put(1000.0)
    assert power.get() == before
    deadline = time.monotonic() + 5.0  # the alarm is raised just after the put completes
    while int(power.alarm_severity) != 2 and time.monotonic() < deadline:
        time.sleep(0.05)
        power.get()
    assert int(power.alarm_severity) == 2  # MAJOR on the refused PV
    power.put(before)  # a good put clears it
    power.get()
    assert int(power.alarm_severity) == 0
    with pytest.raises(LimitError, match="outside the limits"):
        epics_mic.xyz.x.move(1e9)  # checked against HLM before anything moves
    with pytest.raises(LimitError, match="sensitivity"):
        epics_mic.lockin.sensitivity.put(3e-3)


def test_modelock_fault_through_the_ioc_suspends_and_resumes(epics_mic):
    sink = Sink()
    RE, plan = _run_mosaic(epics_mic, sink, suspenders=True, rows=1, cols=3)
    timers = []

    def fault(name, doc):  # lose mode-lock (a put to the IOC) after the 3rd frame
        if name == "event" and doc["seq_num"] == 3:
            _put(PREFIX + "Pump:ModeLockFault", 1)
            t = threading.Timer(0.3, _put, (PREFIX + "Pump:ModeLockFault", 0))
            timers.append(t)
            t.start()

    RE.subscribe(fault)
    RE(plan)
    for t in timers:
        t.join()
    assert sink.of("stop")[0]["exit_status"] == "success"
    keys = [(e["data"]["field_index"], e["data"]["shift_index"]) for e in sink.of("event")]
    assert sorted(keys) == [(i, s) for i in range(3) for s in (0, 1)]  # none missing
    assert [e["seq_num"] for e in sink.of("event")] == list(range(1, 7))  # none duplicated
    assert len(sink.of("stream_datum")) == 6
    assert all(e["data"]["srash_pump_mode_locked"] for e in sink.of("event"))


def test_interlock_opened_through_the_ioc_suspends_and_resumes(epics_mic):
    from bluesky import RunEngine

    import plans

    sink = Sink()
    RE = RunEngine({})
    RE.subscribe(sink)
    for s in plans.make_suspenders(epics_mic.pump.mode_locked, epics_mic.interlock,
                                   poll_period_s=0.02):
        RE.install_suspender(s)
    timers = []

    def fault(name, doc):  # open the laser-safety interlock after the 1st frame
        if name == "event" and doc["seq_num"] == 1:
            _put(PREFIX + "InterlockFault", 1)
            t = threading.Timer(0.3, _put, (PREFIX + "InterlockFault", 0))
            timers.append(t)
            t.start()

    RE.subscribe(fault)
    RE(plans.mosaic([epics_mic], epics_mic.raman, epics_mic.xyz.x, epics_mic.xyz.y, rows=1,
                    cols=2, fov_um=SCAN["fov_um"], center_um=(0.0, 0.0)))
    for t in timers:
        t.join()
    assert sink.of("stop")[0]["exit_status"] == "success"
    assert [e["seq_num"] for e in sink.of("event")] == [1, 2, 3, 4]
    assert len(sink.of("stream_datum")) == 4
    assert epics_mic.interlock.get() is True


CLIENT_DIES_MID_MOVE = """
import os, sys, threading, time
from caproto.threading.client import Context
ctx = Context()
pv, = ctx.get_pvs(sys.argv[1], timeout=10)
pv.wait_for_connection(timeout=10)
pv.write([float(sys.argv[2])], wait=False, notify=True, callback=lambda *a: None)
time.sleep(0.2)
os._exit(0)  # gone mid-move, without closing the circuit
"""


def test_ioc_survives_a_client_that_dies_mid_move(epics_mic):
    import ophyd

    z = epics_mic.xyz.z
    start = z.position
    _put(PREFIX + "TimeScale", 1.0)  # the move takes ~0.5 s of real time
    try:
        env = {**os.environ, **CA_ENV}
        subprocess.run([sys.executable, "-c", CLIENT_DIES_MID_MOVE, PREFIX + "Stage:Z.VAL",
                        str(start + 100.0)], env=env, timeout=60, check=True)
        dmov = ophyd.cl.get_pv(PREFIX + "Stage:Z.DMOV")
        assert dmov.wait_for_connection(timeout=5)
        deadline = time.monotonic() + 10
        while dmov.get(use_monitor=False) != 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert dmov.get(use_monitor=False) == 1  # the motion ended, the IOC still serves
        assert z.position == pytest.approx(start + 100.0, abs=5.0)  # repeatability ~1 um
    finally:
        _put(PREFIX + "TimeScale", 0.0)
    z.move(start, wait=True)  # and takes new moves


def test_srash_scan_over_ca_into_the_catalog(ioc, tmp_path):
    """The README's two-terminal recipe: `srash scan --control epics` against the IOC."""
    import json

    env = {**os.environ, **CA_ENV, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "srash_ophyd.cli", "scan", "--control", "epics", "--prefix",
           PREFIX, "--grid", "1x2", "--pixels", "32", "--fov-um", "40", "--quiet", "--json",
           "--data-dir", str(tmp_path / "data"), "--sample", "CA-1"]
    out = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["exit_status"] == "success" and summary["tiles_done"] == 2
    assert summary["frames"] == 4
    assert summary["sample_id"] == "CA-1" and summary["phenotype"] == "normal"
    assert len(list((tmp_path / "data" / "frames").glob("*/*.ome.tif"))) == 4


def test_shell_over_ca_runs_a_plan_like_a_beamline_profile(ioc, tmp_path):
    """`srash shell --control epics`: the same namespace (RE, mic, plans, catalog) over
    Channel Access; a piped command (IPython reads stdin when it is not a terminal) runs a
    mosaic into the catalog, and `mic` is the EPICS microscope."""
    env = {**os.environ, **CA_ENV, "PYTHONPATH": str(REPO)}
    cmds = ('print("CLASS", type(mic.pump).__name__)\n'
            'uid = RE(plans.mosaic([mic], mic.raman, mic.xyz.x, mic.xyz.y, rows=1, cols=1, '
            'fov_um=40.0, md=session.run_md(sample_id="CA-SH")))\n'
            'print("RUNS", len(catalog), catalog[-1].start["sample_id"])\n')
    cmd = [sys.executable, "-m", "srash_ophyd.cli", "shell", "--control", "epics", "--prefix",
           PREFIX, "--data-dir", str(tmp_path / "d"), "--no-plots"]
    r = subprocess.run(cmd, cwd=REPO, env=env, input=cmds, capture_output=True, text=True,
                       timeout=300)
    assert "CLASS Epics" in r.stdout, r.stdout[-2000:] + r.stderr[-2000:]
    assert "RUNS 1 CA-SH" in r.stdout, r.stdout[-2000:] + r.stderr[-2000:]


def test_killed_ioc_mid_scan_fails_clearly_and_keeps_the_finished_frames(ioc, epics_mic):
    sink = Sink()
    RE, plan = _run_mosaic(epics_mic, sink, rows=2, cols=2)

    def kill(name, doc):
        if name == "event" and doc["seq_num"] == 3:
            ioc.kill()
            ioc.wait(10)

    RE.subscribe(kill)
    with pytest.raises(Exception) as info:
        RE(plan)
    text = f"{info.value} {info.value.__cause__}"
    assert "does not answer" in text or "not connected" in text.lower(), text
    stop = sink.of("stop")[0]
    assert stop["exit_status"] == "fail"
    frames = _frames(sink)
    assert len(frames) == 3  # every finished frame announced, its file on disk
