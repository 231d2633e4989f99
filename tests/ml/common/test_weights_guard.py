"""Weights files are checked before any model is built (issue 12, finding 3) and atomic
writes honour the umask (finding 7).

Invariants: a tampered file raises a named :class:`ml.common.weights.WeightsError` subclass
that names the file and the key; the model factory never runs on a real device for such a file
(it runs at most once on the ``meta`` device, which holds no storage); no pickled code runs; a file
written through :func:`ml.common.fileio.atomic_write` gets the mode a plain ``open()`` gets.
"""

from __future__ import annotations

import json
import os
import stat
import zipfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import ml.common.weights as mweights
from ml.common.fileio import atomic_write
from ml.common.weights import (
    ParamRange,
    WeightsError,
    WeightsMetaError,
    WeightsShapeError,
    load_weights,
    save_weights,
)
from ml.dx.lbnet import PARAM_RANGES, LiteBlendNet
from ml.dx.predict import LBNetDx, check_dx_meta
from ml.seg.models import build_segmenter, load_segmenter, save_segmenter

SHIPPED = mweights.WEIGHTS_DIR


def tamper(src: Path, dst: Path, edit_meta: Callable[[Any], Any] | None = None,
           edit_state: Callable[[dict], None] | None = None) -> Path:
    """Copy weights ``src`` to ``dst`` with the metadata / state_dict edited in place
    (``edit_meta`` may return a replacement metadata object)."""
    payload = torch.load(src, weights_only=True)
    meta = json.loads(payload["meta"])
    if edit_meta is not None:
        new = edit_meta(meta)
        meta = meta if new is None else new
    payload["meta"] = json.dumps(meta)  # NaN allowed here: a tampered file may hold it
    if edit_state is not None:
        edit_state(payload["state_dict"])
    torch.save(payload, dst)
    return dst


class Spy:
    """A LiteBlendNet factory recording the device each call builds on."""

    def __init__(self) -> None:
        self.devices: list[str] = []

    def __call__(self, meta: dict[str, Any]) -> torch.nn.Module:
        self.devices.append(torch.empty(0).device.type)
        return LiteBlendNet(**meta["model"])


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    """A valid LBNet-Dx weights file of a width-4 LiteBlendNet."""
    torch.manual_seed(0)
    dx = LBNetDx(LiteBlendNet(2, width=4), task="spt-vs-spg")
    return save_weights(dx.model, tmp_path_factory.mktemp("w") / "small.pt",
                        meta={"model": {"num_classes": 2, "width": 4}, "dx": dx.dx_meta()})


def _set(block: str, key: str, value: Any) -> Callable[[dict], None]:
    def edit(m: dict) -> None:
        m[block][key] = value
    return edit


def _drop(*keys: str) -> Callable[[dict], None]:
    def edit(m: dict) -> None:
        for k in keys[:-1]:
            m = m[k]
        del m[keys[-1]]
    return edit


# ------------------------------------------------------------------- metadata ranges
META_CASES = [
    ("model", "width", 1400, "model.width"), ("model", "width", -3, "model.width"),
    ("model", "width", "32", "model.width"), ("model", "width", 32.0, "model.width"),
    ("model", "width", True, "model.width"), ("model", "width", None, "model.width"),
    ("model", "n_blend", -1, "model.n_blend"), ("model", "n_blend", 10**9, "model.n_blend"),
    ("model", "dilations", [], "model.dilations"), ("model", "dilations", [0], "model.dilations"),
    ("model", "dilations", "234", "model.dilations"),
    ("model", "dropout", 1.0, "model.dropout"), ("model", "dropout", float("nan"), "model.dropout"),
    ("model", "num_classes", 10**12, "model.num_classes"),
    ("model", "num_classes", 3, "model.num_classes"),
    ("model", "in_channels", 1, "model.in_channels"),
    ("model", "depth", 3, "'depth'"),
    ("dx", "task", "cancer", "dx.task"), ("dx", "vote_threshold", 1.0, "dx.vote_threshold"),
    ("dx", "patch_threshold", -0.1, "dx.patch_threshold"),
    ("dx", "smooth_px", 10**9, "dx.smooth_px"),
    ("dx", "class_names", ["a", "b"], "dx.class_names"),
]


