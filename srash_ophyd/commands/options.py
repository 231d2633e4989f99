"""Command-line options shared by the commands that open the catalog."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_catalog_options(p: argparse.ArgumentParser) -> None:
    """``--data-dir``, ``--catalog URL``, ``--api-key`` in a "catalog" group."""
    c = p.add_argument_group("catalog")
    c.add_argument("--data-dir", type=Path, default=None,
                   help="data directory (frames + embedded catalog; default $SRASH_DATA_DIR "
                        "or ./srash-data)")
    c.add_argument("--catalog", default=None, metavar="URL",
                   help="tiled server URL instead of the embedded catalog")
    c.add_argument("--api-key", default=None, help="API key of the tiled server")
