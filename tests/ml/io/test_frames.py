"""The readers' fault policy (:mod:`ml.io.frames`) without a catalog: diagnosis of
bad frame files, the warn / strict policy, run states, and frame reads that name the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ml.io.frames import FrameError, FrameReader, ReadFaults, diagnose_frame, frame_paths
from ml.io.ometiff import write_ome_tiff
from ml.io.runstate import REPAIRED_PREFIX, IncompleteRunError

SHAPE, DTYPE = (2, 16, 16), "<f4"


@pytest.fixture
def frame(tmp_path) -> Path:
    return write_ome_tiff(tmp_path / "f.ome.tif", np.ones(SHAPE, np.float32),
                          channel_names=("SRS", "SHG"), pixel_size_um=0.5)


def test_diagnosis_names_each_kind_of_bad_file(frame, tmp_path):
    assert diagnose_frame(str(frame), SHAPE, DTYPE) is None  # a good frame: nothing to say
    good = frame.read_bytes()
    cut = tmp_path / "cut.tif"
    cut.write_bytes(good[: len(good) // 3])
    assert diagnose_frame(str(cut), SHAPE, DTYPE).startswith(f"truncated: {len(good) // 3} ")
    junk = tmp_path / "junk.tif"
    junk.write_bytes(b"\x00garbage" * 100)
    assert diagnose_frame(str(junk), SHAPE, DTYPE).startswith("not a TIFF file")
    empty = tmp_path / "empty.tif"
    empty.write_bytes(b"")
    assert diagnose_frame(str(empty), SHAPE, DTYPE) == "empty file"
    assert diagnose_frame(str(tmp_path / "gone.tif"), SHAPE, DTYPE) == "file missing"
    other = write_ome_tiff(tmp_path / "o.tif", np.ones((2, 8, 8), np.float32),
                           channel_names=("SRS", "SHG"), pixel_size_um=0.5)
    assert diagnose_frame(str(other), SHAPE, DTYPE) == (
        "holds a (2, 8, 8) image, the stream's descriptor says (2, 16, 16)")
    assert diagnose_frame(None, SHAPE, DTYPE) is None


class _Asset:
    def __init__(self, path: Path, num: int) -> None:
        self.data_uri, self.parameter, self.num = f"file://{path}", "data_uris", num


class _Source:
    def __init__(self, assets) -> None:
        self.assets = assets


class _Node:
    """An external image column: event 1's file is broken (the server raises)."""

    def __init__(self, paths: list[Path], bad: int = 1) -> None:
        self.paths, self.bad, self.shape = paths, bad, (len(paths), *SHAPE)
        self.lookups = 0

    def __getitem__(self, i: int):
        if i == self.bad:
            raise RuntimeError("422: Can not reshape http://local-tiled-app/api/v1/array")
        return np.zeros(SHAPE, np.float32)

    def data_sources(self):
        self.lookups += 1
        return [_Source([_Asset(p, k) for k, p in reversed(list(enumerate(self.paths)))])]


def test_frame_reader_names_the_file_and_looks_it_up_only_on_failure(frame, tmp_path):
    paths = [frame, tmp_path / "missing.ome.tif", frame]
    node = _Node(paths)
    read = FrameReader(node, "uid-1", SHAPE, DTYPE)
    assert read(0).shape == SHAPE and read(2, field=7).shape == SHAPE
    assert node.lookups == 0  # the happy path costs no extra request
    with pytest.raises(FrameError) as exc:
        read(1, field=3)
    err = exc.value
    assert (err.uid, err.field, err.event, err.path, err.why) == (
        "uid-1", 3, 1, str(paths[1]), "file missing")
    assert str(err) == (f"run uid-1, field 3: frame file {paths[1]} unreadable (file missing)")
    assert frame_paths(node) == [str(p) for p in paths]  # asset order by num, not listing


def test_frame_reader_without_a_local_file_reports_the_server_reason():
    node = _Node([Path("/elsewhere/a.tif"), Path("/elsewhere/b.tif")])
    node.data_sources = lambda: []  # a server that does not say where its files are
    with pytest.raises(FrameError) as exc:
        FrameReader(node, "u", SHAPE, DTYPE)(1)
    assert exc.value.path is None and exc.value.why == "422: Can not reshape"
    assert "frame file of event 1 (path unknown)" in str(exc.value)