@pytest.mark.parametrize("block,key,value,named", META_CASES)
def test_out_of_range_metadata_is_refused_before_any_model_is_built(small, tmp_path, block,
                                                                    key, value, named):
    bad = tamper(small, tmp_path / "bad.pt", _set(block, key, value))
    spy = Spy()
    with pytest.raises(WeightsMetaError) as ei:
        load_weights(bad, model_factory=spy, check_meta=check_dx_meta)
    msg = str(ei.value)
    assert str(bad) in msg and named in msg and "expected" in msg
    assert spy.devices == []
    with pytest.raises(WeightsMetaError, match="not allowed|unknown key"):
        LBNetDx.load(bad)


@pytest.mark.parametrize("edit,named", [
    (_drop("dx"), "no LBNet-Dx task"), (_drop("model"), "'model'"),
    (lambda m: m.__setitem__("model", [32]), "model = [32]"),
    (lambda m: [m], "JSON object"), (lambda m: "x" * 10**5, "JSON object"),
])
def test_malformed_metadata_blocks_are_refused(small, tmp_path, edit, named):
    bad = tamper(small, tmp_path / "bad.pt", edit)
    spy = Spy()
    with pytest.raises(WeightsMetaError) as ei:
        load_weights(bad, model_factory=spy, check_meta=check_dx_meta)
    assert str(bad) in str(ei.value) and named in str(ei.value)
    assert len(str(ei.value)) < 1000 and spy.devices == []


# ------------------------------------------------------------------- tensor shapes
def _reshape(key: str, shape: tuple[int, ...]) -> Callable[[dict], None]:
    def edit(s: dict) -> None:
        s[key] = torch.zeros(shape)
    return edit


@pytest.mark.parametrize("edit_meta,edit_state,named", [
    (_set("model", "width", 8), None, "shape"),
    (None, _drop("classifier.weight"), "missing"),
    (None, lambda s: s.__setitem__("extra.weight", torch.zeros(3)), "unexpected"),
    (None, _reshape("classifier.weight", (2, 65)), "'classifier.weight'"),
    (None, _reshape("stem.0.0.weight", (4,)), "'stem.0.0.weight'"),
])
def test_tensors_not_matching_the_metadata_are_refused_on_the_meta_device(
        small, tmp_path, edit_meta, edit_state, named):
    bad = tamper(small, tmp_path / "bad.pt", edit_meta, edit_state)
    spy = Spy()
    with pytest.raises(WeightsShapeError, match="does not fit") as ei:
        load_weights(bad, model_factory=spy, check_meta=check_dx_meta)
    assert str(bad) in str(ei.value) and named in str(ei.value)
    assert spy.devices == ["meta"]


def test_parameter_cap_holds_without_a_range_check(small, tmp_path):
    """A caller that passes no ``check_meta`` still never builds an oversized model."""
    bad = tamper(small, tmp_path / "bad.pt", _set("model", "width", 1400))
    spy = Spy()
    with pytest.raises(WeightsShapeError, match="at most 64,000,000") as ei:
        load_weights(bad, model_factory=spy)
    assert str(bad) in str(ei.value) and spy.devices == ["meta"]


def test_valid_files_load_and_predict_the_same(small):
    spy = Spy()
    model, meta = load_weights(small, model_factory=spy, check_meta=check_dx_meta)
    assert spy.devices == ["meta", "cpu"] and meta["model"]["width"] == 4
    x = torch.randn(2, 3, 64, 64)
    ref = LBNetDx.load(small).model
    with torch.inference_mode():
        assert torch.equal(model(x), ref(x))


@pytest.mark.parametrize("name", ["lbnet_normal-vs-noa.pt", "lbnet_spt-vs-spg.pt"])
def test_shipped_lbnet_weights_pass_the_checks(name):
    dx = LBNetDx.load(SHIPPED / name)
    assert dx.meta["model"]["width"] == 32 and dx.model.num_classes == 2


