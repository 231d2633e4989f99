"""``full_plan``: bluesky's plan decorator for plans that check their arguments when called.

A full plan of this package (one run, ``open_run`` ... ``close_run``) checks its arguments
the moment it is called and only then returns the message generator, so that bad input
raises a :class:`~plans.errors.PlanError` (or :class:`~plans.grid.GridError`) at the line
that made the mistake and nothing is written. :func:`full_plan` marks such a function as a
bluesky plan the way :func:`bluesky.utils.plan` does:

- ``_is_plan_ = True`` on the function, which :func:`bluesky.utils.is_plan` and
  bluesky-queueserver (``existing_plans_and_devices_from_nspace``) look for (the function
  itself is not a generator function, so without the mark the queueserver lists nothing);
- the call returns a :class:`bluesky.utils.Plan`, which warns (``RuntimeWarning``) when the
  plan is dropped without being iterated (``plan(...)`` instead of ``yield from plan(...)``);
- :func:`functools.wraps`, so the signature and annotations the queueserver turns into its
  parameter model are the function's own.

Why not ``@bluesky.utils.plan`` itself: it builds the ``Plan`` around the call, and when the
call raises (bad arguments), ``Plan.__del__`` of the half-built object raises
``AttributeError: _stack`` ("Exception ignored in ... Plan.__del__": bluesky 1.15.1), which
users would see after every rejected argument. Here the arguments are checked first and the
``Plan`` wraps the generator the check returned.

The modules defining full plans do not use ``from __future__ import annotations``: the
queueserver evaluates the annotations at run time to build its pydantic model, and string
annotations leave that model undefined (``validate_plan`` fails).
"""

import functools
from typing import Any, Callable, TypeVar, cast

from bluesky.utils import Plan

__all__ = ["full_plan"]

F = TypeVar("F", bound=Callable[..., Any])


def full_plan(func: F) -> F:
    """Mark ``func`` (checks its arguments, returns a message generator) as a bluesky plan."""

    def deliver(gen: Any) -> Any:
        return gen

    deliver.__name__ = deliver.__qualname__ = func.__name__  # named in Plan's warning

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Plan:
        gen = func(*args, **kwargs)  # the argument checks: bad input raises here, cleanly
        return Plan(deliver, gen)

    setattr(wrapper, "_is_plan_", True)
    return cast(F, wrapper)
