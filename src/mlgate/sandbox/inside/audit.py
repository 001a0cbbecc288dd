"""Python audit hooks (PEP 578) that turn what the interpreter does into events.

Installed before any framework is imported. The hook reports process creation, dynamic code
(``exec``/``compile`` not issued by the import system), network calls, file writes and, while
the model is being loaded, new imports, native-library use (ctypes), unpickled globals
(``pickle.find_class``) and file reads. Audit hooks cannot be removed from Python code; native
code can bypass them, which is why the syscall trace is recorded outside as well.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from types import FrameType
from typing import Any

from . import channel as _channel_module
from .channel import Channel, inert

_PROCESS = frozenset(
    {
        "os.system",
        "os.exec",
        "os.posix_spawn",
        "os.spawn",
        "os.fork",
        "os.forkpty",
        "os.startfile",
        "subprocess.Popen",
        "pty.spawn",
    }
)
_NETWORK = frozenset(
    {
        "socket.connect",
        "socket.sendto",
        "socket.sendmsg",
        "socket.bind",
        "socket.getaddrinfo",
        "socket.gethostbyname",
        "socket.gethostbyaddr",
        "urllib.Request",
        "http.client.connect",
        "ftplib.connect",
        "smtplib.connect",
        "imaplib.open",
        "poplib.connect",
        "telnetlib.Telnet.open",
        "webbrowser.open",
    }
)
_FILE_CHANGES = frozenset(
    {
        "os.remove",
        "os.rename",
        "os.rmdir",
        "os.mkdir",
        "os.chmod",
        "os.chown",
        "os.symlink",
        "os.link",
        "os.truncate",
        "os.utime",
        "shutil.rmtree",
        "shutil.copyfile",
        "shutil.move",
    }
)
_LOAD_ONLY = frozenset(
    {
        "ctypes.dlopen",
        "ctypes.dlsym",
        "ctypes.call_function",
        "ctypes.addressof",
        "ctypes.string_at",
        "ctypes.wstring_at",
        "pickle.find_class",
        "marshal.loads",
        "sys.settrace",
        "sys.setprofile",
        "sys.addaudithook",
        "sys._getframe",
        "os.kill",
        "os.killpg",
        "signal.pthread_kill",
        "os.putenv",
        "os.unsetenv",
        "builtins.input",
    }
)
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_CALLER_DEPTH = 1
# Categories that an installed module's own import-time code produces in bulk (lazy imports of
# torch.distributed, scipy's exec-generated wrappers, ctypes capsule helpers). Process,
# network and file events are never in this set: whoever causes them is judged.
_IMPORT_TIME = frozenset({"code", "import", "load-only"})
_OWN_FILES = frozenset({__file__, _channel_module.__file__})


class Recorder:
    """The audit hook: one instance per process, phase set by the runner."""

    def __init__(
        self,
        channel: Channel,
        quiet_prefixes: tuple[str, ...],
        framework_roots: tuple[str, ...] = (),
    ) -> None:
        self.channel = channel
        # The interpreter environment (site-packages, stdlib): installed, trusted code.
        self.framework_roots = framework_roots
        self.phase = "import"
        # Reads under these folders (the interpreter environment, the model) are not events.
        self.quiet_prefixes = quiet_prefixes
        self._busy = False

    @contextlib.contextmanager
    def muted(self) -> Iterator[None]:
        """Record nothing while the runner itself works (formatting a traceback)."""
        self._busy = True
        try:
            yield
        finally:
            self._busy = False

    def __call__(self, event: str, args: tuple[Any, ...]) -> None:
        if self._busy:
            return
        self._busy = True
        try:
            self._record(event, args)
        except Exception:  # noqa: S110 - the hook must never break the loader
            pass
        finally:
            self._busy = False

    def _record(self, event: str, args: tuple[Any, ...]) -> None:
        if event in _PROCESS:
            self._emit("process", event, args)
        elif event in _NETWORK:
            self._emit("network", event, args)
        elif event in _FILE_CHANGES:
            self._emit("file-change", event, args)
        elif event == "open":
            self._open(args)
        elif self.phase == "import":
            # The framework compiling and executing its own code while it starts (thousands
            # of dataclass and namedtuple bodies for torch) is never judged: not recorded.
            return
        elif event in ("exec", "compile"):
            self._code(event, args)
        elif event == "import":
            self._emit("import", event, (args[0],))
        elif event in _LOAD_ONLY:
            self._emit("load-only", event, args)

    def _open(self, args: tuple[Any, ...]) -> None:
        path, mode, flags = ((*args, None, None, None))[:3]
        writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
            isinstance(flags, int) and flags & _WRITE_FLAGS
        )
        if writing:
            self._emit("file-write", "open", (path, mode, flags))
        elif self.phase != "import" and not self._quiet(path):
            self._emit("file-read", "open", (path,))

    def _quiet(self, path: object) -> bool:
        if not isinstance(path, str):
            return isinstance(path, int)  # an fd already open
        full = os.path.abspath(path)
        return full.startswith(self.quiet_prefixes)

    def _code(self, event: str, args: tuple[Any, ...]) -> None:
        caller = _caller()
        if caller.startswith("<frozen importlib"):
            return  # the import system executing a module it found: an import, not code
        if event == "exec":
            code = args[0]
            detail = (getattr(code, "co_filename", "?"), getattr(code, "co_name", "?"))
        else:
            source, filename = ((*args, None, None))[:2]
            detail = (filename, source)
        self._emit("code", event, detail, caller)

    def _emit(self, category: str, event: str, args: tuple[Any, ...], caller: str = "") -> None:
        phase = self.phase
        if category in _IMPORT_TIME and _importing_installed(self.framework_roots):
            # A framework imports its modules lazily while loading (transformers, sklearn via
            # scipy); what those modules' top-level code does is start-up, as in phase
            # "import". The model's own code (pickle globals, remote code under /tmp) is not
            # an installed module, and the pickle.find_class that triggered the import fires
            # before it, outside it, and is judged.
            phase = "import"
        self.channel.emit(
            "audit",
            category=category,
            event=event,
            phase=phase,
            args=[inert(a) for a in args],
            caller=caller or _caller(),
            pid=os.getpid(),
        )


def _importing_installed(roots: tuple[str, ...]) -> bool:
    """True when a module of the environment is executing its top level (being imported)."""
    frame: FrameType | None = sys._getframe(_CALLER_DEPTH)
    while frame is not None and roots:
        code = frame.f_code
        if code.co_name == "<module>" and code.co_filename.startswith(roots):
            return True
        frame = frame.f_back
    return False


def _caller() -> str:
    """File:line of the Python frame that triggered the event (past this module)."""
    frame: FrameType | None = sys._getframe(_CALLER_DEPTH)
    while frame is not None and frame.f_code.co_filename in _OWN_FILES:
        frame = frame.f_back
    if frame is None:
        return "<native>"
    return f"{frame.f_code.co_filename}:{frame.f_lineno}"