def test_a_remote_servers_reason_is_kept_when_its_file_is_not_visible_here(frame):
    class ClientError(Exception):  # what tiled's client raises for an HTTP error status
        __module__ = "tiled.client.utils"

    class Remote(_Node):
        def __getitem__(self, i):
            raise ClientError("500: Internal Server Error http://host:8000/api/v1/array/x")

    node = Remote([Path("/on/the/server/a.tif")])
    with pytest.raises(FrameError) as exc:
        FrameReader(node, "u", SHAPE, DTYPE)(0)
    assert exc.value.path == "/on/the/server/a.tif"
    assert exc.value.why == "500: Internal Server Error"  # not "file missing"
    node.paths = [frame]  # the same file system: the file itself says what is wrong
    with pytest.raises(FrameError) as exc:
        FrameReader(node, "u", (2, 32, 32), DTYPE)(0)
    assert exc.value.why.startswith("holds a (2, 16, 16) image")


def test_frame_reader_refuses_a_frame_of_another_shape():
    class Small(_Node):
        def __getitem__(self, i):
            return np.zeros((2, 4, 4), np.float32)

    with pytest.raises(FrameError, match=r"holds a \(2, 4, 4\) image"):
        FrameReader(Small([Path("/nope/a.tif")]), "u", SHAPE, DTYPE)(0)


def _md(stop: dict | None, uid: str = "u-1", sample: str | None = "S-9") -> dict:
    return {"start": {"uid": uid, "sample_id": sample}, "stop": stop}


def test_policy_skips_open_runs_with_a_warning_and_notes_incomplete_ones():
    lines: list[str] = []
    f = ReadFaults(warn=lines.append)
    runs = [_md({"exit_status": "success"}, "ok"), _md(None, "killed"),
            _md({"exit_status": "abort", "reason": "SIGTERM"}, "stopped"),
            _md({"exit_status": "abort", "reason": REPAIRED_PREFIX + ": 4 of 9 fields"},
                "fixed")]
    assert [r["start"]["uid"] for r in f.runs(runs)] == ["ok", "stopped", "fixed"]
    assert len(lines) == 1 and lines[0].startswith("run killed (sample S-9) has no stop")
    assert "srash catalog repair" in lines[0]
    assert [(r["uid"], r["state"]) for r in f.incomplete_runs] == [("stopped", "aborted"),
                                                                    ("fixed", "repaired")]
    assert [r["uid"] for r in f.skipped_runs] == ["killed"]
    with pytest.raises(IncompleteRunError, match="srash catalog repair"):
        ReadFaults(strict=True, warn=lines.append).runs(runs)


def test_policy_on_bad_frames_warns_once_each_or_raises_when_strict():
    lines: list[str] = []
    err = FrameError("u", 2, "/d/frames/x/000004.ome.tif", "file missing", event=4)
    f = ReadFaults(warn=lines.append)
    f.frame(err)
    assert err.reported and lines == [f"{err}; field skipped"]
    assert f.summary()["bad_frames"] == [{"uid": "u", "field": 2, "event": 4,
                                          "path": "/d/frames/x/000004.ome.tif",
                                          "why": "file missing"}]
    with pytest.raises(FrameError) as exc:
        ReadFaults(strict=True, warn=lines.append).frame(err)
    assert exc.value is err and len(lines) == 1


def test_default_warning_goes_to_stderr(capsys):
    ReadFaults().frame(FrameError("u", 0, "/p.tif", "empty file"))
    err = capsys.readouterr().err
    assert err == "srash: warning: run u, field 0: frame file /p.tif unreadable (empty " \
                  "file); field skipped\n"


def test_a_stack_names_its_first_unreadable_band_and_a_killed_stack_is_refused(frame,
                                                                               tmp_path):
    from ml.io.stacks import _read_bands, run_stack

    paths = [frame, tmp_path / "band1.ome.tif", frame]

    class Column(_Node):
        def read(self):  # the whole column in one request fails as a whole
            raise FileNotFoundError(str(self.paths[1]))

    class Stream:
        metadata = {"data_keys": {"img": {"shape": list(SHAPE), "dtype_numpy": DTYPE}}}

        def __getitem__(self, key):
            return Column(paths)

    with pytest.raises(FrameError) as exc:
        _read_bands(Stream(), "img", "stack-1", np.array([2800.0, 2850.0, 2900.0]))
    err = exc.value
    assert (err.what, err.event, err.path, err.why) == ("band", 1, str(paths[1]),
                                                        "file missing")
    assert str(err).startswith("run stack-1, band 1 (2850 cm^-1): frame file ")

    class Killed:
        metadata = _md(None, "stack-2")

    with pytest.raises(IncompleteRunError, match="stack-2 has no stop document"):
        run_stack(Killed())


