"""The seccomp filter: system calls a model loader never needs, trapped (SIGSYS).

Compiled with libseccomp (``pyseccomp``: ctypes bindings, API of libseccomp's own) into BPF
that bubblewrap installs before it runs the interpreter. Calls from a foreign architecture
(32-bit ``int 0x80`` on x86_64, the classic filter bypass) kill the process: libseccomp's
default bad-architecture action.

Why TRAP and not ERRNO: the tracer runs with ``strace --seccomp-bpf`` (it stops only on the
calls it records, which keeps ``import torch`` under the tracer close to its bare speed), and
seccomp's ERRNO outranks the tracer's TRACE, so a denied call would never reach the trace. A
trapped call is not executed and raises SIGSYS naming the call (``si_syscall``), which strace
records outside; by default the signal ends the process, so the attempt also ends the load
(reported incomplete). A payload that catches SIGSYS gets -ENOSYS and is still recorded.
"""

from __future__ import annotations

import errno
import tempfile
from typing import IO, Any

from mlgate.sandbox.errors import SandboxUnavailableError

# name -> why a loader never needs it (and what an attacker wants it for)
DENIED: dict[str, str] = {
    "ptrace": "debug or inject into other processes",
    "process_vm_readv": "read another process's memory",
    "process_vm_writev": "write another process's memory",
    "pidfd_getfd": "steal another process's file descriptors",
    "kcmp": "probe other processes' kernel objects",
    "mount": "change the filesystem view (escape the binds)",
    "umount2": "remove the sandbox's mounts",
    "pivot_root": "swap the root filesystem",
    "chroot": "change root (classic escape step)",
    "move_mount": "new mount API",
    "open_tree": "new mount API",
    "fsopen": "new mount API",
    "fsmount": "new mount API",
    "fsconfig": "new mount API",
    "fspick": "new mount API",
    "mount_setattr": "new mount API",
    "unshare": "new namespaces (nested escapes, hiding from observation)",
    "setns": "join other namespaces",
    "init_module": "load a kernel module",
    "finit_module": "load a kernel module",
    "delete_module": "unload a kernel module",
    "kexec_load": "replace the kernel",
    "kexec_file_load": "replace the kernel",
    "bpf": "load eBPF programs (kernel attack surface, tracing others)",
    "perf_event_open": "observe other processes, kernel attack surface",
    "userfaultfd": "race-window primitive used by kernel exploits",
    "keyctl": "kernel keyrings (other users' secrets)",
    "add_key": "kernel keyrings",
    "request_key": "kernel keyrings",
    "personality": "disable ASLR or change syscall semantics",
    "io_uring_setup": "io_uring performs I/O without system calls the trace would see",
    "io_uring_enter": "io_uring",
    "io_uring_register": "io_uring",
    "open_by_handle_at": "open host files by handle (the 'shocker' container escape)",
    "name_to_handle_at": "file handles for open_by_handle_at",
    "reboot": "reboot the machine",
    "swapon": "host swap",
    "swapoff": "host swap",
    "acct": "process accounting on host files",
    "quotactl": "filesystem quotas",
    "syslog": "kernel log (addresses that defeat KASLR)",
    "iopl": "raw I/O port access",
    "ioperm": "raw I/O port access",
    "settimeofday": "change the clock",
    "clock_settime": "change the clock",
    "clock_adjtime": "change the clock",
    "adjtimex": "change the clock",
    "vhangup": "terminal hang-up",
    "uselib": "obsolete loader call, exploit surface",
    "lookup_dcookie": "kernel profiling internals",
}


_CLONE_NEWUSER = 0x10000000


def compile_filter() -> IO[bytes]:
    """The BPF program, in a file opened for reading at offset 0 (bwrap's ``--seccomp FD``)."""
    try:
        import pyseccomp as seccomp  # noqa: PLC0415 - optional extra (sandbox)
    except (ImportError, OSError) as error:  # OSError: libseccomp.so.2 missing
        raise SandboxUnavailableError(
            f"seccomp filtering is unavailable: {error}",
            remedy="pip install 'mlgate[sandbox]' (pyseccomp) and the libseccomp2 package",
        ) from error
    denied = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
    for name in DENIED:
        try:
            denied.add_rule(seccomp.TRAP, name)
        except (ValueError, RuntimeError, OSError):
            continue  # not a system call on this architecture
    _deny_user_namespaces(seccomp, denied)
    program = tempfile.TemporaryFile()  # noqa: SIM115 - handed to bwrap, closed by the caller
    denied.export_bpf(program)
    program.flush()
    program.seek(0)
    return program


def _deny_user_namespaces(seccomp: Any, denied: Any) -> None:
    """No new user namespace: a nested one gives a payload every capability again, over
    namespaces of its own (kernel attack surface). bubblewrap's --disable-userns cannot be
    used with the fake network (it moves the loader into a nested user namespace that no
    longer owns the network namespace, so routes cannot be added), so the filter says it:
    clone with CLONE_NEWUSER fails with EPERM (unshare and setns are denied above), and
    clone3, whose flags sit in memory a filter cannot read, fails with ENOSYS, which makes
    libc fall back to clone (the approach of Flatpak and Docker)."""
    newuser = seccomp.Arg(0, seccomp.MASKED_EQ, _CLONE_NEWUSER, _CLONE_NEWUSER)
    denied.add_rule(seccomp.ERRNO(errno.EPERM), "clone", newuser)
    denied.add_rule(seccomp.ERRNO(errno.ENOSYS), "clone3")
