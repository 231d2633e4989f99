"""``python -m srash_ophyd.qserver``: ``start-re-manager`` with the SRASH profile.

Fills in what ``start-re-manager --startup-module`` requires besides the module: the
user-group permissions (the shipped file), where the list of existing plans and devices is
kept (``<data_dir>/qserver/existing_plans_and_devices.yaml``, rewritten each time the
environment opens), 0MQ on loopback and Redis. ``SRASH_DATA_DIR`` is set (absolute) for the
worker, so the manager, the worker and the catalog agree on the directory; every other
``SRASH_*`` variable of :mod:`srash_ophyd.qserver.profile` passes through. Arguments after
``--`` go to ``start-re-manager`` unchanged. ``--print`` prints the command line instead of
running it.
"""

import argparse
import os
import shlex
import sys
from pathlib import Path
from typing import Sequence

from . import PERMISSIONS, STARTUP_MODULE

__all__ = ["DEFAULT_CONTROL_PORT", "DEFAULT_INFO_PORT", "DEFAULT_REDIS_PREFIX", "main",
           "manager_argv", "redis_problem"]

DEFAULT_CONTROL_PORT = 60615  # queueserver's own defaults, so `qserver` finds the manager
DEFAULT_INFO_PORT = 60625
DEFAULT_REDIS_ADDR = "127.0.0.1:6379"
#: Redis key prefix: the queue, history and settings of this profile, apart from any other
#: manager's (``qs_default``) on the same Redis
DEFAULT_REDIS_PREFIX = "srash"


def manager_argv(data_dir: Path, *, host: str = "127.0.0.1",
                 control_port: int = DEFAULT_CONTROL_PORT,
                 info_port: int = DEFAULT_INFO_PORT, redis_addr: str = DEFAULT_REDIS_ADDR,
                 redis_prefix: str = DEFAULT_REDIS_PREFIX,
                 extra: Sequence[str] = ()) -> list[str]:
    """The ``start-re-manager`` command line of the profile (``argv[0]`` included)."""
    existing = Path(data_dir).absolute() / "qserver" / "existing_plans_and_devices.yaml"
    return ["start-re-manager", "--startup-module", STARTUP_MODULE,
            "--user-group-permissions", str(PERMISSIONS),
            "--existing-plans-devices", str(existing),
            "--zmq-control-addr", f"tcp://{host}:{int(control_port)}",
            "--zmq-info-addr", f"tcp://{host}:{int(info_port)}",
            "--redis-addr", redis_addr, "--redis-name-prefix", redis_prefix, *extra]


def redis_problem(addr: str, timeout_s: float = 3.0) -> str | None:
    """Why Redis at ``addr`` (``HOST:PORT[/DB]``) cannot hold the queue, or None when it
    answers a PING within ``timeout_s`` seconds."""
    import redis

    hostport, _, db = addr.partition("/")
    host, _, port = hostport.rpartition(":")
    try:
        port_n, db_n = int(port), int(db or 0)
    except ValueError:
        return f"--redis-addr {addr!r} is not HOST:PORT[/DB] (e.g. 127.0.0.1:6379)"
    client = redis.Redis(host=host or "127.0.0.1", port=port_n, db=db_n,
                         socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
    try:
        client.ping()
    except redis.exceptions.RedisError as exc:
        return (f"Redis at {hostport} does not answer ({exc}); the queue, history and "
                f"settings live there: start it (e.g. `redis-server --daemonize yes --bind "
                f"127.0.0.1 --port {port_n}` or `sudo systemctl start redis-server`) or "
                "pass --redis-addr")
    finally:
        client.close()
    return None


def _parser() -> argparse.ArgumentParser:
    from ..catalog import DEFAULT_DATA_DIR, ENV_DATA_DIR

    p = argparse.ArgumentParser(
        prog="python -m srash_ophyd.qserver",
        description="Start the bluesky-queueserver RE manager with the SRASH profile "
                    "(simulated microscope, catalog writer, live LBNet-Dx); then use "
                    "`qserver` (environment open, queue add plan, queue start, status).",
        epilog="Arguments after -- go to start-re-manager. Profile settings: the SRASH_QS_* "
               "variables (srash_ophyd/qserver/profile.py, README 'Facility').")
    p.add_argument("--data-dir", type=Path, default=None,
                   help=f"data directory (default ${ENV_DATA_DIR} or ./{DEFAULT_DATA_DIR})")
    p.add_argument("--host", default="127.0.0.1",
                   help="address the 0MQ sockets bind to (default 127.0.0.1: this machine "
                        "only)")
    p.add_argument("--port", type=int, default=DEFAULT_CONTROL_PORT,
                   help=f"0MQ control port, which qserver talks to (default "
                        f"{DEFAULT_CONTROL_PORT})")
    p.add_argument("--info-port", type=int, default=DEFAULT_INFO_PORT,
                   help=f"0MQ console-output port (default {DEFAULT_INFO_PORT})")
    p.add_argument("--redis-addr", default=DEFAULT_REDIS_ADDR,
                   help=f"Redis HOST:PORT[/DB] (default {DEFAULT_REDIS_ADDR})")
    p.add_argument("--redis-prefix", default=DEFAULT_REDIS_PREFIX,
                   help=f"prefix of the manager's Redis keys (default {DEFAULT_REDIS_PREFIX})")
    p.add_argument("--print", action="store_true", dest="print_only",
                   help="print the start-re-manager command line and exit")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from ..catalog import ENV_DATA_DIR, resolve_data_dir

    args_in = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in args_in:
        i = args_in.index("--")
        args_in, extra = args_in[:i], args_in[i + 1:]
    args = _parser().parse_args(args_in)
    data_dir = resolve_data_dir(args.data_dir).absolute()
    cmd = manager_argv(data_dir, host=args.host, control_port=args.port,
                       info_port=args.info_port, redis_addr=args.redis_addr,
                       redis_prefix=args.redis_prefix, extra=extra)
    line = f"{ENV_DATA_DIR}={shlex.quote(str(data_dir))} {shlex.join(cmd)}"
    if args.print_only:
        print(line)
        return 0
    problem = redis_problem(args.redis_addr)
    if problem:  # the manager would retry silently, and the queue lives in Redis
        print(f"python -m srash_ophyd.qserver: error: {problem}", file=sys.stderr)
        return 2
    (data_dir / "qserver").mkdir(parents=True, exist_ok=True)
    os.environ[ENV_DATA_DIR] = str(data_dir)
    print(line, file=sys.stderr, flush=True)
    from bluesky_queueserver.manager.start_manager import start_manager

    sys.argv = cmd
    return int(start_manager() or 0)
