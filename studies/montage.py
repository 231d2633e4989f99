"""A montage of simulated testis sections, one row per phenotype, next to what the paper's
Fig. 2 shows of real tissue, so a reader can judge the realism by eye.

    .venv/bin/python -m studies.montage [--out docs] [--seed-base 70000] [--pixels 1200]

Each row: one patient of new seeds (``seed_base + phenotype index``; never used for
training, tuning or the held-out cohorts) imaged at the section centre on the default
simulated instrument (360 um field, 3 averages, 2850 + 2930 cm^-1 + SHG) and shown as the
classifier's composite (R = SRS 2930 protein, G = SRS 2850 lipid, B = SHG, from the
instrument's calibration record, as in a catalog run), a zoom on the tubule nearest the field
centre, and the SHG channel alone. Writes ``testis-montage.png`` (about 1-2 min
on 2 cores).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

PHENOTYPES = ("normal", "NOA-SPT", "NOA-SPG", "NOA-SCO")

#: What the paper's Fig. 2 (SRASH images of real sections) shows per subtype, in our words.
PAPER_FIG2: dict[str, str] = {
    "normal": "complete spermatogenesis: germ-cell layers to the lumen, thin collagen "
              "wall, many large lipid droplets",
    "NOA-SPT": "arrest at spermatocytes: no spermatids, thick truncated collagen, fewer "
               "smaller LDs, protein droplets (bright at 2930 only)",
    "NOA-SPG": "arrest at spermatogonia: thin epithelium, almost no lipid droplets, "
               "thick wall",
    "NOA-SCO": "Sertoli cells only: empty lumen, hyaline thick lamina propria, "
               "interstitial fibrosis",
}


def field_of(phenotype: str, seed: int, pixels: int, fov_um: float
             ) -> tuple[np.ndarray, np.ndarray, tuple[float, float], float]:
    """(composite (3, H, W) in [0, 1], SHG channel (H, W) in dense-collagen units, centre
    (x, y) um of the tubule nearest the field centre, its semi-major axis um)."""
    from ml.io.composite import Calibration, field_channels, field_composite
    from simulators.instrument import build_simulator, noise_generators
    from simulators.specimens import make_specimen

    spec = make_specimen("testis", seed, phenotype=phenotype)
    cx, cy = spec.default_center_um()
    sim = build_simulator(spec, pixels=pixels, fov_um=fov_um, x_um=cx, y_um=cy)
    rng, _ = noise_generators(seed + 500_000)
    cal = Calibration.from_dict(sim.calibration(rng))
    f = sim.field(rng)
    il, ip, ib = (f.channel_names.index(n) for n in ("SRS_2850", "SRS_2930", "SHG"))
    kw = dict(calibration=cal, shifts_cm1=[f.raman_shifts_cm1[il], f.raman_shifts_cm1[ip]],
              pump_mw=[f.pump_mw[il], f.pump_mw[ip]],
              stokes_mw=[f.stokes_mw[il], f.stokes_mw[ip]])
    comp = field_composite(f.raw[il], f.raw[ip], f.raw[ib], **kw)
    shg = field_channels(f.raw[il], f.raw[ip], f.raw[ib], **kw)[2]
    h = fov_um / 2
    tubs = [t for t in spec.tubules_in(cx - h, cx + h, cy - h, cy + h)
            if abs(t.cx_um - cx) < 0.6 * h and abs(t.cy_um - cy) < 0.6 * h]
    t = min(tubs, key=lambda t: math.hypot(t.cx_um - cx, t.cy_um - cy)) if tubs else None
    centre = (t.cx_um, t.cy_um) if t is not None else (cx, cy)
    return comp, shg, (centre[0] - cx, centre[1] - cy), (t.a_um if t is not None else h)


def crop(img: np.ndarray, centre_um: tuple[float, float], half_um: float, fov_um: float
         ) -> np.ndarray:
    """The square of half-width ``half_um`` around ``centre_um`` (relative to the field
    centre), clipped to the field; ``img`` is (..., H, W)."""
    n = img.shape[-1]
    px = n / fov_um
    c = (int(round(n / 2 + centre_um[0] * px)), int(round(n / 2 + centre_um[1] * px)))
    r = int(round(half_um * px))
    x0, x1 = max(0, c[0] - r), min(n, c[0] + r)
    y0, y1 = max(0, c[1] - r), min(n, c[1] + r)
    return img[..., y0:y1, x0:x1]


def build(out: Path, seed_base: int, pixels: int, fov_um: float = 360.0) -> Path:
    from ml.common.plotting import new_figure, save_png

    fig = new_figure((13.0, 3.3 * len(PHENOTYPES)), dpi=85)
    axes = fig.subplots(len(PHENOTYPES), 4, width_ratios=(1, 1, 1, 0.9))
    for k, ph in enumerate(PHENOTYPES):
        print(f"imaging {ph} (seed {seed_base + k})...", file=sys.stderr, flush=True)
        comp, shg, centre, a_um = field_of(ph, seed_base + k, pixels, fov_um)
        zoom = crop(comp, centre, min(fov_um / 2, max(50.0, 1.1 * a_um)), fov_um)
        panels = ((np.moveaxis(comp, 0, -1), f"{ph}: composite, {fov_um:.0f} um"),
                  (np.moveaxis(zoom, 0, -1), "zoom on the central tubule"),
                  (np.clip(shg / max(float(np.percentile(shg, 99.5)), 1e-6), 0, 1),
                   "SHG alone (99.5 % scaled)"))
        for j, (img, title) in enumerate(panels):
            ax = axes[k, j]
            ax.imshow(img, cmap="gray" if img.ndim == 2 else None, interpolation="lanczos")
            ax.set_title(title, fontsize=9)
            ax.set_axis_off()
        ax = axes[k, 3]
        ax.set_axis_off()
        ax.text(0.0, 0.95, "paper, Fig. 2 (real tissue):\n" + _wrap(PAPER_FIG2[ph], 34),
                va="top", ha="left", fontsize=9, transform=ax.transAxes)
    fig.suptitle("Simulated SRASH composites (R = SRS 2930 protein, G = SRS 2850 lipid, "
                 "B = SHG); new seeds, default instrument", fontsize=10)
    return save_png(fig, out / "testis-montage.png")


def _wrap(text: str, width: int) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m studies.montage", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("docs"), help="folder (default docs)")
    ap.add_argument("--seed-base", type=int, default=70000,
                    help="specimen seed of the first phenotype (default 70000)")
    ap.add_argument("--pixels", type=int, default=1200, help="pixels per field side (1200)")
    args = ap.parse_args(argv)
    if args.pixels < 64:
        ap.error(f"--pixels {args.pixels}: expected >= 64")
    print(build(args.out, args.seed_base, args.pixels))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
