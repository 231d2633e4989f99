"""``srash shell``: an IPython session with the instrument loaded, like a beamline profile.

Loaded: the session's names (:meth:`srash_ophyd.session.Session.namespace`), bluesky's
magics (``%wa`` lists the labelled devices' positions, ``%mov``, ``%ct``), bluesky's
BestEffortCallback (``bec``: a table per run; live plots when a display is available and
``--no-plots`` is not given) and the live mosaic preview (``preview``,
:class:`srash_ophyd.livepreview.MosaicPreview`: each field drawn at its stage position as it
is acquired; ``--no-preview``, or ``preview.enabled = False`` at the prompt, turns it off).
Without a display (no ``DISPLAY`` / ``WAYLAND_DISPLAY`` on Linux) plots and preview are off.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from plans.contract import PHENOTYPES
from simulators.specimens import SPECIMEN_KINDS

from .options import add_catalog_options

BANNER = """SRASH session (simulated microscope)
  RE        RunEngine (writes every run into the catalog)
  mic       the microscope (mic.raman, mic.xyz.x, mic.xyz.y, mic.sim ...)
  catalog   the run catalog (catalog[-1] the latest run, catalog[7] the run of scan 7)
  plans     SRASH plans (plans.mosaic, plans.srash_field ...); bps, bp: bluesky's
  session   everything above; session.run_md(sample_id=...) gives start metadata
  stage pump stokes raman   the microscope's axes and lasers (%wa lists them)
  bec       BestEffortCallback (tables{plots})
  preview   live mosaic figure{preview}
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
    p.add_argument("--no-plots", action="store_true",
                   help="BestEffortCallback tables only, no live plots (always so without a "
                        "display)")
    p.add_argument("--no-preview", action="store_true",
                   help="no live mosaic preview figure (always so without a display; at the "
                        "prompt: preview.enabled = False)")
    p.add_argument("--control", choices=("sim", "epics"), default="sim",
                   help="sim (in process, default) or epics (Channel Access to `srash ioc`)")
    p.add_argument("--prefix", default="SRASH:", help="the IOC's PV prefix (--control epics)")
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

    display = has_display()
    plots, preview = display and not args.no_plots, display and not args.no_preview
    session = make_session(data_dir=args.data_dir, catalog_uri=args.catalog,
                           api_key=args.api_key, specimen=args.specimen,
                           phenotype=args.phenotype, seed=args.seed,
                           noise_seed=args.noise_seed, best_effort=True,
                           best_effort_plots=plots, pixels=args.pixels, fov_um=args.fov_um,
                           control=args.control, prefix=args.prefix)
    # SIGTERM / SIGHUP: a running plan is aborted and its run closed (finished tiles kept),
    # then the shell dies by the signal; at the prompt (no run open) they act as usual
    import signal

    from ..signals import TERMINATION_SIGNALS, TerminationHandler

    TerminationHandler.exit_after_run = True
    for s in TERMINATION_SIGNALS:
        signal.signal(s, signal.SIG_DFL)
    try:
        print(banner(plots=plots, preview=preview, display=display))
        argv = ["--no-banner"] + (["--matplotlib=auto"] if plots or preview else [])
        IPython.start_ipython(argv=argv, user_ns=session.namespace(),
                              config=_shell_config(preview=preview))
    finally:
        session.close()
    return 0


def has_display() -> bool:
    """Whether figures can be shown: macOS and Windows always, elsewhere an X11 or Wayland
    display in the environment."""
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def banner(*, plots: bool, preview: bool, display: bool = True) -> str:
    """The shell's banner, saying which live displays are on."""
    why = "" if display else ", no display"
    return BANNER.format(plots=" and live plots" if plots else f"; plots off{why}",
                         preview=" (on: preview.enabled = False turns it off)" if preview
                         else f" (off{why})")


def attach_preview(session: Any, fig: Any = None) -> Any:
    """Subscribe a :class:`~srash_ophyd.livepreview.MosaicPreview` to the session's
    RunEngine as ``preview`` (in its namespace); returns it."""
    from ..livepreview import MosaicPreview

    return session.subscribe("preview", MosaicPreview(fig))


def register_magics(ip: Any) -> None:
    """bluesky's IPython magics (``%wa``, ``%mov``, ``%movr``, ``%ct``) on shell ``ip``."""
    from bluesky.magics import BlueskyMagics

    ip.register_magics(BlueskyMagics)


def setup_shell(ip: Any, *, preview: bool) -> None:
    """Run inside the started IPython (after its matplotlib event-loop integration): the
    magics, and the live preview as ``preview`` in the namespace when asked for."""
    register_magics(ip)
    if preview:
        ip.user_ns["preview"] = attach_preview(ip.user_ns["session"])


def _shell_config(*, preview: bool) -> Any:
    from traitlets.config import Config

    c = Config()
    c.InteractiveShellApp.exec_lines = [
        "__import__('srash_ophyd.cli.shell', fromlist=['_']).setup_shell(get_ipython(), "
        f"preview={bool(preview)})"]
    return c
