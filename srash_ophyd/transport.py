"""0MQ transport of bluesky documents: publish with msgpack, consume without ever unpickling.

Wire format (bluesky's): one 0MQ message per document, ``PREFIX b" " NAME b" " PAYLOAD``,
PAYLOAD msgpack. numpy values travel in msgpack-numpy's layout (so other msgpack-numpy
consumers read our messages and we read theirs), restricted to numeric and bool dtypes::

    array   {b"nd": True,  b"type": "<f4", b"kind": b"", b"shape": [2, 3], b"data": <bytes>}
    scalar  {b"nd": False, b"type": "<i8", b"data": <bytes>}
    complex {b"complex": True, b"data": "(1+2j)"}

:func:`msgpack_loads` accepts only ``type`` strings of the form ``[<>|=]`` + one of
``b i u f c`` + item size and a ``data`` length that matches ``shape``; object arrays
(``kind b"O"``, which msgpack-numpy unpickles), structured, string and datetime arrays and
anything else raise :class:`TransportError` -- nothing is ever passed to pickle.
:func:`msgpack_dumps` sends other arrays (strings, objects) as plain lists.

:class:`Consumer` (``srash classify-live``, :func:`serve_live`) connects a SUB socket to a
proxy's output and stays up on bad input: a message that is not ``PREFIX NAME PAYLOAD``, has
a name that is not a bluesky document name, does not decode, or is not a document (a map)
is dropped with one warning on the ``srash.transport`` logger and counted
(:class:`ConsumerStats`). Messages larger than ``max_message_bytes`` never reach memory:
0MQ's ``MAXMSGSIZE`` makes libzmq refuse them from the size header, which also **closes the
connection** (libzmq treats it as a protocol error and does not reconnect by itself); the
consumer sees that on a socket monitor, logs it, counts a disconnect and reconnects at
once. Messages the proxy publishes while the consumer is disconnected (a few ms) are lost,
as for any 0MQ subscriber that is not connected. A message under the cap costs up to about
twice its size while it is decoded (0MQ's buffer plus msgpack's copies), so the consumer
needs about its base memory + 2 x the cap.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import re
import socket as _socket
import threading
from collections import Counter
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from .errors import SrashError

if TYPE_CHECKING:  # pragma: no cover
    from ml.dx.live import LBNetDxCallback
    from ml.dx.predict import LBNetDx

__all__ = ["ADDRESS_HINT", "DEFAULT_MAX_MESSAGE_BYTES", "DEFAULT_PUB_ADDRESS",
           "DEFAULT_SUB_ADDRESS", "DOCUMENT_NAMES", "Consumer", "ConsumerStats",
           "TransportError", "msgpack_dumps", "msgpack_loads", "parse_address", "serve_live",
           "zmq_publisher"]

log = logging.getLogger("srash.transport")

#: Where a session publishes (the proxy's input) and where consumers subscribe (its output).
DEFAULT_PUB_ADDRESS = "localhost:5577"
DEFAULT_SUB_ADDRESS = "localhost:5578"
#: Largest message a consumer accepts (bytes, 256 MiB); larger ones are refused by 0MQ.
DEFAULT_MAX_MESSAGE_BYTES = 256 << 20
#: What an address may look like (the end of every address error).
ADDRESS_HINT = "use HOST:PORT with port 1-65535"
#: bluesky's document names (``bluesky.run_engine.DocumentNames``); others are dropped.
DOCUMENT_NAMES = frozenset({
    "start", "stop", "descriptor", "event", "datum", "resource", "event_page", "datum_page",
    "stream_resource", "stream_datum", "bulk_datum", "bulk_events"})

_NUMERIC_KINDS = "biufc"
_TYPE_RE = re.compile(r"[<>|=]?[biufc][0-9]{1,2}")
_HOST_RE = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,251}[A-Za-z0-9_])?"
                      r"|\[[0-9A-Fa-f:.]{2,45}\]")
_ND_KEYS = frozenset({b"nd", b"type", b"kind", b"shape", b"data"})
_MAX_DIMS = 32
_MAX_HEADER = 1024  # bytes searched for the PREFIX and NAME separators


class TransportError(SrashError, ValueError):
    """A bad address, a message that cannot be decoded safely, or a 0MQ socket error."""


# ---------------------------------------------------------------------------- addresses
def _endpoint(address: str | tuple, what: str) -> tuple[str, int]:
    """``(host, port)`` of ``HOST:PORT``, ``tcp://HOST:PORT`` or ``(HOST, PORT)``."""

    def bad(why: str) -> TransportError:
        return TransportError(f"{what} {address!r} not valid: {ADDRESS_HINT} ({why})")

    if isinstance(address, tuple):
        if len(address) != 2 or not isinstance(address[0], str):
            raise bad("a tuple must be (HOST, PORT)")
        host, port_text = address[0], str(address[1])
        if isinstance(address[1], bool) or not isinstance(address[1], (int, str)):
            raise bad("the port must be an integer")
    elif isinstance(address, str):
        rest = address.strip()
        if "://" in rest:
            scheme, _, rest = rest.partition("://")
            if scheme != "tcp":
                raise bad(f"only tcp:// is supported, not {scheme}://")
        host, sep, port_text = rest.rpartition(":")
        if not sep:
            raise bad("no port")
    else:
        raise bad(f"an address is a string, not {type(address).__name__}")
    if not host:
        raise bad("empty host")
    if not _HOST_RE.fullmatch(host):
        raise bad(f"host {host!r} is not a host name or IP address")
    if not port_text.isascii() or not port_text.isdigit():
        raise bad(f"port {port_text!r} is not a number")
    port = int(port_text)
    if not 1 <= port <= 65535:
        raise bad(f"port {port} is out of range")
    return host, port


