"""The fake network inside the sandbox: every destination answers, and everything is recorded.

The sandbox's network namespace has only loopback. Left like that, a payload's connection
simply fails and all we learn is the address it tried (from the syscall trace). Here every
destination instead reaches a listener of ours, so the payload proceeds and shows what it
would have sent: the names it resolves, the bytes it writes (a stolen key, a beacon, a Redis
command aimed at the host's 127.0.0.1 — which, in this namespace, is not the host's).

- AnyIP routes (``local 0.0.0.0/0`` and ``local ::/0`` on ``lo`` in the local table) make any
  address local, so a connect to 203.0.113.7:8080 lands on a socket bound to 0.0.0.0:8080.
  They are added with raw netlink, not ``ip route``: an execve here would be indistinguishable
  from process creation in the trace. This needs CAP_NET_ADMIN, held only until the runner
  drops every capability (caps.py), before the model is opened.
- A DNS responder on 127.0.0.1:53 and [::1]:53 (resolv.conf points there) answers each A
  query with a distinct address from 198.18.0.0/15 (the benchmarking range: never a real
  host), so a later connection to that address is reported under the name that was resolved.
- A TCP sink on common ports reads up to 4 KiB per connection, answers HTTP requests with an
  empty 200 so that HTTP clients finish, and reports the destination and the first bytes.

All of it is served by ONE forked process (the runner's first child, whose system calls the
trace reader skips: its binds and replies are not the model's doing) with a selector loop; no
threads, so the runner stays single-threaded until the framework starts its own. The child
drops its capabilities too: it parses attacker bytes. It stops when the runner asks (the
runner does before its final status, so every connection is reported before ``loaded``) or
when the runner's end of the lifeline pipe closes. Events from this process are judged
whatever the phase: a framework that phones home while merely being imported is worth
reporting as well, and the sink cannot tell who connected.

Everything received is attacker-controlled: names and bytes are escaped (``repr``) and cut.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import selectors
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import caps
from .channel import Channel

SINK_PORTS = (21, 22, 23, 25, 80, 443, 1337, 3306, 4444, 5000, 5432, 6379, 6667, 8000,
              8080, 8443, 8888, 9000, 9001, 9200, 27017, 31337)  # fmt: skip
DNS_PORT = 53
FAKE_NET = ipaddress.IPv4Network("198.18.0.0/15")
_MAX_NAMES = 4096  # distinct names given their own address; more get no answer
_MAX_EVENTS = 1000  # events this process reports; past it the run is marked lossy
_READ_LIMIT = 4096  # bytes kept per connection
_SHOWN = 240  # bytes shown in an event (escaped)
_READ_TIMEOUT = 1.0  # s a connection may stay silent before it is reported
_STOP_TIMEOUT = 3.0  # s the runner waits for the sink to report its last connections
_BACKLOG = 64
_HTTP_METHODS = (b"GET ", b"POST ", b"PUT ", b"HEAD ", b"DELETE ", b"OPTIONS ", b"PATCH ")
_HTTP_OK = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d{1,9})", re.IGNORECASE)
_QTYPES = {1: "A", 28: "AAAA", 5: "CNAME", 15: "MX", 16: "TXT", 12: "PTR", 33: "SRV", 255: "ANY"}

# netlink (linux/netlink.h, linux/rtnetlink.h)
_RTM_NEWROUTE = 24
_NLMSG_ERROR = 2
_NLM_F_REQUEST_ACK_CREATE_EXCL = 0x1 | 0x4 | 0x400 | 0x200
_RT_TABLE_LOCAL = 255
_RTPROT_BOOT = 3
_RT_SCOPE_HOST = 254
_RTN_LOCAL = 2
_RTA_OIF = 4


@dataclass
class Network:
    """The runner's handle on the sink process."""

    pid: int
    lifeline: int  # write end of a pipe the sink watches

    def stop(self) -> None:
        """Ask the sink to report what it still holds and exit; wait for it, bounded.
        A byte rather than only closing the pipe: a payload's forked processes may hold
        copies of the write end, so EOF alone might never come."""
        with contextlib.suppress(OSError):
            os.write(self.lifeline, b"x")
            os.close(self.lifeline)
        deadline = time.monotonic() + _STOP_TIMEOUT
        while time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                if os.waitpid(self.pid, os.WNOHANG)[0] != 0:
                    return
            time.sleep(0.01)


def start(settings: dict[str, Any], channel: Channel) -> Network:
    """Route every address to loopback, open the listeners and fork the sink. Raises on any
    failure: the runner then reports set-up failed (a run without its network is not clean)."""
    _add_anyip_routes()
    listeners = _listeners(tuple(settings.get("ports", SINK_PORTS)))
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(write_end)
        _serve_forever(channel, listeners, read_end)  # never returns
    os.close(read_end)
    for sock, _ in listeners:
        sock.close()  # the loader must not accept() connections meant for the sink
    return Network(pid, write_end)


# --- routes ----------------------------------------------------------------------------------


