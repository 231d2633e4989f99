"""Fault matrix, weights (issue 12, finding 3): tampered or damaged weights files given to
``srash classify`` / ``evaluate`` / ``evaluate-seg`` are refused with ``srash: error: ...``,
exit 2 and the file named, using < 1 GB (the width-1400 file once took 21.4 GB).

Each command runs in a fresh wrapper process that reports its child's peak RSS
(``RUSAGE_CHILDREN``), so earlier tests' children do not count; the child also runs under an
address-space limit so that a regression fails the test instead of exhausting the machine.
Weights are loaded before the catalog is opened, so a data directory that does not exist is
enough: with the untampered file the same command fails on the catalog instead (the control).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import pytest
import torch

pytestmark = pytest.mark.slow

ROOT = Path(__file__).parents[2]
WEIGHTS = ROOT / "ml" / "weights"
#: Peak RSS a refusal may use (MiB); importing torch and the CLI alone costs ~300 MiB.
LIMIT_MIB = 1024
#: Address-space limit of the child (bytes): a regression hits it instead of swapping.
AS_LIMIT = 6 * 2**30

WRAPPER = """
import json, resource, subprocess, sys
lim = int(sys.argv[1])
def cap():
    resource.setrlimit(resource.RLIMIT_AS, (lim, lim))
r = subprocess.run(sys.argv[2:], capture_output=True, text=True, timeout=300, preexec_fn=cap)
print(json.dumps({"rc": r.returncode, "stderr": r.stderr,
                  "maxrss_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))
"""


def srash(*argv: Any, cwd: Path) -> dict[str, Any]:
    """Run ``srash argv`` in a fresh wrapper; {"rc", "stderr", "maxrss_mib"}."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("SRASH_DATA_DIR", None)
    cmd = [sys.executable, "-m", "srash_ophyd.cli", *map(str, argv)]
    p = subprocess.run([sys.executable, "-c", WRAPPER, str(AS_LIMIT), *cmd], cwd=cwd, env=env,
                       capture_output=True, text=True, timeout=360)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def tamper(src: Path, dst: Path, edit_meta: Callable[[dict], None] | None = None,
           edit_state: Callable[[dict], None] | None = None) -> Path:
    payload = torch.load(src, weights_only=True)
    meta = json.loads(payload["meta"])
    if edit_meta is not None:
        edit_meta(meta)
    payload["meta"] = json.dumps(meta)
    if edit_state is not None:
        edit_state(payload["state_dict"])
    torch.save(payload, dst)
    return dst


def _model(key: str, value: Any) -> Callable[[dict], None]:
    def edit(m: dict) -> None:
        m["model"][key] = value
    return edit


def _shrink(s: dict) -> None:
    s["classifier.weight"] = torch.zeros(2, 7)


LBNET_CASES = {
    "width-1400": (_model("width", 1400), None, "model.width = 1400"),
    "negative-depth": (_model("n_blend", -2), None, "model.n_blend = -2"),
    "string-width": (_model("width", "32"), None, "model.width = '32'"),
    "wrong-shape": (None, _shrink, "'classifier.weight' has shape (2, 7)"),
    "meta-vs-tensors": (_model("width", 16), None, "does not fit"),
}


def _assert_refused(r: dict[str, Any], path: Path, named: str) -> None:
    err = r["stderr"]
    assert r["rc"] == 2, err
    assert err.startswith("srash: error: ") and "Traceback" not in err, err
    assert str(path) in err and named in err, err
    assert r["maxrss_mib"] < LIMIT_MIB, r


@pytest.mark.parametrize("case", list(LBNET_CASES))
def test_tampered_lbnet_weights_are_refused_by_classify(tmp_path, case):
    edit_meta, edit_state, named = LBNET_CASES[case]
    bad = tamper(WEIGHTS / "lbnet_normal-vs-noa.pt", tmp_path / f"{case}.pt", edit_meta,
                 edit_state)
    r = srash("classify", "--weights", bad, "--data-dir", tmp_path / "no-data", "-1",
              cwd=tmp_path)
    _assert_refused(r, bad, named)
    print(f"{case}: peak RSS {r['maxrss_mib']:.0f} MiB")


def test_control_untampered_weights_pass_and_the_catalog_is_what_fails(tmp_path):
    good = WEIGHTS / "lbnet_normal-vs-noa.pt"
    r = srash("classify", "--weights", good, "--data-dir", tmp_path / "no-data", "-1",
              cwd=tmp_path)
    assert r["rc"] == 2 and "no catalog" in r["stderr"] and str(good) not in r["stderr"], r
    # the measurement sees the child: torch alone is well over 100 MiB
    assert 100 < r["maxrss_mib"] < LIMIT_MIB, r
    print(f"control: peak RSS {r['maxrss_mib']:.0f} MiB")


def test_width_1400_is_refused_by_evaluate_too(tmp_path):
    bad = tamper(WEIGHTS / "lbnet_spt-vs-spg.pt", tmp_path / "w.pt", _model("width", 1400))
    r = srash("evaluate", "--task", "spt-vs-spg", "--weights", bad, "--cohort", "x",
              "--out", tmp_path / "rep", "--data-dir", tmp_path / "no-data", cwd=tmp_path)
    _assert_refused(r, bad, "model.width = 1400")
    assert not (tmp_path / "rep").exists()


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_damaged_weights_files_are_named(tmp_path, damage):
    src = (WEIGHTS / "lbnet_normal-vs-noa.pt").read_bytes()
    data = {"truncated": src[: len(src) // 3], "garbage": os.urandom(4096), "empty": b""}
    bad = tmp_path / f"{damage}.pt"
    bad.write_bytes(data[damage])
    r = srash("classify", "--weights", bad, "--data-dir", tmp_path / "no-data", "-1",
              cwd=tmp_path)
    _assert_refused(r, bad, "could not be read")


@pytest.mark.parametrize("key,value", [("width3d", 1400), ("width", -1), ("msr", "yes")])
def test_tampered_segmenter_weights_are_refused_by_evaluate_seg(tmp_path, key, value):
    bad = tamper(WEIGHTS / "seg_hybrid-unet.pt", tmp_path / "seg.pt", _model(key, value))
    r = srash("evaluate-seg", "--cohort", "x", "--weights", bad, "--out", tmp_path / "rep",
              "--data-dir", tmp_path / "no-data", "--quiet", cwd=tmp_path)
    _assert_refused(r, bad, f"model.{key} = {value!r}")


def test_train_refuses_a_width_its_weights_could_not_be_loaded_with(tmp_path):
    r = srash("train", "--width", "300", "--cohort", "x", "--out", tmp_path / "w.pt",
              "--data-dir", tmp_path / "no-data", cwd=tmp_path)
    assert r["rc"] == 2 and "--width 300" in r["stderr"] and "4..128" in r["stderr"], r
    assert not (tmp_path / "w.pt").exists()
