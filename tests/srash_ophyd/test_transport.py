"""0MQ transport (srash_ophyd.transport): the decoder never unpickles and refuses every
non-numeric array; numeric arrays round-trip bit-exactly; addresses are validated; the
consumer drops bad messages (undecodable, unknown name, over-size, multipart, not a map),
counts them and goes on."""

from __future__ import annotations

import logging
import os
import pickle
import socket
import threading
import time

import msgpack
import numpy as np
import pytest
import zmq
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from srash_ophyd.transport import (
    ADDRESS_HINT,
    Consumer,
    ConsumerStats,
    TransportError,
    msgpack_dumps,
    msgpack_loads,
    parse_address,
)

WAIT = 60.0  # generous deadline for a busy 2-core machine (never asserted on)


class _Touch:
    """Unpickling this creates the directory ``path`` (what an attacker's payload would
    do: run any callable)."""

    def __init__(self, path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (os.mkdir, (self.path,))


def pickle_payload(marker) -> dict:
    """msgpack-numpy's layout of an object array: msgpack_numpy.decode unpickles ``data``."""
    return {b"nd": True, b"type": "|O", b"kind": b"O", b"shape": [1],
            b"data": pickle.dumps(np.array([_Touch(marker)], dtype=object))}


# ------------------------------------------------------------------------------ decoder
NUMERIC = st.one_of(hnp.boolean_dtypes(), hnp.integer_dtypes(endianness="?"),
                    hnp.unsigned_integer_dtypes(endianness="?"),
                    hnp.floating_dtypes(endianness="?"),
                    hnp.complex_number_dtypes(endianness="?"))


@given(hnp.arrays(NUMERIC, hnp.array_shapes(min_dims=0, max_dims=4, min_side=0,
                                            max_side=5)), st.booleans())
def test_numeric_arrays_round_trip_bit_exactly(a, fortran):
    if fortran:
        a = np.asfortranarray(a)
    back = msgpack_loads(msgpack_dumps({"data": {"a": a}}))["data"]["a"]
    assert back.dtype == a.dtype and back.shape == a.shape
    assert back.tobytes() == a.tobytes()  # bit-exact, NaN payloads included


@given(hnp.from_dtype(np.dtype("<f4")) | hnp.from_dtype(np.dtype(">i2"))
       | hnp.from_dtype(np.dtype("|b1")) | hnp.from_dtype(np.dtype("<c8"))
       | hnp.from_dtype(np.dtype("<u8")))
def test_numpy_scalars_round_trip(x):
    back = msgpack_loads(msgpack_dumps([x]))[0]
    assert type(back) is type(x) and back.tobytes() == x.tobytes()


def test_float64_scalars_arrive_as_python_floats():  # np.float64 is a float: msgpack's own
    assert msgpack_loads(msgpack_dumps(np.float64(0.1))) == 0.1


def test_wire_format_agrees_with_msgpack_numpy():
    msgpack_numpy = pytest.importorskip("msgpack_numpy")
    doc = {"a": np.arange(12, dtype=">i4").reshape(3, 4)[:, ::2], "s": np.float32(1.5),
           "c": 2 - 1j, "t": np.array([True, False])}
    ours, theirs = msgpack_dumps(doc), msgpack.packb(doc, default=msgpack_numpy.encode,
                                                     use_bin_type=True)
    for back in (msgpack_loads(theirs), msgpack_numpy.unpackb(ours, raw=False,
                                                             strict_map_key=False)):
        for k in ("a", "t"):
            assert back[k].dtype == doc[k].dtype
            np.testing.assert_array_equal(back[k], doc[k])
        assert back["s"] == doc["s"] and back["c"] == doc["c"]


def test_other_arrays_are_sent_as_lists():
    doc = {"s": np.array(["ab", "c"]), "o": np.array([1, "x"], dtype=object),
           "st": np.str_("z")}
    assert msgpack_loads(msgpack_dumps(doc)) == {"s": ["ab", "c"], "o": [1, "x"], "st": "z"}


def test_a_pickling_payload_is_refused_without_unpickling(tmp_path, monkeypatch):
    msgpack_numpy = pytest.importorskip("msgpack_numpy")
    control = tmp_path / "control"
    msgpack_numpy.unpackb(msgpack.packb({"x": pickle_payload(control)}, use_bin_type=True),
                          raw=False, strict_map_key=False)
    assert control.exists()  # the payload works: msgpack-numpy runs it

    marker = tmp_path / "marker"
    msg = msgpack.packb({"data": {"x": pickle_payload(marker)}}, use_bin_type=True)

    def no_pickle(*a, **k):
        raise AssertionError("pickle called")

    monkeypatch.setattr(pickle, "loads", no_pickle)
    with pytest.raises(TransportError, match="kind b'O' refused"):
        msgpack_loads(msg)
    # a real object array, as msgpack_numpy.encode sends it
    real = msgpack.packb(np.array([_Touch(marker)], dtype=object),
                         default=msgpack_numpy.encode, use_bin_type=True)
    with pytest.raises(TransportError, match="refused"):
        msgpack_loads(real)
    assert not marker.exists()


def _nd(**kw) -> dict:
    d = {b"nd": True, b"type": "<f4", b"kind": b"", b"shape": [2], b"data": b"\0" * 8}
    d.update({k.encode(): v for k, v in kw.items()})
    return {k: v for k, v in d.items() if v is not ...}


BAD = {
    "object type, empty kind": _nd(type="|O"),
    "object type, native": _nd(type="O"),
    "structured kind V": _nd(kind=b"V", type=[["a", "|O"]]),
    "descr list": _nd(type=[["a", "<f4"]]),
    "unicode": _nd(type="<U2"),
    "bytes": _nd(type="|S4"),
    "datetime": _nd(type="<M8[ns]"),
    "void": _nd(type="|V8"),
    "no type": _nd(type=...),
    "type not str": _nd(type=5),
    "too few bytes": _nd(data=b"\0" * 7),
    "too many bytes": _nd(data=b"\0" * 9),
    "negative shape": _nd(shape=[-2]),
    "shape not a list": _nd(shape=2),
    "bool in shape": _nd(shape=[True, 2]),
    "huge shape": _nd(shape=[2**40, 2**40]),
    "too many dims": _nd(shape=[1] * 40, data=b"\0" * 4),
    "data not bytes": _nd(data="abcdefgh"),
    "extra key": _nd(code=b"x"),
    "nd not bool": _nd(nd=1),
    "scalar wrong size": {b"nd": False, b"type": "<f8", b"data": b"\0" * 4},
    "complex not text": {b"complex": True, b"data": b"1+2j"},
    "complex junk": {b"complex": True, b"data": "__import__('os')"},
}


@pytest.mark.parametrize("obj", BAD.values(), ids=BAD.keys())
def test_non_numeric_or_inconsistent_arrays_are_refused(obj):
    with pytest.raises(TransportError):
        msgpack_loads(msgpack.packb({"x": obj}, use_bin_type=True))


@pytest.mark.parametrize("data", [b"", b"\xc1", b"\x92\x01", msgpack.packb({"a": 1}) + b"x",
                                  msgpack.packb(msgpack.ExtType(5, b"x")),
                                  b"\x91" * 100_000], ids=["empty", "never-used byte",
                                                           "truncated", "extra data",
                                                           "ext type", "deep nesting"])
def test_garbage_is_a_transport_error(data):
    with pytest.raises(TransportError):
        msgpack_loads(data)


# ------------------------------------------------------------------------------ addresses
@pytest.mark.parametrize("address, url", [
    ("localhost:5578", "tcp://localhost:5578"), ("tcp://127.0.0.1:1", "tcp://127.0.0.1:1"),
    ("[::1]:65535", "tcp://[::1]:65535"), (("proxy.example.org", 5578),
                                           "tcp://proxy.example.org:5578")])
def test_valid_addresses(address, url):
    assert parse_address(address) == url


@pytest.mark.parametrize("address", [
    "localhost:99999", "localhost:0", "localhost:-1", "not an address", ":5578", "localhost",
    "tcp://localhost", "http://localhost:5578", "ipc:///tmp/x", "a b:1", "localhost:5a",
    "::1:5578", "", ("localhost",), ("localhost", True), 5578])
def test_invalid_addresses_say_what_is_allowed(address):
    with pytest.raises(TransportError, match="--address .* not valid: " + ADDRESS_HINT):
        parse_address(address, what="--address")


def test_an_unknown_host_and_a_connect_error_are_transport_errors(monkeypatch):
    def no_host(*a, **k):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    with monkeypatch.context() as m:
        m.setattr(socket, "getaddrinfo", no_host)
        with pytest.raises(TransportError, match="host 'nowhere' not found"):
            Consumer("nowhere:5578", print)

    connect = zmq.Socket.connect

    def refuse(self, addr):
        if addr.startswith("tcp://"):
            raise zmq.ZMQError(zmq.EINVAL)
        return connect(self, addr)  # the monitor's inproc socket

    monkeypatch.setattr(zmq.Socket, "connect", refuse)
    with pytest.raises(TransportError, match="cannot connect to tcp://127.0.0.1:5578"):
        Consumer("127.0.0.1:5578", print)


# ------------------------------------------------------------------------------ consumer
@pytest.fixture
def xpub():
    """A bound XPUB socket (sees each subscription) and its port."""
    ctx = zmq.Context()
    sock = ctx.socket(zmq.XPUB)
    sock.setsockopt(zmq.XPUB_VERBOSE, 1)
    sock.setsockopt(zmq.LINGER, 0)
    port = sock.bind_to_random_port("tcp://127.0.0.1")
    yield sock, port
    sock.close(0)
    ctx.term()


def wait_subscribed(sock) -> None:
    """Block until a subscriber (re)subscribes (0MQ drops what is sent before)."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if sock.poll(100) and sock.recv()[:1] == b"\x01":
            return
    raise AssertionError("no subscription")


def wait_for(cond) -> None:
    deadline = time.monotonic() + WAIT
    while not cond() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert cond()


def doc_msg(name: str, doc, prefix: bytes = b"") -> bytes:
    return b" ".join([prefix, name.encode(), msgpack_dumps(doc)])


def test_consumer_drops_bad_messages_and_goes_on(xpub, tmp_path, caplog):
    sock, port = xpub
    got: list = []

    def callback(name, doc):
        if doc.get("boom"):
            raise RuntimeError("callback failed")
        got.append((name, doc))

    cap = 4096
    consumer = Consumer(f"127.0.0.1:{port}", callback, max_message_bytes=cap)
    stop = threading.Event()
    thread = threading.Thread(target=consumer.run, args=(stop,), daemon=True)
    marker = tmp_path / "marker"
    try:
        with caplog.at_level(logging.WARNING, logger="srash.transport"):
            thread.start()
            wait_subscribed(sock)
            sock.send(doc_msg("start", {"uid": "a", "x": np.arange(3.0)}))
            sock.send(b" start " + msgpack.packb({"x": pickle_payload(marker)},
                                                 use_bin_type=True))
            sock.send(doc_msg("evil_name", {"uid": "b"}))
            sock.send(doc_msg("start", [1, 2]))
            sock.send(b"no-separators")
            sock.send(b" event \xc1\xc1\xc1")
            sock.send_multipart([b" start ", msgpack_dumps({"uid": "c"})])
            sock.send(doc_msg("stop", {"boom": True}))
            # the cap is on the whole message: exactly at the cap passes, one byte over not
            pad = "p" * cap
            while len(doc_msg("event", {"pad": pad})) > cap:
                pad = pad[:-1]
            at_cap = doc_msg("event", {"pad": pad})
            assert len(at_cap) == cap
            sock.send(at_cap)
            wait_for(lambda: len(got) == 2)
            assert consumer.stats.disconnects == 0
            sock.send(doc_msg("event", {"pad": pad + "p"}))  # cap + 1
            wait_subscribed(sock)  # the consumer reconnected
            sock.send(doc_msg("stop", {"uid": "d"}))
            wait_for(lambda: len(got) == 3)
    finally:
        stop.set()
        thread.join(WAIT)
        consumer.close()
    assert not thread.is_alive() and not marker.exists()
    assert [n for n, _ in got] == ["start", "event", "stop"]
    np.testing.assert_array_equal(got[0][1]["x"], np.arange(3.0))
    assert got[1][1]["pad"] == pad and got[2][1] == {"uid": "d"}
    s = consumer.stats
    assert s.dropped == {"undecodable": 2, "unknown-name": 1, "not-a-document": 1,
                         "malformed": 1, "multipart": 1, "callback-error": 1}
    assert s.disconnects == 1 and s.dispatched == 3 and s.received == 10
    warnings = [r.getMessage() for r in caplog.records if r.name == "srash.transport"]
    assert len(warnings) == s.n_dropped + s.disconnects
    assert any("kind b'O' refused" in w for w in warnings)
    assert any("'evil_name' is not a bluesky document name" in w for w in warnings)
    assert "7 messages dropped" in s.describe() and "1 lost connection" in s.describe()


def test_stats_describe_nothing_when_all_is_well():
    assert ConsumerStats().describe() == "" and ConsumerStats().n_dropped == 0


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_max_message_bytes_must_be_a_positive_integer(bad):
    with pytest.raises(TransportError, match="max_message_bytes"):
        Consumer("127.0.0.1:5578", print, max_message_bytes=bad)
