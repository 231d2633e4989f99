"""Benchmark: LBNet-Dx inference on the CPU -- one field end to end, patches/s vs a
ResNet-50-sized reference network, and Grad-CAM over a field.

Measures, in this one run, with ``torch.set_num_threads(--threads)`` (default 2):

(a) one 1200 x 1200 composite end to end: ``extract_patches`` (300 px, stride 100) ->
    ``normalize`` -> LiteBlendNet (eval, no grad) -> softmax -> ``dx_vote``; median of
    ``--runs`` warm runs (target <= 2 s);
(b) patches/s of LiteBlendNet and of :class:`ml.dx.refnets.ResNet50Ref` on the same z-scored
    300 x 300 batches (``--batch`` 20, eval, no grad; the two networks interleaved), and
    their ratio;
(c) Grad-CAM of the field (:func:`ml.dx.gradcam.field_cam`, every valid patch).

Weights are random (untrained): inference time does not depend on the weight values, so
the numbers are speed only. The composite is synthetic: smooth random tissue covering
~60 % of the field (background exactly 0, as in ``composite_rgb``). Not a test: the numbers
go into docs/benchmarks.md by hand.

    .venv/bin/python benchmarks/bench_classify.py [--runs 7] [--threads 2] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch
from scipy.ndimage import gaussian_filter
from timing import median_time as _median_time  # benchmarks/timing.py

from ml.common.nn import count_macs, count_parameters
from ml.dx.gradcam import field_cam
from ml.dx.lbnet import LiteBlendNet
from ml.dx.patches import extract_patches
from ml.dx.preprocess import normalize
from ml.dx.refnets import ResNet50Ref
from ml.dx.vote import dx_vote


def synthetic_composite(seed: int = 0, size: int = 1200, tissue: float = 0.6) -> np.ndarray:
    """``(3, size, size)`` float32 in [0, 1]: smooth random channels on ~``tissue`` of the field."""
    rng = np.random.default_rng(seed)
    blob = gaussian_filter(rng.standard_normal((size, size)), 40)
    mask = blob > np.quantile(blob, 1.0 - tissue)
    chans = []
    for c in range(3):
        v = gaussian_filter(rng.standard_normal((size, size)), 3 + 4 * c)
        v = (v - v.min()) / (v.max() - v.min())
        chans.append(0.05 + 0.9 * v)
    img = np.stack(chans).astype(np.float32) * mask
    return np.clip(img, 0.0, 1.0)


def classify_field(model: torch.nn.Module, composite: np.ndarray, *, batch: int = 50):
    """End-to-end classification of one field; returns (vote, n_valid_patches)."""
    ps = extract_patches(composite)
    x = torch.from_numpy(normalize(ps.patches, check=False))
    with torch.inference_mode():
        probs = torch.cat([model(x[i:i + batch]).softmax(dim=1)
                           for i in range(0, len(x), batch)])
    return dx_vote(probs.numpy(), ps.weights, class_names=("normal", "NOA")), len(ps)


def cpu_gflops(n: int = 512, reps: int = 20) -> float:
    """Float32 matmul throughput now (GFLOP/s): a probe of the CPU's current speed.

    This VM's CPU throughput was seen to drop ~7x for minutes at a time (host throttling);
    the probe at the start and end of a run tells whether the numbers are comparable.
    """
    a = torch.randn(n, n)
    a @ a
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ a
    return 2.0 * n ** 3 * reps / (time.perf_counter() - t0) / 1e9


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7, help="timed runs of (a) (median)")
    ap.add_argument("--ref-runs", type=int, default=3, help="timed batches per network in (b)")
    ap.add_argument("--cam-runs", type=int, default=3, help="timed runs of (c)")
    ap.add_argument("--batch", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    gflops_start = cpu_gflops()
    lbnet = LiteBlendNet(2).eval()
    ref = ResNet50Ref(2).eval()
    comp = synthetic_composite(args.seed)
    tissue = float((comp.max(axis=0) > 0).mean())

    # (a) one field end to end
    t_field, ts_field = _median_time(lambda: classify_field(lbnet, comp), args.runs)
    vote, n_valid = classify_field(lbnet, comp)

    # (b) patches/s on identical 300 x 300 batches
    ps = extract_patches(comp)
    x = torch.from_numpy(normalize(ps.patches[:args.batch], check=False)).contiguous()
    if len(x) < args.batch:
        raise SystemExit(f"only {len(x)} valid patches, need {args.batch}")

    def run(m):
        with torch.inference_mode():
            m(x)

    # interleaved (LBNet, ResNet, LBNet, ...) so both see the same CPU state
    ts_lb, ts_ref = [], []
    run(lbnet)
    run(ref)
    for _ in range(args.ref_runs):
        for m, ts in ((lbnet, ts_lb), (ref, ts_ref)):
            t0 = time.perf_counter()
            run(m)
            ts.append(time.perf_counter() - t0)
    t_lb, t_ref = statistics.median(ts_lb), statistics.median(ts_ref)
    pps_lb, pps_ref = args.batch / t_lb, args.batch / t_ref

    # (c) Grad-CAM over the field (every valid patch, batches of 20)
    t_cam, _ = _median_time(
        lambda: field_cam(lbnet, comp, ps, target_class=1, batch_size=20), args.cam_runs)

    gflops_end = cpu_gflops()
    out = {
        "cpu_gflops_start_end": [round(gflops_start, 1), round(gflops_end, 1)],
        "threads": torch.get_num_threads(),
        "weights": "random (untrained): speed only",
        "field_px": list(comp.shape[1:]),
        "tissue_fraction": round(tissue, 3),
        "valid_patches": n_valid,
        "field_s_median": round(t_field, 4),
        "field_s_runs": [round(t, 4) for t in ts_field],
        "field_target_s": 2.0,
        "field_target_met": t_field <= 2.0,
        "vote": vote.as_dict(),
        "batch": args.batch,
        "lbnet_params": count_parameters(lbnet),
        "ref_params": count_parameters(ref),
        "lbnet_gmac_per_patch": round(count_macs(lbnet) / 1e9, 3),
        "ref_gmac_per_patch": round(count_macs(ref) / 1e9, 3),
        "lbnet_patches_per_s": round(pps_lb, 2),
        "ref_patches_per_s": round(pps_ref, 2),
        "speed_ratio_lbnet_over_ref": round(pps_lb / pps_ref, 2),
        "gradcam_field_s_median": round(t_cam, 4),
        "gradcam_patches": len(ps),
    }
    if args.json:
        print(json.dumps(out, indent=2))
        return
    print(f"threads {out['threads']}; weights random (untrained) -- speed only; CPU probe "
          f"{gflops_start:.0f} -> {gflops_end:.0f} GFLOP/s (start -> end)")
    print(f"(a) 1200x1200 field, {n_valid} valid patches ({tissue:.0%} tissue): "
          f"median {t_field:.3f} s over {args.runs} runs (target <= 2 s: "
          f"{'met' if t_field <= 2.0 else 'NOT met'}); vote {vote.label_name}")
    print(f"(b) batch {args.batch} x 300x300, eval, no grad:")
    print(f"    LiteBlendNet  {out['lbnet_params'] / 1e6:6.2f} M params "
          f"{out['lbnet_gmac_per_patch']:6.3f} GMAC/patch  {pps_lb:8.1f} patches/s")
    print(f"    ResNet-50 ref {out['ref_params'] / 1e6:6.2f} M params "
          f"{out['ref_gmac_per_patch']:6.3f} GMAC/patch  {pps_ref:8.1f} patches/s")
    print(f"    ratio LBNet / ResNet-50: {pps_lb / pps_ref:.1f}x patches/s, "
          f"{out['ref_params'] / out['lbnet_params']:.1f}x fewer params, "
          f"{out['ref_gmac_per_patch'] / out['lbnet_gmac_per_patch']:.1f}x fewer MACs")
    print(f"(c) Grad-CAM of the field ({len(ps)} patches): median {t_cam:.3f} s")


if __name__ == "__main__":
    main()
