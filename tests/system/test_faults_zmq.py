"""Fault matrix, 0MQ (issue 12, finding 1): ``srash classify-live`` as a subprocess against a
real 0MQ socket. A payload that msgpack-numpy would unpickle, an unknown document name, an
over-size message and garbage are each dropped with one warning; nothing is executed, the
consumer stays up and then classifies a real scan's documents. Bad ``--address`` values end
with exit 2 and a clear message before anything is loaded or opened."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path

import msgpack
import numpy as np
import pytest
import zmq

from srash_ophyd.cli import main
from srash_ophyd.transport import msgpack_dumps

pytestmark = pytest.mark.filterwarnings(
    "ignore:Using `httpx` with `starlette.testclient` is deprecated")

WAIT = 180.0  # generous deadlines for a busy 2-core machine (never asserted on)
CAP_MB = 1


class _Mkdir:
    """Unpickling this creates the directory ``path``: stands for any code an attacker
    would run."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (os.mkdir, (self.path,))


@pytest.fixture(scope="module")
def scan(tmp_path_factory):
    """Tiny weights and the documents of one real 1x1 mosaic (frames on disk)."""
    import torch

    from ml.common.weights import save_weights
    from ml.dx.lbnet import LiteBlendNet
    from ml.dx.predict import LBNetDx
    from srash_ophyd.session import make_session

    d = tmp_path_factory.mktemp("zmq")
    torch.manual_seed(0)
    dx = LBNetDx(LiteBlendNet(width=4), task="normal-vs-noa")
    weights = d / "lbnet.pt"
    save_weights(dx.model, weights, meta={"model": {"width": 4}, "dx": dx.dx_meta()})
    s = make_session(data_dir=d / "data", phenotype="NOA-SCO", seed=3, pixels=320,
                     fov_um=96.0, progress=False)
    docs: list = []
    try:
        s.RE.subscribe(lambda name, doc: docs.append((name, doc)))
        (uid,) = s.RE(s.plans.mosaic([s.mic], s.mic.raman, s.mic.xyz.x, s.mic.xyz.y, rows=1,
                                     cols=1, fov_um=96.0,
                                     md=s.run_md(sample_id="S-zmq", patient_id="P-zmq")))
    finally:
        s.close()
    return weights, uid, docs


def _wait_subscribed(sock, proc) -> None:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline and proc.poll() is None:
        if sock.poll(100) and sock.recv()[:1] == b"\x01":
            return
    raise AssertionError(f"classify-live did not subscribe (exit {proc.poll()})")


def _wait_warnings(err_path: Path, n: int, proc) -> str:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline and proc.poll() is None:
        text = err_path.read_text()
        if text.count("warning:") >= n:
            return text
        time.sleep(0.05)
    raise AssertionError(f"expected {n} warnings:\n{err_path.read_text()}")


@pytest.mark.slow
def test_bad_messages_are_dropped_and_the_consumer_still_classifies(scan, tmp_path):
    weights, uid, docs = scan
    marker = tmp_path / "pwned"
    ctx = zmq.Context()
    sock = ctx.socket(zmq.XPUB)  # an XPUB sees the consumer's (re)subscriptions
    sock.setsockopt(zmq.XPUB_VERBOSE, 1)
    sock.setsockopt(zmq.LINGER, 0)
    port = sock.bind_to_random_port("tcp://127.0.0.1")
    out_path, err_path = tmp_path / "out", tmp_path / "err"
    with open(out_path, "w") as out, open(err_path, "w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "srash_ophyd.cli", "classify-live", "--no-store", "--once",
             "--json", "--address", f"127.0.0.1:{port}", "--weights", str(weights),
             "--max-message-mb", str(CAP_MB)], stdout=out, stderr=err)
    try:
        _wait_subscribed(sock, proc)
        evil = {b"nd": True, b"type": "|O", b"kind": b"O", b"shape": [1],
                b"data": pickle.dumps(np.array([_Mkdir(marker)], dtype=object))}
        sock.send(b" start " + msgpack.packb({"uid": "x", "time": 0.0, "data": evil},
                                             use_bin_type=True))  # (a) would unpickle
        sock.send(b" evil_name " + msgpack_dumps({"uid": "y"}))  # (b) unknown name
        sock.send(b" event \xc1\x00\xff garbage")  # (d) garbage
        sock.send(b" event " + msgpack_dumps({"uid": "z", "data": {}})[:-3])  # truncated
        _wait_warnings(err_path, 4, proc)
        # (c) over the cap: 0MQ refuses it from its size header and drops the connection
        sock.send(b" event " + bytes(CAP_MB * 2**20))
        _wait_warnings(err_path, 5, proc)
        _wait_subscribed(sock, proc)  # reconnected
        assert proc.poll() is None  # still up
        for name, doc in docs:  # a real scan: classified, then --once exits
            sock.send(b" ".join([b"", name.encode(), msgpack_dumps(doc)]))
        code = proc.wait(WAIT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        sock.close(0)
        ctx.term()
    stderr = err_path.read_text()
    assert code == 0, stderr
    assert not marker.exists()
    (summary,) = [json.loads(line) for line in out_path.read_text().splitlines()]
    assert summary["scan_uid"] == uid and summary["status"] == "success"
    assert summary["n_fields"] == 1 and summary["n_patches"] >= 1
    warnings = [ln for ln in stderr.splitlines() if "warning:" in ln]
    assert len(warnings) == 5, stderr
    assert "kind b'O' refused" in warnings[0]
    assert "'evil_name' is not a bluesky document name" in warnings[1]
    assert "undecodable" in warnings[2] and "undecodable" in warnings[3]
    assert "lost the 0MQ connection" in warnings[4] and "1 MiB cap" in warnings[4]
    assert "4 messages dropped (3 undecodable, 1 unknown-name), 1 lost connection" in stderr
    assert "Traceback" not in stderr


@pytest.mark.parametrize("address", ["localhost:99999", "localhost:0", "not an address",
                                     ":5578", "tcp://localhost", "http://localhost:5578",
                                     "local host:5578"])
def test_a_bad_address_is_refused_before_anything_is_opened(address, tmp_path, capsys):
    data = tmp_path / "data"
    code = main(["classify-live", "--address", address, "--weights",
                 str(tmp_path / "missing.pt"), "--data-dir", str(data)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith(f"srash: error: --address {address!r} not valid: use HOST:PORT "
                          "with port 1-65535"), err
    assert "Traceback" not in err and not data.exists()  # checked before weights, catalog


@pytest.mark.parametrize("mb", ["0", "-1", "nan", "inf", "1e9"])
def test_a_bad_message_cap_is_refused(mb, tmp_path, capsys):
    code = main(["classify-live", "--no-store", "--max-message-mb", mb, "--weights",
                 str(tmp_path / "missing.pt")])
    err = capsys.readouterr().err
    assert code == 2 and "--max-message-mb" in err and "must be > 0" in err, err
