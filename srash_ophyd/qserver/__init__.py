"""The SRASH profile for bluesky-queueserver: queue plans to the simulated microscope.

- :mod:`.startup`: the startup module the RE worker imports (``start-re-manager
  --startup-module srash_ophyd.qserver.startup``): ``RE``, ``mic``, ``catalog`` and the full
  plans (:func:`.profile.full_plans`);
- :mod:`.profile`: builds that namespace from environment variables (data directory or
  catalog URL, specimen, live LBNet-Dx tasks);
- :mod:`.launch` (``python -m srash_ophyd.qserver``): ``start-re-manager`` with this
  profile, the shipped user-group permissions (:data:`PERMISSIONS`), the list of existing
  plans and devices under the data directory and 0MQ on loopback;
- ``user_group_permissions.yaml``: group ``primary`` (what ``qserver`` submits as) may run
  every plan of the profile on the microscope and its parts.

A user types the ``qserver`` commands of the README ("Facility"). Importing this package
imports neither bluesky nor the queueserver.
"""

from pathlib import Path

__all__ = ["PERMISSIONS", "STARTUP_MODULE"]

#: the startup module the RE worker imports
STARTUP_MODULE = "srash_ophyd.qserver.startup"
#: the shipped user-group permissions file
PERMISSIONS = Path(__file__).with_name("user_group_permissions.yaml")
