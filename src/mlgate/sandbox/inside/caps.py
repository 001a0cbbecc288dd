"""Dropping every capability before the model is touched.

bubblewrap starts the sandbox as root of a new user namespace holding CAP_NET_ADMIN and
CAP_NET_BIND_SERVICE there, which the fake network needs (a catch-all route on loopback, a
DNS responder on port 53). The loader must hold none: with CAP_SYS_ADMIN or CAP_NET_ADMIN in
its namespace a payload could remount, reroute or reconfigure what observes it. ctypes is used
because the stdlib has no capset(2); this runs before the audit hook is installed.
"""

from __future__ import annotations

import ctypes

_PR_CAPBSET_DROP = 24
_PR_SET_NO_NEW_PRIVS = 38
_PR_CAP_AMBIENT = 47
_PR_CAP_AMBIENT_CLEAR_ALL = 4
_LINUX_CAPABILITY_VERSION_3 = 0x20080522
_LAST_CAP = 63


class _Header(ctypes.Structure):
    _fields_ = (("version", ctypes.c_uint32), ("pid", ctypes.c_int))


class _Data(ctypes.Structure):
    _fields_ = (
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    )


def drop_all_capabilities() -> None:
    """Clear ambient, bounding, effective, permitted and inheritable sets, set no_new_privs,
    and verify from /proc that nothing is left (fail closed: raise otherwise)."""
    libc = ctypes.CDLL(None, use_errno=True)  # find_library("c") would run ldconfig
    libc.prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    for cap in range(_LAST_CAP + 1):
        libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0)  # EINVAL past the kernel's last cap
    header = _Header(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_Data * 2)()
    if libc.capset(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "capset failed")
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "PR_SET_NO_NEW_PRIVS failed")
    left = remaining_capabilities()
    if left:
        raise OSError(f"capabilities still held: {left}")


def remaining_capabilities() -> dict[str, int]:
    """The non-empty capability sets of this thread, from /proc/self/status."""
    held: dict[str, int] = {}
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb") and int(value, 16):
                held[key] = int(value, 16)
    return held
