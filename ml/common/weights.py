"""Weights files of every ml model: write, and read back safely.

A weights file is a ``torch.save`` zip of ``{"format", "version", "meta", "state_dict"}``;
``meta`` is a JSON string saying how to rebuild the model. :func:`load_weights` reads it
with ``torch.load(weights_only=True)`` (no pickled code runs) after cheap size checks, checks
the metadata against :class:`ParamRange` tables (:func:`check_params`) and the tensor
shapes against the described model built on the ``meta`` device, before any real model is
built. Shipped weights live in :data:`WEIGHTS_DIR` (``ml/weights/``). torch is imported
by the functions that read or write a file, so the metadata checks stay light.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

from ml.common.errors import MLError
from ml.common.fileio import atomic_write

if TYPE_CHECKING:  # torch is imported by the functions that need it
    import torch
    from torch import nn

__all__ = [
    "WeightsError", "WeightsMetaError", "WeightsShapeError", "ParamRange", "check_params",
    "save_weights", "load_weights", "WEIGHTS_FORMAT", "MAX_PARAMETERS", "MAX_WEIGHTS_BYTES",
    "WEIGHTS_DIR",
]

#: Folder of the shipped weights (``ml/weights/``, package data).
WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"

#: Tag stored in every weights file written by :func:`save_weights`.
WEIGHTS_FORMAT = "srash-lbnet-weights"
_WEIGHTS_VERSION = 1


class WeightsError(MLError):
    """A weights file is missing, unreadable, malformed, or does not fit the model."""


class WeightsMetaError(WeightsError):
    """A weights file's metadata has a value of the wrong type or outside its allowed range
    (checked before any model is built)."""


class WeightsShapeError(WeightsError):
    """A weights file's tensors do not match the model its metadata describes (names,
    shapes), or that model is larger than :data:`MAX_PARAMETERS`."""


#: Most tensor elements (parameters + buffers) a weights file may describe: 64 M, i.e.
#: 256 MB in float32 (the shipped LBNet has 2.8 M, the Hybrid-UNet 0.93 M). Loading holds the
#: file's tensors and the model's, so an accepted file costs about twice its size.
MAX_PARAMETERS = 64_000_000
#: Largest weights file (bytes, also the total uncompressed size of its zip entries)
#: :func:`load_weights` opens: :data:`MAX_PARAMETERS` in float32 plus 64 MiB of metadata.
MAX_WEIGHTS_BYTES = 4 * MAX_PARAMETERS + 64 * 2**20


@dataclasses.dataclass(frozen=True)
class ParamRange:
    """Allowed values of one metadata entry (see :func:`check_params`).

    ``kind`` is ``int``, ``float`` (an int is accepted; finite only), ``bool`` or ``str``;
    numbers must lie in ``[lo, hi]`` (``hi`` excluded when ``hi_open``); ``choices`` limits
    the value to a fixed set; ``length = (min, max)`` makes the entry a list of ``min..max``
    such values, strictly increasing when ``increasing``. ``required`` entries must be
    present.
    """

    kind: type
    lo: float | None = None
    hi: float | None = None
    hi_open: bool = False
    choices: tuple[Any, ...] | None = None
    length: tuple[int, int] | None = None
    increasing: bool = False
    required: bool = False

    def describe(self) -> str:
        """The allowed values in words, e.g. ``"an integer in 4..128"``."""
        if self.choices is not None:
            one = "one of " + ", ".join(repr(c) for c in self.choices)
        elif self.kind is bool:
            one = "true or false"
        elif self.kind is str:
            one = "a string"
        elif self.kind is int:
            one = "an integer" + (f" in {self.lo:g}..{self.hi:g}"
                                  if self.lo is not None and self.hi is not None else "")
        else:
            one = "a finite number" + (
                f" in [{self.lo:g}, {self.hi:g}{')' if self.hi_open else ']'}"
                if self.lo is not None and self.hi is not None else "")
        if self.length is None:
            return one
        a, b = self.length
        return (f"a list of {a}..{b} values, {'strictly increasing, ' if self.increasing else ''}"
                f"each {one}")

    def _ok(self, v: Any) -> bool:
        if self.kind is bool:
            ok = type(v) is bool
        elif self.kind is int:
            ok = type(v) is int
        elif self.kind is float:
            ok = type(v) in (int, float) and math.isfinite(v)
        else:
            ok = isinstance(v, self.kind)
        if not ok:
            return False
        if self.choices is not None:
            return any(type(v) is type(c) and v == c for c in self.choices)
        if self.kind in (int, float):
            if self.lo is not None and v < self.lo:
                return False
            if self.hi is not None and (v >= self.hi if self.hi_open else v > self.hi):
                return False
        return True

    def check(self, value: Any) -> bool:
        """Whether ``value`` is allowed."""
        if self.length is None:
            return self._ok(value)
        if not isinstance(value, list) or not self.length[0] <= len(value) <= self.length[1]:
            return False
        if not all(self._ok(v) for v in value):
            return False
        return not self.increasing or all(a < b for a, b in zip(value, value[1:]))


def _show(value: Any, limit: int = 60) -> str:
    r = repr(value)
    return r if len(r) <= limit else r[:limit] + f"... ({type(value).__name__})"


def check_params(block: Any, ranges: Mapping[str, ParamRange], *, where: str,
                 path: str | os.PathLike) -> None:
    """Check one metadata block (a dict) of the weights file ``path`` against ``ranges``.

    Raises
    ------
    WeightsMetaError
        ``block`` is not a dict, has a key not in ``ranges``, lacks a required key, or a
        value is not allowed; the message names the file, the key (``where.key``), the
        value and what is allowed.
    """
    head = f"weights file {str(path)!r}: metadata"

    def name(k: str) -> str:
        return f"{where}.{k}" if where else k

    if not isinstance(block, dict):
        raise WeightsMetaError(f"{head} {where} = {_show(block)} is not allowed: expected an "
                               f"object with keys {', '.join(ranges)}")
    for k in block:
        if k not in ranges:
            raise WeightsMetaError(f"{head} {where or 'top level'} has an unknown key "
                                   f"{_show(k)}: expected only {', '.join(ranges)}")
    for k, r in ranges.items():
        if k not in block:
            if r.required:
                raise WeightsMetaError(f"{head} {name(k)} is missing: expected "
                                       f"{r.describe()}")
        elif not r.check(block[k]):
            raise WeightsMetaError(f"{head} {name(k)} = {_show(block[k])} is not allowed: "
                                   f"expected {r.describe()}")


def save_weights(model: nn.Module, path: str | os.PathLike, *,
                 meta: Mapping[str, Any] | None = None) -> Path:
    """Write the model's state_dict and JSON-safe ``meta`` with ``torch.save`` (atomically).

    ``meta`` should say how to rebuild the model (e.g. ``{"model": {"num_classes": 2,
    "width": 32}, ...}``) for :func:`load_weights`'s ``model_factory``.

    Raises
    ------
    WeightsError
        ``meta`` is not JSON-serialisable.
    """
    import torch

    try:
        meta_json = json.dumps(dict(meta or {}), sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise WeightsError(f"meta is not JSON-safe: {exc}") from exc
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    payload = {"format": WEIGHTS_FORMAT, "version": _WEIGHTS_VERSION, "meta": meta_json,
               "state_dict": state}
    return atomic_write(path, lambda tmp: torch.save(payload, tmp))


def _open_checked(p: Path, map_location: str | torch.device) -> Any:
    """``torch.load(weights_only=True)`` of ``p`` after cheap checks that it is a zip archive
    of at most :data:`MAX_WEIGHTS_BYTES` (no pickled code runs, no zip bomb inflates)."""
    import zipfile

    import torch

    hint = "is it a file written by ml.common.weights.save_weights?"
    size = p.stat().st_size
    if size > MAX_WEIGHTS_BYTES:
        raise WeightsError(f"weights file {str(p)!r} is {size / 2**20:.0f} MiB: at most "
                           f"{MAX_WEIGHTS_BYTES / 2**20:.0f} MiB is accepted")
    try:
        with zipfile.ZipFile(p) as z:
            declared = sum(i.file_size for i in z.infolist())
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise WeightsError(f"weights file {str(p)!r} could not be read (not a torch zip "
                           f"archive: truncated, damaged or another format: {exc}); "
                           f"{hint}") from exc
    if declared > MAX_WEIGHTS_BYTES:
        raise WeightsError(f"weights file {str(p)!r} could not be read: its entries unpack to "
                           f"{declared / 2**20:.0f} MiB, at most "
                           f"{MAX_WEIGHTS_BYTES / 2**20:.0f} MiB is accepted")
    try:
        return torch.load(p, map_location=map_location, weights_only=True)
    except Exception as exc:  # pickle/zip/EOF/Runtime errors from a corrupted file
        raise WeightsError(f"weights file {str(p)!r} could not be read "
                           f"({type(exc).__name__}: "
                           f"{str(exc).splitlines()[0] if str(exc) else ''}); "
                           f"{hint}") from exc


def _check_shapes(state: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor],
                  p: Path) -> None:
    """Compare the file's tensors with a (meta-device) model's state_dict: total size,
    names, shapes (:class:`WeightsShapeError` naming the first difference)."""
    head = f"weights file {str(p)!r} does not fit the model its metadata describes"
    total = sum(v.numel() for v in expected.values())
    if total > MAX_PARAMETERS:
        raise WeightsShapeError(f"weights file {str(p)!r}: its metadata describes a model of "
                                f"{total:,} parameters; at most {MAX_PARAMETERS:,} are accepted")
    missing = [k for k in expected if k not in state]
    extra = [k for k in state if k not in expected]
    if missing or extra:
        raise WeightsShapeError(f"{head}: {len(missing)} tensor(s) missing (e.g. "
                                f"{missing[:3]}), {len(extra)} unexpected (e.g. {extra[:3]})")
    for k, v in expected.items():
        if tuple(state[k].shape) != tuple(v.shape):
            raise WeightsShapeError(f"{head}: tensor {k!r} has shape {tuple(state[k].shape)} "
                                    f"in the file, the model needs {tuple(v.shape)}")


def load_weights(path: str | os.PathLike, *,
                 model_factory: Callable[[dict[str, Any]], nn.Module],
                 check_meta: Callable[[dict[str, Any], Path], None] | None = None,
                 map_location: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Load a file written by :func:`save_weights` (``torch.load(weights_only=True)``).

    Order of checks, so that a tampered file is refused before it costs memory: file size
    and zip entries (:data:`MAX_WEIGHTS_BYTES`); format and version; ``check_meta``; the
    model built on the ``meta`` device (no storage) against the file's tensor names and
    shapes and :data:`MAX_PARAMETERS`; only then the real model.

    Parameters
    ----------
    path : path-like
    model_factory : callable, keyword-only
        ``model_factory(meta) -> nn.Module``: builds the (untrained) model the weights fit,
        e.g. ``lambda meta: LiteBlendNet(**meta["model"])``. Called twice: once under
        ``torch.device("meta")``, once for real.
    check_meta : callable, keyword-only
        ``check_meta(meta, path)`` raises :class:`WeightsMetaError` for metadata the factory
        must not see (types and ranges, :func:`check_params`).
    map_location : keyword-only
        Passed to ``torch.load`` (default CPU).

    Returns
    -------
    (model, meta)
        The model with the weights loaded (strict), in eval mode; the metadata dict.

    Raises
    ------
    WeightsError
        Missing / unreadable / corrupted / oversized file, not a weights file of this
        format; :class:`WeightsMetaError` for metadata out of range;
        :class:`WeightsShapeError` for tensors that do not match the described model.
    """
    import torch

    p = Path(path)
    if not p.is_file():
        raise WeightsError(f"weights file {str(p)!r} does not exist")
    payload = _open_checked(p, map_location)
    if not isinstance(payload, dict) or payload.get("format") != WEIGHTS_FORMAT:
        raise WeightsError(f"weights file {str(p)!r} is not a {WEIGHTS_FORMAT!r} file")
    if payload.get("version") != _WEIGHTS_VERSION:
        raise WeightsError(f"weights file {str(p)!r} has version {_show(payload.get('version'))}; "
                           f"this code reads version {_WEIGHTS_VERSION}")
    state, meta_json = payload.get("state_dict"), payload.get("meta")
    if (not isinstance(state, dict) or not isinstance(meta_json, str)
            or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                       for k, v in state.items())):
        raise WeightsError(f"weights file {str(p)!r} is malformed: expected a state_dict of "
                           "tensors and a JSON meta string")
    try:
        meta = json.loads(meta_json)
    except (ValueError, RecursionError) as exc:
        raise WeightsMetaError(f"weights file {str(p)!r} has invalid meta JSON: {exc}") from exc
    if not isinstance(meta, dict):
        raise WeightsMetaError(f"weights file {str(p)!r}: metadata is a "
                               f"{type(meta).__name__}, expected a JSON object")
    if check_meta is not None:
        check_meta(meta, p)

    def build() -> nn.Module:
        try:
            return model_factory(copy.deepcopy(meta))
        except WeightsError:
            raise
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            raise WeightsMetaError(f"weights file {str(p)!r}: its metadata does not describe a "
                                   f"model this code builds ({type(exc).__name__}: {exc})") from exc

    with torch.device("meta"):
        skeleton = build()
    _check_shapes(state, skeleton.state_dict(), p)
    del skeleton
    model = build()
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise WeightsError(f"weights file {str(p)!r} does not fit the model built by "
                           f"model_factory: {exc}") from exc
    model.eval()
    return model, meta