def _add_anyip_routes() -> None:
    loopback = socket.if_nametoindex("lo")
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE) as sock:
        sock.bind((0, 0))
        for seq, family in enumerate((socket.AF_INET, socket.AF_INET6), start=1):
            _add_local_route(sock, family, loopback, seq)


def _add_local_route(sock: socket.socket, family: int, oif: int, seq: int) -> None:
    """``ip route add local <any>/0 dev lo table local``, checked against the kernel's ACK."""
    route = struct.pack(
        "=BBBBBBBBI", family, 0, 0, 0, _RT_TABLE_LOCAL, _RTPROT_BOOT, _RT_SCOPE_HOST, _RTN_LOCAL, 0
    )
    body = route + struct.pack("=HHI", 8, _RTA_OIF, oif)
    header = struct.pack("=IHHII", 16 + len(body), _RTM_NEWROUTE,
                         _NLM_F_REQUEST_ACK_CREATE_EXCL, seq, 0)  # fmt: skip
    sock.send(header + body)
    reply = sock.recv(4096)
    if len(reply) < 20:
        raise OSError("short netlink reply")
    _, kind, _, reply_seq, _ = struct.unpack_from("=IHHII", reply)
    (error,) = struct.unpack_from("=i", reply, 16)
    if kind != _NLMSG_ERROR or reply_seq != seq or error != 0:
        raise OSError(-error, f"adding the catch-all route (family {family}) failed")


def _listeners(ports: tuple[int, ...]) -> list[tuple[socket.socket, str]]:
    found = [
        (_bound(socket.AF_INET, socket.SOCK_DGRAM, "127.0.0.1", DNS_PORT), "dns-udp"),
        (_bound(socket.AF_INET6, socket.SOCK_DGRAM, "::1", DNS_PORT), "dns-udp"),
        (_bound(socket.AF_INET, socket.SOCK_STREAM, "127.0.0.1", DNS_PORT), "dns-tcp"),
        (_bound(socket.AF_INET6, socket.SOCK_STREAM, "::1", DNS_PORT), "dns-tcp"),
    ]
    for port in ports:
        found.append((_bound(socket.AF_INET, socket.SOCK_STREAM, "0.0.0.0", port), "sink"))  # noqa: S104
        found.append((_bound(socket.AF_INET6, socket.SOCK_STREAM, "::", port), "sink"))
    return found


def _bound(family: int, kind: int, host: str, port: int) -> socket.socket:
    sock = socket.socket(family, kind)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)  # IPv4 has its own
    sock.bind((host, port))
    if kind == socket.SOCK_STREAM:
        sock.listen(_BACKLOG)
    sock.setblocking(False)
    return sock


# --- the sink process ------------------------------------------------------------------------


def _serve_forever(
    channel: Channel, listeners: list[tuple[socket.socket, str]], lifeline: int
) -> None:
    status = 0
    try:
        caps.drop_all_capabilities()
        _Sink(channel, listeners, lifeline).serve()
    except BaseException as error:  # whatever happened, the record now has a gap
        channel.emit("lost", what="fake network stopped", error=repr(error))
        status = 1
    finally:
        os._exit(status)


@dataclass
class _Connection:
    sock: socket.socket
    role: str  # sink | dns-tcp
    destination: str
    port: int
    deadline: float
    data: bytearray = field(default_factory=bytearray)


