"""Benchmark: hyperspectral segmentation inference on the CPU (issue 6).

One 512 x 512 stack of 50 bands (a simulated ``cells`` stack, 2800-3045 cm^-1 in 5 cm^-1
steps, 120 um field), in this one run, with ``torch.set_num_threads(--threads)``:

(a) the automatic spectral-phasor segmentation (:func:`ml.seg.phasor.segment_phasor`);
(b) HybridUNet, UNet2D and (with ``--unet3d``) UNet3D forward passes, eval mode,
    ``torch.inference_mode``, median of ``--runs`` warm runs; weights untrained (speed only).

Target: HybridUNet <= 2 s per 512 x 512 x 50 stack. Prints ratios measured in this run; the
numbers go into docs/benchmarks.md by hand.

    .venv/bin/python benchmarks/bench_segment.py [--runs 3] [--threads 2] [--unet3d] [--json]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from timing import median_time  # benchmarks/timing.py


def _time(fn, runs: int) -> float:
    return median_time(fn, runs)[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--unet3d", action="store_true", help="also time UNet3D (~10 s a pass)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from ml.io.processed import process_field
    from ml.seg.hybrid_unet import HybridUNet, UNet2D, UNet3D
    from ml.seg.phasor import segment_phasor
    from simulators.instrument import build_simulator
    from simulators.specimens import make_specimen

    spec = make_specimen("cells", 3)
    x, y = spec.first_cell_center()
    sim = build_simulator(spec, pixels=512, fov_um=120.0, averages=1, x_um=x, y_um=y)
    shifts = np.arange(2800.0, 3049.0, 5.0)
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    field = sim.stack(rng, list(shifts))
    t_sim = time.perf_counter() - t0
    stack = process_field(sim, field, rng).data.astype(np.float32)  # (50, 512, 512)
    res: dict[str, float] = {"bands": int(stack.shape[0]), "simulate_s": round(t_sim, 3)}
    res["phasor_s"] = _time(lambda: segment_phasor(stack, shifts), args.runs)
    xt = torch.from_numpy(stack / max(float(np.percentile(stack.mean(0), 99)), 1e-9))[None, None]
    models = {"HybridUNet": HybridUNet(), "UNet2D": UNet2D(stack.shape[0])}
    if args.unet3d:
        models["UNet3D"] = UNet3D()
    for name, m in models.items():
        m.eval()

        def run(m=m):
            with torch.inference_mode():
                m(xt)
        res[f"{name}_s"] = _time(run, args.runs)
    res["hybrid_vs_phasor"] = res["HybridUNet_s"] / res["phasor_s"]
    if args.json:
        print(json.dumps(res))
        return
    print(f"512 x 512 x {res['bands']} stack, {args.threads} threads, median of {args.runs}")
    for k, v in res.items():
        if k.endswith("_s"):
            print(f"  {k[:-2]:>12}: {v:7.3f} s")
    print(f"  HybridUNet / phasor time ratio: {res['hybrid_vs_phasor']:.2f}")
    print(f"  HybridUNet within the 2 s target: {res['HybridUNet_s'] <= 2.0}")


if __name__ == "__main__":
    main()
