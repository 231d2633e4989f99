"""``srash ioc``: serve the simulated instrument over EPICS Channel Access (a caproto IOC).

Run it in one terminal, then ``srash scan --control epics --prefix SRASH:`` (or ``srash
shell --control epics``) in another; PV names: docs/epics.md. Network: caproto's
``EPICS_CAS_INTF_ADDR_LIST`` / ``EPICS_CA_SERVER_PORT`` choose the interface and port.
"""

from __future__ import annotations

import argparse
import json
import sys

from plans.contract import PHENOTYPES
from simulators.errors import SettingsError
from simulators.specimens import SPECIMEN_KINDS


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ioc", help="serve the simulated instrument as a Channel Access IOC",
                       description="Serve the simulated SRASH instrument (pump, Stokes, EOM, "
                                   "lock-in, PMT, scanner, XYZ stage, frame detector) as "
                                   "EPICS records until Ctrl-C. PV names: docs/epics.md.")
    p.add_argument("--prefix", default="SRASH:", help="PV prefix (default SRASH:)")
    s = p.add_argument_group("specimen")
    s.add_argument("--specimen", choices=SPECIMEN_KINDS, default="testis",
                   help="simulated specimen (default: testis)")
    s.add_argument("--phenotype", choices=PHENOTYPES, default=None,
                   help="testis phenotype (default normal)")
    s.add_argument("--seed", type=int, default=0, help="specimen seed (default 0)")
    s.add_argument("--noise-seed", type=int, default=0, help="detector noise seed (default 0)")
    g = p.add_argument_group("instrument")
    g.add_argument("--fov-um", type=float, default=360.0, help="field of view (um, 360)")
    g.add_argument("--pixels", type=int, default=512, help="pixels per side (default 512)")
    g.add_argument("--dwell-us", type=float, default=10.0, help="pixel dwell (us, default 10)")
    g.add_argument("--averages", type=int, default=1, help="frame averages (default 1)")
    g.add_argument("--x-um", type=float, default=0.0, help="initial stage x (um, default 0)")
    g.add_argument("--y-um", type=float, default=0.0, help="initial stage y (um, default 0)")
    g.add_argument("--time-scale", type=float, default=0.0,
                   help="pace operations at this multiple of real instrument time, 0..10 "
                        "(default 0 = as fast as possible)")
    f = p.add_argument_group("fault schedule")
    f.add_argument("--modelock-loss-at", type=int, default=None, metavar="N",
                   help="the pump loses mode-lock at acquisition N (0-based)")
    f.add_argument("--modelock-down-s", type=float, default=0.5,
                   help="seconds until it relocks (default 0.5)")
    p.add_argument("--list-pvs", action="store_true", help="log PV names as clients connect")
    p.add_argument("--json", action="store_true",
                   help="print one JSON line (prefix, PV count) when serving starts")
    p.set_defaults(func=run_ioc_command)


def run_ioc_command(args: argparse.Namespace) -> int:
    from ..devices._sim import check_time_scale
    from ..ioc import build_ioc, run_ioc

    try:
        check_time_scale(args.time_scale)
    except SettingsError as exc:
        raise SettingsError(str(exc).replace("time_scale", "--time-scale", 1)) from None
    if args.phenotype is not None and args.specimen != "testis":
        raise SettingsError(f"--phenotype applies to --specimen testis only, not {args.specimen}")
    if args.modelock_down_s < 0:
        raise SettingsError(f"--modelock-down-s {args.modelock_down_s:g} not allowed: >= 0")
    ioc = build_ioc(args.prefix, specimen=args.specimen, phenotype=args.phenotype,
                    seed=args.seed, noise_seed=args.noise_seed, time_scale=args.time_scale,
                    modelock_loss_at=args.modelock_loss_at,
                    modelock_down_s=args.modelock_down_s, pixels=args.pixels,
                    fov_um=args.fov_um, dwell_s=args.dwell_us * 1e-6, averages=args.averages,
                    x_um=args.x_um, y_um=args.y_um)
    line = {"prefix": args.prefix, "pvs": len(ioc.pvdb)}
    print(json.dumps(line) if args.json else
          f"srash ioc: serving {len(ioc.pvdb)} PVs under {args.prefix} (Ctrl-C stops)",
          file=sys.stdout, flush=True)
    try:
        run_ioc(ioc, log_pv_names=args.list_pvs)
    except KeyboardInterrupt:
        return 0
    return 0