class _Sink:
    def __init__(
        self, channel: Channel, listeners: list[tuple[socket.socket, str]], lifeline: int
    ) -> None:
        self.channel = channel
        self.selector = selectors.DefaultSelector()
        self.names: dict[str, str] = {}  # fake address -> name resolved to it
        self.addresses: dict[str, str] = {}  # name -> fake address
        self.open: dict[socket.socket, _Connection] = {}
        self.emitted = 0
        self.stopping = False
        for sock, role in listeners:
            handler = self._on_datagram if role == "dns-udp" else self._on_accept
            self.selector.register(sock, selectors.EVENT_READ, (handler, role))
        self.selector.register(lifeline, selectors.EVENT_READ, (self._on_lifeline, ""))

    def serve(self) -> None:
        while not self.stopping:
            for key, _ in self.selector.select(timeout=0.1):
                handler, role = key.data
                handler(key.fileobj, role)
            now = time.monotonic()
            for connection in [c for c in self.open.values() if c.deadline < now]:
                self._finish(connection)
        for connection in list(self.open.values()):
            self._finish(connection)

    def _on_lifeline(self, fd: Any, _role: str) -> None:
        self.stopping = True

    def _on_datagram(self, sock: socket.socket, _role: str) -> None:
        query, peer = sock.recvfrom(_READ_LIMIT)
        sock.sendto(self._answer(query), peer)

    def _on_accept(self, sock: socket.socket, role: str) -> None:
        with contextlib.suppress(BlockingIOError):
            conn, _ = sock.accept()
            conn.setblocking(False)
            host, port = conn.getsockname()[:2]  # the address the payload connected to
            deadline = time.monotonic() + _READ_TIMEOUT
            connection = _Connection(conn, role, self._destination(host), port, deadline)
            self.open[conn] = connection
            self.selector.register(conn, selectors.EVENT_READ, (self._on_data, role))

    def _on_data(self, sock: socket.socket, _role: str) -> None:
        connection = self.open[sock]
        try:
            chunk = sock.recv(_READ_LIMIT - len(connection.data))
        except OSError:
            chunk = b""
        connection.data += chunk
        if not chunk or len(connection.data) >= _READ_LIMIT or _complete(connection):
            self._finish(connection)

    def _finish(self, connection: _Connection) -> None:
        data = bytes(connection.data)
        if connection.role == "dns-tcp":
            self._reply(connection.sock, _tcp_dns_reply(data, self._answer))
        else:
            if data.startswith(_HTTP_METHODS):
                self._reply(connection.sock, _HTTP_OK)
            self._emit("connection", "connect", connection.destination, str(connection.port),
                       repr(data[:_SHOWN]), f"{len(data)} bytes")  # fmt: skip
        self.selector.unregister(connection.sock)
        del self.open[connection.sock]
        connection.sock.close()

    @staticmethod
    def _reply(sock: socket.socket, data: bytes) -> None:
        with contextlib.suppress(OSError):
            sock.setblocking(True)
            sock.settimeout(0.2)
            sock.sendall(data)

    def _destination(self, host: str) -> str:
        name = self.names.get(host)
        return f"{name} ({host})" if name else host

    def _answer(self, query: bytes) -> bytes:
        """The DNS response to ``query``, and its event; b"" for what is not a query."""
        parsed = parse_query(query)
        if parsed is None:
            self._emit("dns", "dns-query", "<unparsable>", repr(query[:_SHOWN]))
            return b""
        address = self._address(parsed.name) if parsed.qtype == 1 else None
        qtype = _QTYPES.get(parsed.qtype, str(parsed.qtype))
        self._emit("dns", "dns-query", parsed.name, qtype, address or "no answer")
        return dns_response(parsed, address)

    def _address(self, name: str) -> str | None:
        key = name.lower()
        if key not in self.addresses and len(self.addresses) < _MAX_NAMES:
            address = str(FAKE_NET.network_address + len(self.addresses) + 1)
            self.addresses[key] = address
            self.names[address] = name
        return self.addresses.get(key)

    def _emit(self, category: str, event: str, *args: str) -> None:
        self.emitted += 1
        if self.emitted <= _MAX_EVENTS:
            self.channel.emit("network", category=category, event=event, args=list(args))
        elif self.emitted == _MAX_EVENTS + 1:  # parse_channel treats an unknown kind as loss
            self.channel.emit("lost", what=f"fake network events past {_MAX_EVENTS}")


def _complete(connection: _Connection) -> bool:
    """A whole DNS-over-TCP message, or a whole HTTP request (headers and declared body)."""
    data = connection.data
    if connection.role == "dns-tcp":
        return len(data) >= 2 and len(data) >= 2 + int.from_bytes(data[:2], "big")
    if not data.startswith(_HTTP_METHODS):
        return False
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return False
    length = _CONTENT_LENGTH.search(data, 0, end + 2)
    return len(data) >= end + 4 + (int(length[1]) if length else 0)


def _tcp_dns_reply(data: bytes, answer: Callable[[bytes], bytes]) -> bytes:
    size = int.from_bytes(data[:2], "big") if len(data) >= 2 else 0
    reply = answer(data[2 : 2 + size])
    return len(reply).to_bytes(2, "big") + reply if reply else b""


# --- DNS wire format (RFC 1035), by hand and bounded -----------------------------------------


@dataclass(frozen=True)
class Query:
    ident: int
    recursion: bool
    name: str
    qtype: int
    question: bytes  # the question section, echoed in the response


def parse_query(packet: bytes) -> Query | None:
    """The first question of a standard query; None for anything else. Labels only (a query
    has no compression pointers), at most 255 bytes of name."""
    if len(packet) < 17:
        return None
    ident, flags, questions = struct.unpack_from("!HHH", packet)
    if flags & 0x8000 or (flags >> 11) & 0xF or questions < 1:  # a response, or not QUERY
        return None
    labels: list[str] = []
    offset = 12
    while True:
        size = packet[offset] if offset < len(packet) else 0xFF
        if size == 0:
            break
        if size > 63 or offset + 1 + size > len(packet) or offset - 12 > 255:
            return None
        labels.append(packet[offset + 1 : offset + 1 + size].decode("ascii", "backslashreplace"))
        offset += 1 + size
    end = offset + 5
    if end > len(packet):
        return None
    qtype = struct.unpack_from("!H", packet, offset + 1)[0]
    return Query(ident, bool(flags & 0x0100), ".".join(labels), qtype, packet[12:end])


def dns_response(query: Query, address: str | None) -> bytes:
    """NOERROR with one A record for ``address``, or with no answer."""
    flags = 0x8080 | (0x0100 if query.recursion else 0)  # QR, RA (and RD echoed)
    header = struct.pack("!HHHHHH", query.ident, flags, 1, 1 if address else 0, 0, 0)
    if address is None:
        return header + query.question
    record = struct.pack("!HHHIH", 0xC00C, 1, 1, 60, 4) + socket.inet_aton(address)
    return header + query.question + record
