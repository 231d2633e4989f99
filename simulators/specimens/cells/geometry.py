"""Geometry of one exfoliated cell: its outline (an ellipse with low harmonics), nucleus,
nucleolus, droplets and granules, in world micrometres."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from numpy.typing import NDArray


@dataclasses.dataclass(frozen=True, eq=False)
class CellRecord:
    """Geometry of one cell (world um). Droplet and granule arrays are (n,) float64.

    The outline is ``r(theta) = scale * f(theta)`` around ``(x_um, y_um)`` with
    ``f(theta) = e(theta) * (1 + sum_k amp_k cos(k theta + phase_k))`` and ``e`` the unit
    ellipse of axis ratio ``aspect`` rotated by ``angle_rad``; ``radius_um`` = max r,
    ``inner_radius_um`` = min r.
    """

    cell_id: int
    x_um: float
    y_um: float
    radius_um: float
    inner_radius_um: float
    aspect: float
    angle_rad: float
    harmonics: tuple[tuple[int, float, float], ...]
    scale: float
    nucleus_xy_um: tuple[float, float]
    nucleus_ab_um: tuple[float, float]
    nucleus_angle_rad: float
    nucleolus: tuple[float, float, float] | None  # (x, y, radius)
    protein: float
    lipid: float
    droplet_x_um: NDArray[np.float64]
    droplet_y_um: NDArray[np.float64]
    droplet_radius_um: NDArray[np.float64]
    droplet_z_um: NDArray[np.float64]
    droplet_lipid: NDArray[np.float64]
    granule_x_um: NDArray[np.float64]
    granule_y_um: NDArray[np.float64]
    granule_radius_um: NDArray[np.float64]
    #: height of the cell's mid-plane above the focal plane and its slab thickness (um)
    z_um: float = 0.0
    thickness_um: float = 4.0
    #: nucleus DNA and protein mass fractions (issue 15: from the DNA content)
    dna: float = 0.0
    nucleus_protein: float = 0.0
    #: id of the clump's founder (itself for a founder)
    founder_id: int = 0

    @property
    def diameter_um(self) -> float:
        """Largest extent of the cell (2 x max outline radius)."""
        return 2.0 * self.radius_um

    @property
    def n_droplets(self) -> int:
        return int(self.droplet_x_um.size)

    def outline_radius(self, theta: NDArray | float) -> NDArray:
        """Outline radius (um) along direction(s) ``theta`` (rad, from +x towards +y)."""
        return self.scale * shape_factor(np.asarray(theta, float), self.aspect,
                                         self.angle_rad, self.harmonics)

    def contains(self, x: NDArray | float, y: NDArray | float, margin_um: float = 0.0
                 ) -> NDArray | bool:
        """True where ``(x, y)`` lies at least ``margin_um`` inside the outline (radially)."""
        if isinstance(x, float) and isinstance(y, float):  # fast scalar path (placement)
            dx, dy = x - self.x_um, y - self.y_um
            th = math.atan2(dy, dx)
            t = th - self.angle_rad
            e = 1.0 / math.sqrt(math.cos(t) ** 2 + (math.sin(t) / self.aspect) ** 2)
            w = 1.0
            for k, amp, ph in self.harmonics:
                w += amp * math.cos(k * th + ph)
            return math.hypot(dx, dy) + margin_um <= self.scale * e * w
        ax = np.asarray(x, float) - self.x_um
        ay = np.asarray(y, float) - self.y_um
        return np.hypot(ax, ay) + margin_um <= self.outline_radius(np.arctan2(ay, ax))

    def in_nucleus(self, x: NDArray | float, y: NDArray | float, grow_um: float = 0.0
                   ) -> NDArray | bool:
        """True where ``(x, y)`` lies inside the nucleus ellipse grown by ``grow_um``."""
        dx: float | NDArray
        dy: float | NDArray
        if isinstance(x, float) and isinstance(y, float):
            dx, dy = x - self.nucleus_xy_um[0], y - self.nucleus_xy_um[1]
        else:
            dx = np.asarray(x, float) - self.nucleus_xy_um[0]
            dy = np.asarray(y, float) - self.nucleus_xy_um[1]
        c, s = math.cos(self.nucleus_angle_rad), math.sin(self.nucleus_angle_rad)
        u, v = dx * c + dy * s, -dx * s + dy * c
        a, b = self.nucleus_ab_um
        return (u / (a + grow_um)) ** 2 + (v / (b + grow_um)) ** 2 <= 1.0


def shape_factor(theta: NDArray, aspect: float, angle: float,
                 harmonics: tuple[tuple[int, float, float], ...]) -> NDArray:
    """Unit outline ``f(theta)``: the ellipse of axis ratio ``aspect`` rotated by ``angle``,
    times ``1 + sum_k amp_k cos(k theta + phase_k)``."""
    t = theta - angle
    e = 1.0 / np.sqrt(np.cos(t) ** 2 + (np.sin(t) / aspect) ** 2)
    w = np.ones_like(theta)
    for k, amp, ph in harmonics:
        w = w + amp * np.cos(k * theta + ph)
    return e * w


@dataclasses.dataclass(frozen=True)
class Site:
    """A retained cell before its content is drawn."""

    cell_id: int
    x_um: float
    y_um: float
    radius_um: float
    z_um: float = 0.0
    thickness_um: float = 4.0
    founder_id: int = 0