def parse_address(address: str | tuple, *, what: str = "address") -> str:
    """``tcp://HOST:PORT`` of ``HOST:PORT``, ``tcp://HOST:PORT`` or ``(HOST, PORT)``
    (``[IPv6]`` hosts allowed); :class:`TransportError` ``"{what} ... not valid: use
    HOST:PORT with port 1-65535 (why)"`` for anything else. Nothing is resolved here."""
    host, port = _endpoint(address, what)
    return f"tcp://{host}:{port}"


def _resolve(host: str, port: int, what: str, address: Any) -> None:
    """:class:`TransportError` when ``host`` does not resolve (0MQ would retry silently)."""
    try:
        _socket.getaddrinfo(host.strip("[]"), port, type=_socket.SOCK_STREAM)
    except (_socket.gaierror, UnicodeError) as exc:
        raise TransportError(f"{what} {address!r}: host {host!r} not found "
                             f"({getattr(exc, 'strerror', None) or exc})") from exc


# ---------------------------------------------------------------------------- msgpack
def _encode(obj: Any) -> Any:
    """msgpack ``default``: numeric/bool numpy values in msgpack-numpy's layout, other
    arrays as lists, numpy scalars of other kinds as Python values, complex as text."""
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind in _NUMERIC_KINDS and obj.dtype.fields is None:
            data = obj.data if obj.flags.c_contiguous else obj.tobytes()
            return {b"nd": True, b"type": obj.dtype.str, b"kind": b"",
                    b"shape": list(obj.shape), b"data": data}
        return obj.tolist()
    if isinstance(obj, np.generic):
        if obj.dtype.kind in _NUMERIC_KINDS:
            return {b"nd": False, b"type": obj.dtype.str, b"data": obj.tobytes()}
        return obj.item()
    if isinstance(obj, complex):
        return {b"complex": True, b"data": repr(obj)}
    raise TypeError(f"cannot send a {type(obj).__name__} in a document")


def _dtype(type_str: Any) -> np.dtype:
    if not isinstance(type_str, str) or not _TYPE_RE.fullmatch(type_str):
        raise TransportError(f"array type {str(type_str)[:40]!r} refused: only numeric and "
                             "bool dtypes (e.g. '<f4', '|b1') are accepted")
    try:
        dt = np.dtype(type_str)
    except TypeError as exc:
        raise TransportError(f"array type {type_str!r} is not a numpy dtype") from exc
    if dt.kind not in _NUMERIC_KINDS or dt.hasobject or dt.fields is not None \
            or dt.subdtype is not None:
        raise TransportError(f"array type {type_str!r} refused: not numeric")
    return dt