def test_live_classifier_skips_a_field_whose_frame_file_is_unreadable(tmp_path, caplog):
    """From the document stream (live or 0MQ): the bad file's field is skipped with a
    warning naming the file, the scan's other fields are classified."""
    import logging

    import torch

    from ml.dx.lbnet import LiteBlendNet
    from ml.dx.live import LBNetDxCallback
    from ml.dx.predict import LBNetDx

    torch.manual_seed(0)
    dx = LBNetDx(LiteBlendNet(width=8), task="normal-vs-noa")
    folder = tmp_path / "frames"
    folder.mkdir()
    shape = (2, 300, 300)  # one classifier patch (300 px at 0.3 um/px)
    for k in range(4):
        write_ome_tiff(folder / f"{k:06d}.ome.tif", np.full(shape, 0.1 * (k + 1), np.float32),
                       channel_names=("SRS", "SHG"), pixel_size_um=0.3)
    (folder / "000003.ome.tif").write_bytes(b"not a tiff at all")  # field 1, 2930 frame
    num = {"source": "sim", "dtype": "number", "shape": []}
    cal = {"srs_dark_v": 0.0, "shg_dark_v": 0.0, "srs_volts_per_unit": 1.0,
           "shg_volts_per_unit": 1.0}
    docs = [("start", {"uid": "scan-1", "time": 0.0, "calibration": cal,
                       "composite": {"shifts_cm1": [2850.0, 2930.0]}}),
            ("descriptor", {"uid": "d-1", "name": "primary", "run_start": "scan-1",
                            "time": 0.0, "configuration": {
                                "srash": {"data": {"srash_scanner_pixel_size": 0.3}}},
                            "data_keys": {
                                "srash_image": {"source": "sim", "dtype": "array",
                                                "shape": list(shape), "external": "STREAM:"},
                                "field_index": num, "srash_frame_raman_shift": num,
                                "srash_frame_x": num, "srash_frame_y": num,
                                "srash_frame_pump_mw": num, "srash_frame_stokes_mw": num}}),
            ("stream_resource", {"uid": "r-1", "uri": folder.as_uri() + "/",
                                 "parameters": {"template": "{:06d}.ome.tif"}}),
            ("stream_datum", {"uid": "sd-1", "descriptor": "d-1", "stream_resource": "r-1",
                              "seq_nums": {"start": 1, "stop": 5},
                              "indices": {"start": 0, "stop": 4}})]
    for k in range(4):
        field, shift = divmod(k, 2)
        docs.append(("event", {"uid": f"e-{k}", "descriptor": "d-1", "seq_num": k + 1,
                               "time": float(k), "data": {
                                   "field_index": field, "srash_frame_raman_shift":
                                   (2850.0, 2930.0)[shift], "srash_frame_x": 20.0 * field,
                                   "srash_frame_y": 0.0, "srash_frame_pump_mw": 40.0,
                                   "srash_frame_stokes_mw": 40.0}, "timestamps": {}}))
    docs.append(("stop", {"uid": "s-1", "run_start": "scan-1", "time": 5.0,
                          "exit_status": "success"}))
    cb = LBNetDxCallback(dx)
    with caplog.at_level(logging.WARNING, logger="srash.live"):
        for name, doc in docs:
            cb(name, doc)
    assert cb.status == "success" and cb.error is None
    assert [f.field_index for f in cb.fields] == [0]
    s = cb.summary()
    bad = str(folder / "000003.ome.tif")
    assert s["skipped_fields"] == 1 and s["unreadable_files"] == [bad]
    msgs = [r.getMessage() for r in caplog.records if bad in r.getMessage()]
    assert len(msgs) == 1 and "run scan-1, field 1" in msgs[0] and "not a TIFF" in msgs[0]
