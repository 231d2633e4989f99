"""The cut section's local thickness T(x, y) (um): the microtome's preparation artefacts
other than tears (docs/physics-notes.md, Focus and section thickness).

* a slow **wedge**: the thickness changes linearly across the section (block face and
  knife not parallel, block warming during the cut);
* **knife chatter**: thickness bands parallel to the knife edge, i.e. periodic along the
  cutting direction, in patches of the section;
* **folds**: straight bands where the section lies doubled (thickness 2T).

Everything is drawn from the patient's ``artefact_seed`` (the stream of the outline and the
tears), never from the histology or the phenotype. Evaluation is window-local: the same
world point has the same thickness in any window, and a window costs O(its pixels) (a
section has a handful of folds; each is stamped only where its box meets the window).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from numpy.typing import NDArray

from simulators.config import ConfigMixin
from simulators.errors import SettingsError, check_range
from simulators.specimens._raster import noise_grid, noise_max, noise_points
from simulators.specimens.base import Window

_F32 = np.float32
#: rng stream (with ``artefact_seed``) of the preparation draw, and the noise field of
#: the chatter patches (offset within the artefact seed's noise fields; geometry uses 6, 7)
_S_PREP = 0x7F0D
N_CHATTER = 40
#: half-width (um) of the smooth edge of a fold (the crease)
FOLD_EDGE_UM = 1.5


@dataclasses.dataclass(frozen=True)
class SectionPreparation(ConfigMixin):
    """Thickness artefacts of one section (lengths in um, angles in degrees, stage frame).

    ``thickness_um``: nominal thickness (at the section centre, no chatter, no fold);
    ``center_um``, ``radius_um``: section centre and mean radius (the wedge's scale);
    ``wedge``: relative thickness change from the centre to ``radius_um`` along
    ``wedge_angle_deg``; ``cut_angle_deg``: direction of the knife's travel (chatter bands
    run perpendicular to it); ``chatter_amplitude`` (relative), ``chatter_period_um``,
    ``chatter_phase_rad``; ``chatter_patch_um``: scale of the patches where chatter is
    present; ``folds``: one ``(x, y, angle_deg, length, width)`` per fold;
    ``noise_seed``: seed of the chatter-patch noise.
    """

    thickness_um: float = 10.0
    center_um: tuple[float, float] = (0.0, 0.0)
    radius_um: float = 2700.0
    wedge: float = 0.0
    wedge_angle_deg: float = 0.0
    cut_angle_deg: float = 0.0
    chatter_amplitude: float = 0.0
    chatter_period_um: float = 40.0
    chatter_phase_rad: float = 0.0
    chatter_patch_um: float = 600.0
    folds: tuple[tuple[float, float, float, float, float], ...] = ()
    noise_seed: int = 0

    def __post_init__(self) -> None:
        check_range("section thickness", self.thickness_um, 0.5, 50.0, "um")
        check_range("wedge", self.wedge, -0.5, 0.5)
        check_range("chatter amplitude", self.chatter_amplitude, 0.0, 0.6)
        check_range("chatter period", self.chatter_period_um, 2.0, 1000.0, "um")
        check_range("chatter patch scale", self.chatter_patch_um, 10.0, 1e5, "um")
        check_range("section radius", self.radius_um, 10.0, 1e5, "um")
        folds = tuple(tuple(float(v) for v in f) for f in self.folds)
        for f in folds:
            if len(f) != 5 or f[3] <= 0 or f[4] <= 0:
                raise SettingsError(f"fold {f!r}: need (x, y, angle_deg, length > 0, width > 0)")
        object.__setattr__(self, "folds", folds)
        object.__setattr__(self, "center_um", tuple(float(v) for v in self.center_um))

    @classmethod
    def draw(cls, thickness_um: float, artefact_seed: int, center_um: tuple[float, float],
             radii_um: tuple[float, float]) -> "SectionPreparation":
        """The preparation of a section of nominal ``thickness_um``, deterministic in
        ``artefact_seed`` (ranges and sources: docs/physics-notes.md, Focus and section
        thickness): wedge uniform 0-10 % at the section's edge, random direction; chatter
        period 20-80 um, amplitude 10-30 % in patches of ~600 um, random cutting direction;
        Poisson(1.5) folds inside the outline, 200-1500 um long, 10-50 um wide."""
        rng = np.random.default_rng([int(artefact_seed), _S_PREP])
        rx, ry = (float(v) for v in radii_um)
        cx, cy = (float(v) for v in center_um)
        wedge = float(rng.uniform(0.0, 0.10))
        wedge_angle = float(rng.uniform(0.0, 360.0))
        cut_angle = float(rng.uniform(0.0, 180.0))
        amp = float(rng.uniform(0.10, 0.30))
        period = float(rng.uniform(20.0, 80.0))
        phase = float(rng.uniform(0.0, 2 * math.pi))
        folds = []
        for _ in range(int(rng.poisson(1.5))):
            r, t = 0.9 * math.sqrt(float(rng.uniform())), float(rng.uniform(0, 2 * math.pi))
            folds.append((cx + r * rx * math.cos(t), cy + r * ry * math.sin(t),
                          float(rng.uniform(0.0, 180.0)), float(rng.uniform(200.0, 1500.0)),
                          float(rng.uniform(10.0, 50.0))))
        return cls(thickness_um=float(thickness_um), center_um=(cx, cy),
                   radius_um=0.5 * (rx + ry), wedge=wedge, wedge_angle_deg=wedge_angle,
                   cut_angle_deg=cut_angle, chatter_amplitude=amp, chatter_period_um=period,
                   chatter_phase_rad=phase, folds=tuple(folds),
                   noise_seed=(int(artefact_seed) + 1) * 64 + N_CHATTER)

    # ------------------------------------------------------------------ evaluation
    def _patch(self, n: NDArray) -> NDArray:
        """Chatter envelope from the patch noise: 0 below 0.25, 1 above 0.75."""
        return np.clip(2.0 * n - 0.5, 0.0, 1.0)

    def floor_um(self, window: Window) -> float:
        """A lower bound of T over the window (um), cheap: the wedge at the window's
        corners times the deepest chatter trough its patch noise allows (folds only add)."""
        x0, x1, y0, y1 = window.extent_um
        cx, cy = self.center_um
        a = math.radians(self.wedge_angle_deg)
        g = self.thickness_um * self.wedge / self.radius_um
        wedge = self.thickness_um + min(g * (math.cos(a) * (x - cx) + math.sin(a) * (y - cy))
                                        for x in (x0, x1) for y in (y0, y1))
        env = 0.0
        if self.chatter_amplitude > 0:
            env = min(1.0, max(0.0, 2.0 * noise_max(window, self.noise_seed,
                                                    self.chatter_patch_um) - 0.5))
        return max(0.05, wedge * (1.0 - self.chatter_amplitude * env))

    def thickness(self, window: Window) -> NDArray[np.float32]:
        """Local section thickness T (um) on the window's pixel centres, float32 (ny, nx)."""
        xs, ys = window.xs(), window.ys()
        cx, cy = self.center_um
        a = math.radians(self.wedge_angle_deg)
        g = self.thickness_um * self.wedge / self.radius_um
        t = ((g * math.sin(a) * (ys - cy) + self.thickness_um).astype(_F32)[:, None]
             + (g * math.cos(a) * (xs - cx)).astype(_F32)[None, :])
        if self.chatter_amplitude > 0:
            env = noise_grid(window, self.noise_seed, self.chatter_patch_um)
            env *= _F32(2.0)
            env -= _F32(0.5)
            np.clip(env, 0.0, 1.0, out=env)
            if env.any():
                c = math.radians(self.cut_angle_deg)
                k = 2 * math.pi / self.chatter_period_um
                ax = k * math.cos(c) * xs + self.chatter_phase_rad
                by = k * math.sin(c) * ys
                wave = np.sin(ax).astype(_F32)[None, :] * np.cos(by).astype(_F32)[:, None]
                wave += np.cos(ax).astype(_F32)[None, :] * np.sin(by).astype(_F32)[:, None]
                wave *= env
                wave *= _F32(self.chatter_amplitude)
                wave += _F32(1.0)
                t *= wave
        for f in self.folds:
            self._stamp_fold(t, window, f)
        return np.maximum(t, _F32(0.05), out=t)

    @staticmethod
    def _fold_cover(dx: NDArray, dy: NDArray, fold: tuple[float, ...]) -> NDArray:
        _, _, ang, length, width = fold
        c, s = math.cos(math.radians(ang)), math.sin(math.radians(ang))
        along = np.abs(dx * c + dy * s)
        across = np.abs(-dx * s + dy * c)
        e = 2.0 * FOLD_EDGE_UM
        return (np.clip((0.5 * width - across) / e + 0.5, 0.0, 1.0)
                * np.clip((0.5 * length - along) / e + 0.5, 0.0, 1.0))

    def _stamp_fold(self, t: NDArray[np.float32], window: Window,
                    fold: tuple[float, ...]) -> None:
        """Double the thickness under one fold (T -> T (1 + cover)), only where its box
        meets the window."""
        x, y, _, length, width = fold
        r = 0.5 * math.hypot(length, width) + 2 * FOLD_EDGE_UM
        sl = window.pixel_slices(x - r, x + r, y - r, y + r)
        if sl is None:
            return
        dx = (window.xs()[sl[1]] - x).astype(_F32)[None, :]
        dy = (window.ys()[sl[0]] - y).astype(_F32)[:, None]
        cov = self._fold_cover(dx, dy, fold).astype(_F32)
        cov += _F32(1.0)
        t[sl] *= cov

    def thickness_at(self, x: NDArray, y: NDArray) -> NDArray[np.float64]:
        """T (um) at world points (float64; the definition :meth:`thickness` evaluates)."""
        x, y = np.broadcast_arrays(np.asarray(x, float), np.asarray(y, float))
        cx, cy = self.center_um
        a = math.radians(self.wedge_angle_deg)
        g = self.thickness_um * self.wedge / self.radius_um
        t = self.thickness_um + g * (math.cos(a) * (x - cx) + math.sin(a) * (y - cy))
        if self.chatter_amplitude > 0:
            c = math.radians(self.cut_angle_deg)
            u = math.cos(c) * x + math.sin(c) * y
            env = self._patch(noise_points(x, y, self.noise_seed, self.chatter_patch_um))
            t = t * (1.0 + self.chatter_amplitude * env * np.sin(
                2 * math.pi * u / self.chatter_period_um + self.chatter_phase_rad))
        for f in self.folds:
            t = t * (1.0 + self._fold_cover(x - f[0], y - f[1], f))
        return np.maximum(t, 0.05)