def _decode_nd(obj: dict) -> Any:
    extra = set(obj) - _ND_KEYS
    if extra:
        raise TransportError(f"array with unexpected keys {sorted(map(repr, extra))[:5]}")
    kind = obj.get(b"kind", b"")
    if kind not in (b"", ""):
        raise TransportError(f"array kind {kind!r} refused: only numeric and bool arrays "
                             "are accepted (object arrays would need pickle)")
    dt = _dtype(obj.get(b"type"))
    data = obj.get(b"data")
    if not isinstance(data, bytes):
        raise TransportError("array data is not bytes")
    nd = obj.get(b"nd")
    if nd is False:
        if b"shape" in obj or len(data) != dt.itemsize:
            raise TransportError(f"scalar of type {dt.str!r} has {len(data)} bytes, "
                                 f"not {dt.itemsize}")
        return np.frombuffer(data, dtype=dt)[0]
    if nd is not True:
        raise TransportError("array marker 'nd' is not a bool")
    shape = obj.get(b"shape")
    if not isinstance(shape, list) or len(shape) > _MAX_DIMS or not all(
            type(n) is int and n >= 0 for n in shape):
        raise TransportError(f"array shape {str(shape)[:60]} is not a list of at most "
                             f"{_MAX_DIMS} non-negative integers")
    nbytes = math.prod(shape) * dt.itemsize
    if nbytes != len(data):
        raise TransportError(f"array of shape {tuple(shape)} and type {dt.str!r} needs "
                             f"{nbytes} bytes, got {len(data)}")
    return np.frombuffer(data, dtype=dt).reshape(shape)


def _object_hook(obj: dict) -> Any:
    if b"nd" in obj:
        return _decode_nd(obj)
    if b"complex" in obj:
        text = obj.get(b"data")
        if obj[b"complex"] is not True or set(obj) != {b"complex", b"data"} \
                or not isinstance(text, str) or len(text) > 128:
            raise TransportError("malformed complex number")
        try:
            return complex(text)
        except ValueError as exc:
            raise TransportError(f"complex number {text!r} does not parse") from exc
    return obj


def _ext_hook(code: int, data: bytes) -> Any:
    raise TransportError(f"msgpack extension type {code} refused")


def msgpack_dumps(doc: Any) -> bytes:
    """Serializer for bluesky's 0MQ Publisher: msgpack; numpy arrays as above (no pickle).

    Raises TypeError for values msgpack cannot represent."""
    import msgpack

    return msgpack.packb(doc, default=_encode, use_bin_type=True)


def msgpack_loads(data: bytes | memoryview) -> Any:
    """Inverse of :func:`msgpack_dumps` that never unpickles: numeric/bool arrays come back
    bit-exact (read-only); everything else in the module doc raises :class:`TransportError`
    (also for data that is not msgpack, truncated or followed by extra bytes)."""
    import msgpack

    try:
        return msgpack.unpackb(data, object_hook=_object_hook, ext_hook=_ext_hook, raw=False,
                               strict_map_key=False)
    except TransportError:
        raise
    except Exception as exc:  # msgpack's ExtraData, FormatError, StackError, ValueError...
        raise TransportError(f"not a msgpack document ({type(exc).__name__}: "
                             f"{str(exc)[:120]})") from exc


# ---------------------------------------------------------------------------- publisher
def zmq_publisher(address: str | tuple = DEFAULT_PUB_ADDRESS, *, prefix: bytes = b""):
    """A bluesky 0MQ :class:`~bluesky.callbacks.zmq.Publisher` with :func:`msgpack_dumps`,
    for ``session.RE.subscribe(...)``; it connects to a proxy's input (``address`` as in
    :func:`parse_address`)."""
    import zmq
    from bluesky.callbacks.zmq import Publisher

    url = parse_address(address)
    try:
        return Publisher(url, prefix=prefix, serializer=msgpack_dumps)
    except zmq.ZMQError as exc:
        raise TransportError(f"cannot connect a 0MQ publisher to {url}: {exc}") from exc


