"""``srash shell``: an IPython session with the instrument loaded, like a beamline profile."""

from __future__ import annotations

import argparse

from plans.contract import PHENOTYPES
from simulators.specimens import SPECIMEN_KINDS

from .options import add_catalog_options

BANNER = """SRASH session (simulated microscope)
  RE        RunEngine (writes every run into the catalog)
  mic       the microscope (mic.raman, mic.xyz.x, mic.xyz.y, mic.sim ...)
  catalog   the run catalog (catalog[-1] is the latest run)
  plans     SRASH plans (plans.mosaic, plans.srash_field ...); bps, bp: bluesky's
  session   everything above; session.run_md(sample_id=...) gives start metadata
e.g.  RE(plans.mosaic([mic], mic.raman, mic.xyz.x, mic.xyz.y, rows=2, cols=2,
                      fov_um=mic.sim.scanner.fov_um, md=session.run_md(sample_id="S1")))
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("shell", help="IPython with RE, mic, catalog, plans loaded",
                       description="Open IPython with the session loaded (RunEngine writing "
                                   "to the catalog, simulated microscope, plans, bps, bp). "
                                   "Needs IPython (pip install ipython).")
    p.add_argument("--specimen", choices=SPECIMEN_KINDS, default="testis")
    p.add_argument("--phenotype", choices=PHENOTYPES, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--noise-seed", type=int, default=0)
    p.add_argument("--pixels", type=int, default=512)
    p.add_argument("--fov-um", type=float, default=360.0)
    add_catalog_options(p)
    p.set_defaults(func=run_shell)


def run_shell(args: argparse.Namespace) -> int:
    try:
        import IPython
    except ImportError:
        raise OSError("srash shell needs IPython, which is not installed: "
                      "pip install ipython (or use `python -i` with "
                      "srash_ophyd.session.make_session())") from None
    from ..session import make_session

    session = make_session(data_dir=args.data_dir, catalog_uri=args.catalog,
                           api_key=args.api_key, specimen=args.specimen,
                           phenotype=args.phenotype, seed=args.seed,
                           noise_seed=args.noise_seed, best_effort=True,
                           pixels=args.pixels, fov_um=args.fov_um)
    # SIGTERM / SIGHUP: a running plan is aborted and its run closed (finished tiles kept),
    # then the shell dies by the signal; at the prompt (no run open) they act as usual
    import signal

    from ..signals import TERMINATION_SIGNALS, TerminationHandler

    TerminationHandler.exit_after_run = True
    for s in TERMINATION_SIGNALS:
        signal.signal(s, signal.SIG_DFL)
    try:
        print(BANNER)
        IPython.start_ipython(argv=["--no-banner"], user_ns=session.namespace())
    finally:
        session.close()
    return 0
