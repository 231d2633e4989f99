"""The SRASH instrument: ophyd devices paired with simulators, catalog, session and CLI."""

__version__ = "0.1.0"
