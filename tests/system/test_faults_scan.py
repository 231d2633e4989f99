"""Fault matrix, acquisition side, end to end through the ``srash`` CLI in subprocesses.

- SIGTERM / SIGHUP after N frames: N events and a stop document saying which signal;
- SIGKILL after N frames: ``srash catalog repair`` recovers every journaled frame, and the
  repaired run exports;
- ``--time-scale inf`` and a scan larger than the free disk are refused before anything is
  created; ``--dry-run`` reports the disk estimate;
- frame files get the permissions of the umask.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings(
    "ignore:Using `httpx` with `starlette.testclient` is deprecated")]

SRASH = [sys.executable, "-m", "srash_ophyd.cli"]
ROOT = Path(__file__).resolve().parents[2]
#: a slow scan: at time scale 0.3 every pump tuning takes about a second, so a signal sent after
#: the N-th frame lands long before the next one
SLOW_SCAN = ["scan", "--grid", "3x3", "--pixels", "48", "--fov-um", "60", "--time-scale", "0.3",
             "--quiet", "--sample", "K-1"]


def srash(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([*SRASH, *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=300, **kw)


def journal_events(data_dir: Path) -> int:
    files = list((data_dir / "journal").glob("*.jsonl"))
    if not files:
        return 0
    return sum(1 for line in files[0].read_text().splitlines() if line.startswith('["event"'))


def start_and_wait(data_dir: Path, n_frames: int) -> subprocess.Popen:
    """Start the slow scan; return once its journal holds ``n_frames`` events."""
    proc = subprocess.Popen([*SRASH, *SLOW_SCAN, "--data-dir", str(data_dir), "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    deadline = time.monotonic() + 240
    while journal_events(data_dir) < n_frames:
        if proc.poll() is not None:
            raise AssertionError(f"scan ended early: {proc.communicate()}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("scan too slow to reach the frames")
        time.sleep(0.05)
    return proc


def show(data_dir: Path) -> dict:
    r = srash("catalog", "show", "-1", "--data-dir", str(data_dir), "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_termination_signal_keeps_every_finished_frame_and_closes_the_run(tmp_path, sig):
    data = tmp_path / "d"
    proc = start_and_wait(data, 3)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + sig, err
    assert f"terminated by {sig.name}" in err and "Traceback" not in err
    summary = json.loads(out)
    assert summary["frames"] == 3 and summary["exit_status"] == "abort"
    info = show(data)
    assert info["exit_status"] == "abort"
    assert info["stop_reason"] == f"terminated by {sig.name}"
    assert info["num_events"]["primary"] == 3
    assert len(info["streams"]["primary"]["files"]) == 3
    assert not list((data / "journal").glob("*.jsonl"))  # the catalog has the whole run


def test_sigkill_then_repair_recovers_every_journaled_frame(tmp_path):
    data = tmp_path / "d"
    proc = start_and_wait(data, 5)
    proc.kill()
    proc.communicate(timeout=60)
    journaled = journal_events(data)
    assert journaled >= 5
    # before the repair the run is open: reading it is a clear error, not a traceback
    r = srash("catalog", "export", "-1", "--data-dir", str(data), "--out", str(tmp_path / "x"))
    assert r.returncode == 2 and "srash catalog repair" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    r = srash("catalog", "repair", "--data-dir", str(data), "--json")
    assert r.returncode == 0, r.stderr
    (result,) = json.loads(r.stdout)
    assert result["action"] == "repaired" and result["frames"] == journaled
    info = show(data)
    assert info["num_events"]["primary"] == journaled
    assert info["stop_reason"].startswith("incomplete: recovered by srash catalog repair")
    r = srash("catalog", "export", "-1", "--data-dir", str(data), "--out", str(tmp_path / "x"),
              "--json")
    assert r.returncode == 0, r.stderr
    assert len(json.loads(r.stdout)["tiles"]) == journaled // 2  # every finished tile
    # a second repair finds nothing left to do
    r = srash("catalog", "repair", "--data-dir", str(data), "--json")
    assert r.returncode == 0 and json.loads(r.stdout) == []


def test_time_scale_inf_and_nan_are_refused_before_anything_is_created(tmp_path):
    for value in ("inf", "nan", "-1", "11"):
        r = srash("scan", "--grid", "1x1", "--time-scale", value, "--data-dir",
                  str(tmp_path / "d"))
        assert r.returncode == 2 and "--time-scale" in r.stderr and "0" in r.stderr
    assert not (tmp_path / "d").exists()


def test_dry_run_reports_disk_and_a_scan_too_large_for_the_disk_is_refused(tmp_path):
    args = ["--grid", "100x100", "--pixels", "4096", "--data-dir", str(tmp_path / "d")]
    r = srash("scan", *args, "--dry-run", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    frames = 100 * 100 * 2
    assert out["estimated_disk_bytes"] >= frames * 2 * 4 * 4096 ** 2
    assert out["fits_on_disk"] is False
    r = srash("scan", *args)
    assert r.returncode == 2 and "free" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "d").exists()


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_frame_files_honour_the_umask(tmp_path, umask):
    data = tmp_path / "d"
    r = srash("scan", "--grid", "1x1", "--pixels", "32", "--fov-um", "30", "--quiet",
              "--data-dir", str(data), preexec_fn=lambda: os.umask(umask))
    assert r.returncode == 0, r.stderr
    frames = list((data / "frames").rglob("*.ome.tif"))
    assert len(frames) == 2
    for f in frames:
        assert f.stat().st_mode & 0o777 == 0o666 & ~umask