def test_default_weights_are_the_shipped_files():
    """Every application's default weights path is the package data in ``ml/weights/``."""
    import ml
    from ml.dx.predict import TASKS, default_weights_path
    from ml.seg.models import DEFAULT_WEIGHTS

    assert SHIPPED == Path(ml.__file__).resolve().parent / "weights"
    for task in TASKS:
        assert default_weights_path(task) == SHIPPED / f"lbnet_{task}.pt"
        assert default_weights_path(task).is_file()
    assert DEFAULT_WEIGHTS == SHIPPED / "seg_hybrid-unet.pt" and DEFAULT_WEIGHTS.is_file()


# ------------------------------------------------------------------- file level
def test_unreadable_files_name_the_file(small, tmp_path):
    cases = {"empty.pt": b"", "garbage.pt": b"\x00not a torch file" * 10,
             "truncated.pt": small.read_bytes()[: small.stat().st_size // 2],
             "tail.pt": small.read_bytes()[-5000:]}
    for name, data in cases.items():
        p = tmp_path / name
        p.write_bytes(data)
        with pytest.raises(WeightsError, match="could not be read") as ei:
            LBNetDx.load(p)
        assert str(p) in str(ei.value)


class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickled_code_in_a_weights_file_never_runs(small, tmp_path):
    marker = tmp_path / "pwned"
    payload = torch.load(small, weights_only=True)
    payload["meta"] = _Exploit(marker)
    bad = tmp_path / "exploit.pt"
    torch.save(payload, bad)
    with pytest.raises(WeightsError, match="could not be read") as ei:
        LBNetDx.load(bad)
    assert str(bad) in str(ei.value) and not marker.exists()


def test_oversized_and_zip_bomb_files_are_refused_before_torch_load(small, tmp_path,
                                                                    monkeypatch):
    monkeypatch.setattr(mweights, "MAX_WEIGHTS_BYTES", 2**20)
    bomb = tmp_path / "bomb.pt"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("archive/data.pkl", b"\x00" * (8 * 2**20))
    assert bomb.stat().st_size < 2**20
    loads = []
    monkeypatch.setattr(torch, "load", lambda *a, **k: loads.append(a))
    with pytest.raises(WeightsError, match="unpack to 8 MiB") as ei:
        LBNetDx.load(bomb)
    assert str(bomb) in str(ei.value)
    monkeypatch.setattr(mweights, "MAX_WEIGHTS_BYTES", small.stat().st_size - 1)
    with pytest.raises(WeightsError, match="at most") as ei:
        LBNetDx.load(small)
    assert str(small) in str(ei.value) and loads == []


# ------------------------------------------------------------------- segmenters
@pytest.fixture(scope="module")
def segs(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("seg")
    axis = np.linspace(2800, 3050, 6)
    torch.manual_seed(0)
    return {n: save_segmenter(build_segmenter(n, 6), d / f"{n}.pt", name=n, raman_cm1=axis)
            for n in ("hybrid-no-msr", "unet2d")}


@pytest.mark.parametrize("name,edit,named", [
    ("hybrid-no-msr", lambda m: m.__setitem__("raman_cm1", m["raman_cm1"][::-1]), "raman_cm1"),
    ("hybrid-no-msr", lambda m: m.__setitem__("raman_cm1", m["raman_cm1"][:3]), "raman_cm1"),
    ("hybrid-no-msr", lambda m: m.__setitem__("raman_cm1", ["a"] * 6), "raman_cm1"),
    ("hybrid-no-msr", lambda m: m.__setitem__("raman_cm1", list(range(5000))), "raman_cm1"),
    ("hybrid-no-msr", _set("model", "width3d", 1400), "model.width3d"),
    ("hybrid-no-msr", _set("model", "spectral_stride", 0), "model.spectral_stride"),
    ("hybrid-no-msr", _set("model", "msr", True), "model.msr"),
    ("hybrid-no-msr", _set("model", "attention_skips", 0), "model.attention_skips"),
    ("hybrid-no-msr", _set("model", "num_classes", 3), "model.num_classes"),
    ("unet2d", _set("model", "in_bands", 7), "model.in_bands"),
    ("unet2d", _set("model", "width", 10**6), "model.width"),
    ("unet2d", _drop("model", "in_bands"), "model.in_bands"),
])
def test_segmenter_metadata_is_checked(segs, tmp_path, name, edit, named):
    bad = tamper(segs[name], tmp_path / "bad.pt", edit)
    with pytest.raises(WeightsMetaError) as ei:
        load_segmenter(bad)
    assert str(bad) in str(ei.value) and named in str(ei.value)


def test_segmenters_load_and_shapes_are_compared(segs, tmp_path):
    for p in segs.values():
        model, meta = load_segmenter(p)
        assert not model.training and len(meta["raman_cm1"]) == 6
    bad = tamper(segs["hybrid-no-msr"], tmp_path / "bad.pt", _set("model", "width", 8))
    with pytest.raises(WeightsShapeError, match="does not fit"):
        load_segmenter(bad)


def test_shipped_segmenter_passes_and_a_wide_one_is_refused(tmp_path):
    model, meta = load_segmenter(SHIPPED / "seg_hybrid-unet.pt")
    assert meta["segmenter"] == "hybrid-unet"
    bad = tamper(SHIPPED / "seg_hybrid-unet.pt", tmp_path / "wide.pt",
                 _set("model", "width", 1400))
    with pytest.raises(WeightsMetaError, match=r"model\.width = 1400 .*2\.\.64"):
        load_segmenter(bad)


# ------------------------------------------------------------------- ParamRange
@given(st.one_of(st.integers(-10**20, 10**20), st.floats(allow_nan=True), st.booleans(),
                 st.text(max_size=3), st.none()))
def test_int_range_accepts_exactly_the_integers_inside(v):
    r = PARAM_RANGES["width"]
    assert r.check(v) == (type(v) is int and 4 <= v <= 128)
    f = ParamRange(float, 0.0, 1.0, hi_open=True)
    assert f.check(v) == (type(v) in (int, float) and 0.0 <= v < 1.0)


@given(st.lists(st.floats(-1e6, 1e6), max_size=8))
def test_increasing_list_range(values):
    r = ParamRange(float, length=(2, 6), increasing=True)
    ok = 2 <= len(values) <= 6 and all(a < b for a, b in zip(values, values[1:]))
    assert r.check(values) == ok


# ------------------------------------------------------------------- umask
@pytest.fixture
def umask():
    old = os.umask(0o022)
    os.umask(old)

    def set_(mask: int) -> None:
        os.umask(mask)
    yield set_
    os.umask(old)


@pytest.mark.parametrize("mask", [0o022, 0o002, 0o077, 0o027, 0o000])
def test_atomic_write_gives_the_mode_of_a_plain_open(tmp_path, umask, mask):
    umask(mask)
    plain = tmp_path / "plain.txt"
    with open(plain, "w") as fh:
        fh.write("x")
    out = atomic_write(tmp_path / "sub" / "a.txt", lambda t: Path(t).write_text("y"))
    mode = stat.S_IMODE(out.stat().st_mode)
    assert mode == stat.S_IMODE(plain.stat().st_mode) == 0o666 & ~mask
    assert out.read_text() == "y"
    w = save_weights(torch.nn.Linear(2, 2), tmp_path / "w.pt")
    assert stat.S_IMODE(w.stat().st_mode) == 0o666 & ~mask


def test_atomic_write_keeps_an_existing_files_mode_and_cleans_up(tmp_path, umask):
    umask(0o022)
    p = tmp_path / "a.txt"
    p.write_text("old")
    p.chmod(0o640)
    atomic_write(p, lambda t: Path(t).write_text("new"))
    assert stat.S_IMODE(p.stat().st_mode) == 0o640 and p.read_text() == "new"

    def fail(t: str) -> None:
        Path(t).write_text("half")
        raise RuntimeError("disk full")
    with pytest.raises(RuntimeError):
        atomic_write(p, fail)
    assert p.read_text() == "new" and sorted(x.name for x in tmp_path.iterdir()) == ["a.txt"]
