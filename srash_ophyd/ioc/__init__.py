"""The Channel Access IOC of the simulated SRASH instrument (``srash ioc``).

:mod:`.server` holds the records (one caproto :class:`~caproto.server.PVGroup` over one
:class:`simulators.instrument.SRASHSimulator`) and :func:`~.server.run_ioc`; PV names and
what maps to what: docs/epics.md. The EPICS devices (:mod:`srash_ophyd.devices.epics`) talk
to it over CA only and never import it.
"""

from .server import SRASHIOC, IOCSettings, build_ioc, run_ioc

__all__ = ["IOCSettings", "SRASHIOC", "build_ioc", "run_ioc"]