# ---------------------------------------------------------------------------- consumer
@dataclasses.dataclass
class ConsumerStats:
    """Counts of a :class:`Consumer`: messages read, documents passed on, messages dropped
    by reason (``malformed``, ``multipart``, ``unknown-name``, ``undecodable``,
    ``not-a-document``, ``callback-error``) and lost connections (``disconnects``: an
    over-size message or a proxy restart)."""

    received: int = 0
    dispatched: int = 0
    dropped: Counter = dataclasses.field(default_factory=Counter)
    disconnects: int = 0

    @property
    def n_dropped(self) -> int:
        return sum(self.dropped.values())

    def describe(self) -> str:
        """One line, e.g. ``3 messages dropped (2 undecodable, 1 unknown-name), 1 lost
        connection (over-size message?)``; empty when nothing went wrong."""
        parts = []
        if self.dropped:
            what = ", ".join(f"{n} {k}" for k, n in sorted(self.dropped.items()))
            parts.append(f"{self.n_dropped} message{'s' * (self.n_dropped != 1)} dropped "
                         f"({what})")
        if self.disconnects:
            parts.append(f"{self.disconnects} lost connection"
                         f"{'s' * (self.disconnects != 1)} (over-size message or proxy "
                         "restart)")
        return ", ".join(parts)


def _mib(n: int) -> str:
    return f"{n / 2**20:g} MiB"


class Consumer:
    """A SUB socket connected to a 0MQ proxy's output that passes each valid document to
    ``callback(name, doc)`` and drops the rest (module doc).

    Parameters
    ----------
    address : str or tuple
        The proxy's output, as in :func:`parse_address`; the host must resolve.
    callback : callable
        ``callback(name: str, doc: dict)``; its exceptions are logged and counted.
    max_message_bytes : int
        Largest accepted message (bytes, >= 1); larger ones are refused by 0MQ.
    stats : ConsumerStats, optional
        Counters to update (default a new one, :attr:`stats`).
    what : str
        How the address is named in errors (``"--address"`` from the CLI).

    Raises :class:`TransportError` for a bad address or a 0MQ error while connecting.
    """

    def __init__(self, address: str | tuple, callback: Callable[[str, dict], Any], *,
                 max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
                 stats: ConsumerStats | None = None, what: str = "address") -> None:
        import zmq

        host, port = _endpoint(address, what)
        if isinstance(max_message_bytes, bool) or not isinstance(max_message_bytes, int) \
                or max_message_bytes < 1:
            raise TransportError(f"max_message_bytes {max_message_bytes!r} not allowed: "
                                 "must be an integer >= 1")
        _resolve(host, port, what, address)
        self.address = f"tcp://{host}:{port}"
        self.callback = callback
        self.max_message_bytes = max_message_bytes
        self.stats = stats if stats is not None else ConsumerStats()
        self._ctx = zmq.Context()
        self._sock = self._ctx.socket(zmq.SUB)
        self._monitor = None
        try:
            self._sock.setsockopt(zmq.LINGER, 0)
            self._sock.setsockopt(zmq.MAXMSGSIZE, max_message_bytes)
            if host.startswith("["):
                self._sock.setsockopt(zmq.IPV6, 1)
            self._monitor = self._sock.get_monitor_socket(zmq.EVENT_DISCONNECTED)
            self._sock.connect(self.address)
            self._sock.setsockopt(zmq.SUBSCRIBE, b"")
        except zmq.ZMQError as exc:
            self.close()
            raise TransportError(f"cannot connect to {self.address}: {exc}") from exc

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        """Close the sockets (idempotent)."""
        if self._monitor is not None:
            try:
                self._sock.disable_monitor()
            except Exception:  # the socket may be closed already
                pass
            self._monitor.close(0)
            self._monitor = None
        self._ctx.destroy(linger=0)  # closes every socket of this context, then terminates

    def __enter__(self) -> "Consumer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ------------------------------------------------------------------ loop
    def run(self, stop: threading.Event | None = None, *, poll_s: float = 0.1) -> ConsumerStats:
        """Receive until ``stop`` is set (checked every ``poll_s`` s) or KeyboardInterrupt;
        returns :attr:`stats`."""
        import zmq

        poller = zmq.Poller()
        poller.register(self._sock, zmq.POLLIN)
        poller.register(self._monitor, zmq.POLLIN)
        while stop is None or not stop.is_set():
            ready = dict(poller.poll(int(poll_s * 1000)))
            if self._monitor in ready:
                self._on_monitor_event()
            if self._sock in ready:
                try:
                    frame = self._sock.recv(zmq.NOBLOCK, copy=False)
                except zmq.Again:
                    continue
                self.handle(frame)
                del frame  # free a large message now, not when the next one arrives
        return self.stats

    def _drop(self, reason: str, detail: str) -> None:
        self.stats.dropped[reason] += 1
        log.warning("0MQ message %d from %s dropped (%s): %s", self.stats.received,
                    self.address, reason, detail)

    def handle(self, frame: Any) -> None:
        """Check, decode and pass on one received 0MQ frame (``zmq.Frame`` or bytes)."""
        import zmq

        self.stats.received += 1
        buf = memoryview(frame.buffer if hasattr(frame, "buffer") else frame)
        if self._sock.getsockopt(zmq.RCVMORE):
            n = 1
            while self._sock.getsockopt(zmq.RCVMORE):
                self._sock.recv(copy=False)
                n += 1
            return self._drop("multipart", f"{n} parts; a document is one part")
        head = bytes(buf[:_MAX_HEADER])
        i = head.find(b" ")
        j = head.find(b" ", i + 1) if i >= 0 else -1
        if j < 0:
            return self._drop("malformed", f"{len(buf)} bytes that are not "
                                           "'PREFIX NAME PAYLOAD'")
        name_b = head[i + 1:j]
        name = name_b.decode("ascii", "replace")
        if name not in DOCUMENT_NAMES:
            return self._drop("unknown-name", f"{ascii(name_b)[:60]} is not a bluesky "
                                              "document name")
        try:
            doc = msgpack_loads(buf[j + 1:])
        except TransportError as exc:
            return self._drop("undecodable", f"{name} document: {exc}")
        if not isinstance(doc, dict):
            return self._drop("not-a-document",
                              f"{name} payload is a {type(doc).__name__}, not a map")
        try:
            self.callback(name, doc)
        except Exception as exc:  # the consumer stays up
            return self._drop("callback-error", f"{name} document: {type(exc).__name__}: "
                                                f"{exc}")
        self.stats.dispatched += 1

    def _on_monitor_event(self) -> None:
        import zmq
        from zmq.utils.monitor import recv_monitor_message

        event = recv_monitor_message(self._monitor)
        if event["event"] != zmq.EVENT_DISCONNECTED:
            return
        self.stats.disconnects += 1
        log.warning("lost the 0MQ connection to %s (a message over the %s cap, which "
                    "0MQ refuses by closing the connection, or the proxy went away); "
                    "reconnecting", self.address, _mib(self.max_message_bytes))
        try:  # libzmq does not reconnect after a refused message: do it here
            self._sock.disconnect(self.address)
        except zmq.ZMQError:
            pass
        self._sock.connect(self.address)


