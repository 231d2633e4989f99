"""Small frozen config objects that dump to JSON for run provenance."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import numpy as np


def _plain(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return obj


class ConfigMixin:
    """Mixin for frozen dataclasses: ``to_dict()``, ``to_json()``, ``replace(**changes)``."""

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python (JSON-safe) dict of all fields, recursively."""
        return _plain(self)

    def to_json(self, **kwargs: Any) -> str:
        """JSON string of :meth:`to_dict`."""
        return json.dumps(self.to_dict(), **kwargs)

    def replace(self, **changes: Any):
        """A copy with some fields changed (validation in ``__post_init__`` runs again)."""
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]

    @classmethod
    def from_dict(cls, data: dict[str, Any]):
        """Inverse of :meth:`to_dict` for flat configs (nested configs override this)."""
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = set(data) - names
        if unknown:
            from simulators.errors import SettingsError

            raise SettingsError(
                f"unknown {cls.__name__} fields {sorted(unknown)}; allowed: {sorted(names)}"
            )
        return cls(**data)