# ---------------------------------------------------------------------------- classify-live
def serve_live(address: str | tuple, dx: "LBNetDx", publish: Callable[[str, dict], Any] | None,
               *, once: bool = False, target_pixel_um: float | None = None,
               on_result: Callable[[dict[str, Any]], Any] | None = None,
               callback: "LBNetDxCallback | None" = None,
               max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
               stats: ConsumerStats | None = None, stop: threading.Event | None = None,
               what: str = "address") -> list[dict[str, Any]]:
    """Run LBNet-Dx on every SRASH scan arriving from a 0MQ proxy's output ``address``,
    writing the analysis runs through ``publish``. Documents are buffered in a thread so
    that the socket is drained while a field is classified. With ``once`` it returns after
    the first followed scan ends; else it runs until ``stop`` is set or KeyboardInterrupt.
    Bad messages are dropped and counted in ``stats`` (:class:`Consumer`). Returns the
    summaries (:meth:`LBNetDxCallback.summary`), each also passed to ``on_result``.
    ``callback``: use this :class:`LBNetDxCallback` (and its ``publish``) instead of a new
    one; its ``on_done`` is replaced."""
    from bluesky.callbacks.buffer import BufferingWrapper

    from ml.dx.live import LBNetDxCallback

    stop = stop if stop is not None else threading.Event()
    results: list[dict[str, Any]] = []

    def done(cb: LBNetDxCallback) -> None:
        s = cb.summary()
        results.append(s)
        if on_result is not None:
            on_result(s)
        if once:
            stop.set()

    cb = callback or LBNetDxCallback(dx, publish, target_pixel_um=target_pixel_um)
    cb.on_done = done
    buffered = BufferingWrapper(cb)
    try:
        with Consumer(address, buffered, max_message_bytes=max_message_bytes, stats=stats,
                      what=what) as consumer:
            consumer.run(stop)
    finally:
        buffered.shutdown(wait=True)
    return results
