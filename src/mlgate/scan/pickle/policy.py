"""Classification of the globals a pickle imports: safe, dangerous (by kind) or unknown.

Lookup order, most specific first: exact denylist, exact allowlist, denylisted module prefix
(longest wins), allowlisted class pattern, then *unknown*. An allow pattern never overrides a
denied module: ``pandas.io.pytables.HDFStore`` stays denied although pandas classes are allowed.
Verdicts come from these tables only, never from what is importable on the scanning machine.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from functools import lru_cache

from mlgate.findings import Severity


class Category(Enum):
    """What calling (or importing) a global can do."""

    SAFE = "safe"
    CODE_EXECUTION = "code-execution"
    CODE_OBJECT = "serialized-code"
    SYSTEM = "system-access"
    GADGET = "gadget"
    DESERIALIZER = "deserializer"
    UNKNOWN = "unknown"


class Loader(Enum):
    """How a deserialising callable reads its argument, for nested/chained analysis."""

    PICKLE = "pickle"  # pickle/dill/cloudpickle/_pickle .loads / .load / Unpickler
    TORCH = "torch"  # torch.load and torch.storage._load_from_bytes
    NUMPY = "numpy"  # numpy.load (.npy / .npz / pickle)
    JOBLIB = "joblib"
    MARSHAL = "marshal"  # code objects: never analysable as data


@dataclass(frozen=True)
class Verdict:
    """The policy's decision about one global."""

    category: Category
    severity: Severity | None
    reason: str
    loader: Loader | None = None

    @property
    def is_safe(self) -> bool:
        return self.category is Category.SAFE


def _v(cat: Category, sev: Severity | None, reason: str, loader: Loader | None = None) -> Verdict:
    return Verdict(cat, sev, reason, loader)


_SAFE = _v(Category.SAFE, None, "allowlisted")
_CRIT = Severity.CRITICAL
_HIGH = Severity.HIGH


def _exec(reason: str) -> Verdict:
    return _v(Category.CODE_EXECUTION, _CRIT, reason)


def _sys(reason: str) -> Verdict:
    return _v(Category.SYSTEM, _HIGH, reason)


def _gadget(reason: str, sev: Severity = _HIGH) -> Verdict:
    return _v(Category.GADGET, sev, reason)


def _deser(loader: Loader, reason: str) -> Verdict:
    return _v(Category.DESERIALIZER, _HIGH, reason, loader)


def _code(reason: str) -> Verdict:
    return _v(Category.CODE_OBJECT, _CRIT, reason)


# C accelerator and Python 2 names that the loader resolves to the same objects.
MODULE_ALIASES: dict[str, str] = {
    "__builtin__": "builtins",
    "_operator": "operator",
    "_io": "io",
    "_pickle": "pickle",
    "cPickle": "pickle",
    "_functools": "functools",
    "posix": "os",
    "nt": "os",
    "_posixsubprocess": "subprocess",
    "_codecs": "codecs",
    "_collections": "collections",
    "_socket": "socket",
    "_ctypes": "ctypes",
    "_thread": "threading",
    "_signal": "signal",
    "_bz2": "bz2",
    "_lzma": "lzma",
    "numpy.core": "numpy._core",
    "sklearn.externals.joblib": "joblib",
}

_B = "builtins"

EXACT_DENY: dict[str, Verdict] = {
    f"{_B}.exec": _exec("runs Python source"),
    f"{_B}.eval": _exec("evaluates Python source"),
    f"{_B}.execfile": _exec("runs a Python file"),
    f"{_B}.compile": _exec("compiles Python source into code"),
    f"{_B}.__import__": _exec("imports any module (reaches os, subprocess...)"),
    f"{_B}.breakpoint": _exec("starts a debugger"),
    f"{_B}.input": _sys("reads from the terminal"),
    f"{_B}.open": _sys("opens a file"),
    f"{_B}.file": _sys("opens a file"),
    f"{_B}.getattr": _gadget("fetches any attribute (reaches methods such as os.system)"),
    f"{_B}.setattr": _gadget("overwrites attributes of live objects"),
    f"{_B}.delattr": _gadget("deletes attributes of live objects"),
    f"{_B}.globals": _gadget("exposes the loader's globals"),
    f"{_B}.locals": _gadget("exposes the loader's locals"),
    f"{_B}.vars": _gadget("exposes object namespaces"),
    f"{_B}.__build_class__": _gadget("builds classes from functions"),
    f"{_B}.type": _gadget("creates classes dynamically"),
    f"{_B}.map": _gadget("applies a callable lazily"),
    f"{_B}.filter": _gadget("applies a callable lazily"),
    f"{_B}.help": _sys("starts the pydoc pager"),
    f"{_B}.exit": _sys("terminates the loading process"),
    f"{_B}.quit": _sys("terminates the loading process"),
    f"{_B}.print": _v(Category.SYSTEM, Severity.MEDIUM, "writes to the loader's stdout"),
    "operator.attrgetter": _gadget("builds an attribute fetcher (getattr by proxy)"),
    "operator.methodcaller": _gadget("builds a method caller (calls any method by name)"),
    "operator.call": _gadget("calls its first argument"),
    "functools.reduce": _gadget("applies a callable repeatedly"),
    "itertools.starmap": _gadget("applies a callable lazily"),
    "types.FunctionType": _code("builds a Python function from a code object"),
    "types.LambdaType": _code("builds a Python function from a code object"),
    "types.CodeType": _code("builds a code object"),
    "types.MethodType": _gadget("binds a function to an object"),
    "marshal.loads": _v(Category.CODE_OBJECT, _CRIT, "unmarshals code objects", Loader.MARSHAL),
    "marshal.load": _v(Category.CODE_OBJECT, _CRIT, "unmarshals code objects", Loader.MARSHAL),
    "pickle.loads": _deser(Loader.PICKLE, "unpickles bytes (nested pickle)"),
    "pickle.load": _deser(Loader.PICKLE, "unpickles a file (chained pickle)"),
    "pickle._loads": _deser(Loader.PICKLE, "unpickles bytes (nested pickle)"),
    "pickle._load": _deser(Loader.PICKLE, "unpickles a file (chained pickle)"),
    "pickle.Unpickler": _deser(Loader.PICKLE, "unpickles a file (chained pickle)"),
    "pickle._Unpickler": _deser(Loader.PICKLE, "unpickles a file (chained pickle)"),
    "dill.loads": _deser(Loader.PICKLE, "unpickles bytes with dill"),
    "dill.load": _deser(Loader.PICKLE, "unpickles a file with dill"),
    "dill._dill.loads": _deser(Loader.PICKLE, "unpickles bytes with dill"),
    "dill._dill.load": _deser(Loader.PICKLE, "unpickles a file with dill"),
    "dill._dill._create_code": _code("builds a code object (dill)"),
    "dill._dill._create_function": _code("builds a Python function (dill)"),
    "dill._dill._create_lambda": _code("builds a Python function (dill)"),
    "dill._dill._import_module": _exec("imports any module (dill)"),
    "dill._dill._eval_repr": _exec("evaluates Python source (dill)"),
    "cloudpickle.loads": _deser(Loader.PICKLE, "unpickles bytes"),
    "cloudpickle.load": _deser(Loader.PICKLE, "unpickles a file"),
    "cloudpickle.cloudpickle._make_function": _code("builds a Python function (cloudpickle)"),
    "cloudpickle.cloudpickle._make_code": _code("builds a code object (cloudpickle)"),
    "cloudpickle.cloudpickle.subimport": _exec("imports any module (cloudpickle)"),
    "cloudpickle.cloudpickle.dynamic_subimport": _exec("creates a module from code (cloudpickle)"),
    "torch.load": _deser(Loader.TORCH, "loads a PyTorch checkpoint (nested pickle)"),
    "torch.serialization.load": _deser(Loader.TORCH, "loads a PyTorch checkpoint (nested pickle)"),
    "torch.storage._load_from_bytes": _deser(Loader.TORCH, "torch.load of embedded bytes"),
    "torch.jit.load": _sys("loads a TorchScript program from a file"),
    "torch.jit._serialization.load": _sys("loads a TorchScript program from a file"),
    "torch.save": _sys("writes a file"),
    "torch.from_file": _sys("maps a file into memory"),
    "torch.ops.load_library": _exec("loads a native shared library"),
    "torch.classes.load_library": _exec("loads a native shared library"),
    "torch._ops.ops.load_library": _exec("loads a native shared library"),
    "torch.fx.graph_module.reduce_graph_module": _exec("executes generated Python source (FX)"),
    "torch.fx.graph_module.reduce_package_graph_module": _exec("executes Python source (FX)"),
    "torch.fx.graph_module._forward_from_src": _exec("executes Python source (FX)"),
    "torch.fx.graph_module._exec_with_source": _exec("executes Python source (FX)"),
    "numpy.load": _deser(Loader.NUMPY, "loads a NumPy file (may unpickle)"),
    "numpy.loads": _deser(Loader.PICKLE, "unpickles bytes (old NumPy alias of pickle.loads)"),
    "numpy.testing._private.utils.runstring": _exec("runs Python source"),
    "numpy.testing.utils.runstring": _exec("runs Python source"),
    "numpy.lib.npyio.load": _deser(Loader.NUMPY, "loads a NumPy file (may unpickle)"),
    "numpy.fromfile": _sys("reads a file"),
    "numpy.memmap": _sys("maps a file"),
    "numpy.loadtxt": _sys("reads a file"),
    "numpy.genfromtxt": _sys("reads a file"),
    "numpy.save": _sys("writes a file"),
    "numpy.savez": _sys("writes a file"),
    "numpy.savetxt": _sys("writes a file"),
    "numpy.tofile": _sys("writes a file"),
    "joblib.load": _deser(Loader.JOBLIB, "loads a joblib file (nested pickle)"),
    "joblib.numpy_pickle.load": _deser(Loader.JOBLIB, "loads a joblib file (nested pickle)"),
    "joblib.dump": _sys("writes a file"),
    "pandas.read_pickle": _deser(Loader.PICKLE, "unpickles a file (chained pickle)"),
    "pandas.io.pickle.read_pickle": _deser(Loader.PICKLE, "unpickles a file (chained pickle)"),
    "pandas.eval": _exec("evaluates expressions"),
    "keras.utils.get_file": _sys("downloads a file from a URL"),
    "keras.src.utils.file_utils.get_file": _sys("downloads a file from a URL"),
    "tensorflow.keras.utils.get_file": _sys("downloads a file from a URL"),
    "keras.models.load_model": _sys("loads another model file"),
    "keras.saving.load_model": _sys("loads another model file"),
    "sklearn.datasets.fetch_openml": _sys("downloads data"),
    "collections.namedtuple": _gadget("creates classes from strings", Severity.MEDIUM),
    "codecs.open": _sys("opens a file"),
    "logging.config.listen": _exec("starts a server that evaluates received configuration"),
    "logging.config.fileConfig": _sys("reads configuration from a file"),
    "pydoc.locate": _exec("imports any object by dotted name"),
    "pydoc.pipepager": _exec("runs a shell command"),
    "pydoc.tempfilepager": _exec("runs a shell command"),
    "pydoc.getpager": _exec("runs a shell command"),
    "sys.modules": _gadget("exposes every loaded module (reaches os, subprocess...)"),
    "sys.exit": _sys("terminates the loading process"),
    "shelve.open": _deser(Loader.PICKLE, "opens a pickle-backed database"),
}

MODULE_DENY: dict[str, Verdict] = {
    "os": _exec("operating system interface (commands, processes, files)"),
    "subprocess": _exec("starts processes"),
    "pty": _exec("spawns processes on a terminal"),
    "runpy": _exec("runs Python modules and files"),
    "code": _exec("interactive interpreter (runs source)"),
    "codeop": _exec("compiles Python source"),
    "timeit": _exec("runs Python source"),
    "cProfile": _exec("runs Python source"),
    "profile": _exec("runs Python source"),
    "trace": _exec("runs Python source"),
    "pdb": _exec("debugger (runs source)"),
    "bdb": _exec("debugger (runs source)"),
    "ctypes": _exec("calls native code"),
    "commands": _exec("runs shell commands"),
    "popen2": _exec("runs shell commands"),
    "multiprocessing": _exec("starts processes"),
    "concurrent.futures": _exec("runs callables in workers"),
    "importlib": _exec("imports any module"),
    "imp": _exec("imports any module"),
    "zipimport": _exec("imports code from archives"),
    "pkgutil": _exec("imports any module"),
    "pip": _exec("installs and runs packages"),
    "ensurepip": _exec("installs and runs packages"),
    "setuptools": _exec("builds and runs packages"),
    "distutils": _exec("builds and runs packages"),
    "_winapi": _exec("Windows process API"),
    "msvcrt": _exec("Windows runtime API"),
    "numpy.f2py": _exec("compiles and imports native code"),
    "numpy.distutils": _exec("builds native code"),
    "numpy.ctypeslib": _exec("loads native libraries"),
    "torch.hub": _exec("downloads and runs repository code"),
    "torch.package": _exec("imports code from packages"),
    "torch.utils.cpp_extension": _exec("compiles and loads native code"),
    "torch._inductor": _exec("compiles and runs generated code"),
    "torch.utils.collect_env": _exec("runs shell commands"),
    "datasets": _exec("runs dataset loading scripts"),
    "huggingface_hub": _sys("downloads from a hub"),
    "asyncio": _exec("event loop with subprocess and network APIs"),
    "webbrowser": _sys("starts a browser process"),
    "antigravity": _sys("starts a browser process on import"),
    "socket": _sys("network access"),
    "socketserver": _sys("network server"),
    "http": _sys("network access"),
    "urllib": _sys("network access"),
    "urllib2": _sys("network access"),
    "urllib3": _sys("network access"),
    "requests": _sys("network access"),
    "httpx": _sys("network access"),
    "aiohttp": _sys("network access"),
    "ftplib": _sys("network access"),
    "smtplib": _sys("network access"),
    "telnetlib": _sys("network access"),
    "poplib": _sys("network access"),
    "imaplib": _sys("network access"),
    "nntplib": _sys("network access"),
    "ssl": _sys("network access"),
    "xmlrpc": _sys("network access (remote calls)"),
    "shutil": _sys("file operations"),
    "tempfile": _sys("file operations"),
    "glob": _sys("file system listing"),
    "fileinput": _sys("reads files"),
    "io": _sys("file I/O"),
    "pathlib": _sys("file operations"),
    "zipfile": _sys("file operations"),
    "tarfile": _sys("file operations (extraction)"),
    "sqlite3": _sys("database files"),
    "dbm": _sys("database files"),
    "shelve": _sys("pickle-backed database files"),
    "mmap": _sys("maps files"),
    "linecache": _sys("reads files"),
    "filecmp": _sys("reads files"),
    "logging": _sys("logging handlers write files and sockets"),
    "signal": _sys("process signals"),
    "threading": _sys("starts threads"),
    "gc": _sys("inspects live objects"),
    "resource": _sys("process limits"),
    "atexit": _sys("registers exit hooks"),
    "sys": _sys("interpreter internals"),
    "inspect": _sys("inspects live objects and frames"),
    "builtins": _v(Category.UNKNOWN, Severity.MEDIUM, "builtin not on the allowlist"),
    "pandas.io": _sys("file and network I/O"),
    "tensorflow.io": _sys("file I/O"),
    "tensorflow.python.ops.script_ops": _exec("Python callbacks in graphs"),
    "sklearn.datasets": _sys("downloads and reads data files"),
    "torch.distributed": _sys("network communication"),
}

EXACT_ALLOW: frozenset[str] = frozenset(
    [f"{_B}.{n}" for n in (
        "set frozenset dict list tuple bytearray bytes complex int float bool str slice range "
        "object memoryview reversed enumerate zip Ellipsis NotImplemented True False None"
    ).split()]
    + [f"collections.{n}" for n in ("OrderedDict", "defaultdict", "deque", "Counter")]
    + ["copyreg._reconstructor", "copyreg.__newobj__", "copyreg.__newobj_ex__",
       "functools.partial", "operator.itemgetter", "operator.getitem",
       "codecs.encode", "codecs.decode", "re._compile", "decimal.Decimal",
       "fractions.Fraction", "uuid.UUID", "types.SimpleNamespace",
       "pathlib.Path", "pathlib.PosixPath", "pathlib.PurePosixPath", "pathlib.WindowsPath",
       "pathlib.PureWindowsPath", "pathlib._local.PosixPath", "pathlib._local.WindowsPath",
       "base64.b64decode", "base64.b32decode", "base64.b16decode", "base64.b85decode",
       "base64.a85decode", "base64.urlsafe_b64decode", "base64.decodebytes",
       "binascii.unhexlify", "binascii.a2b_hex", "binascii.a2b_base64", "zlib.decompress",
       "bz2.decompress", "lzma.decompress", "gzip.decompress", "bytes.fromhex",
       "torch.Size", "torch.device", "torch.dtype", "torch.Tensor", "torch.strided",
       "torch.sparse_coo", "torch.sparse_csr", "torch._mkldnn",
       "torch.contiguous_format", "torch.channels_last", "torch.preserve_format",
       "torch.channels_last_3d", "torch._tensor._rebuild_from_type",
       "torch._tensor._rebuild_from_type_v2", "torch.serialization._get_layout",
       "torch.nn.parameter.Parameter", "torch.nn.parameter.Buffer",
       "torch.nn.parameter.UninitializedParameter", "torch.nn.parameter.UninitializedBuffer",
       "torch.storage.UntypedStorage", "torch.storage.TypedStorage", "torch.storage._TypedStorage",
       "torch.UntypedStorage", "torch.TypedStorage", "torch.per_tensor_affine",
       "torch.per_channel_affine", "torch.per_tensor_symmetric", "torch.per_channel_symmetric",
       "torch.per_channel_affine_float_qparams", "torch._C._nn.gelu", "torch._C._nn.silu",
       "joblib.numpy_pickle.NumpyArrayWrapper", "joblib.numpy_pickle_compat.NDArrayWrapper",
       "joblib.numpy_pickle.ZNDArrayWrapper", "joblib.numpy_pickle_compat.ZNDArrayWrapper",
       "numpy._core.multiarray._reconstruct", "numpy._core.multiarray.scalar",
       "numpy._core.numeric._frombuffer", "numpy.ndarray", "numpy.dtype", "numpy.matrix",
       "numpy.ma.core._mareconstruct", "numpy.ma.core.MaskedArray",
       "numpy.random._pickle.__randomstate_ctor", "numpy.random._pickle.__generator_ctor",
       "numpy.random._pickle.__bit_generator_ctor", "numpy.random._pickle._unpickle_bit_generator",
       "numpy.random.__RandomState_ctor",
       "pandas._libs.internals._unpickle_block", "pandas.core.indexes.base._new_Index",
       "pandas.core.internals.blocks.new_block", "pandas._libs.tslibs.timestamps._unpickle_timestamp",
       "pandas._libs.tslibs.timedeltas._timedelta_unpickle",
       "pandas._libs.tslibs.nattype.__nat_unpickle", "pandas.core.arrays.categorical._unpickle",
       "xgboost.core.Booster", "lightgbm.basic.Booster",
       ]
    + [f"torch.{t}" for t in (
        "float32 float float64 double float16 half bfloat16 complex32 complex64 complex128 "
        "cfloat cdouble uint8 uint16 uint32 uint64 int8 int16 int32 int64 short int long bool "
        "quint8 qint8 qint32 quint4x2 quint2x4 float8_e4m3fn float8_e5m2 float8_e4m3fnuz "
        "float8_e5m2fnuz float8_e8m0fnu float4_e2m1fn_x2 bits8 bits16 bits1x8 bits2x4 bits4x2"
    ).split()]
    + [f"numpy.{t}" for t in (
        "bool_ int8 int16 int32 int64 uint8 uint16 uint32 uint64 intc intp uintp float16 float32 "
        "float64 longdouble complex64 complex128 clongdouble str_ bytes_ object_ datetime64 "
        "timedelta64 void generic number integer floating longlong ulonglong half single "
        "double "
        "log log1p exp expm1 sqrt square abs absolute negative reciprocal sin cos tanh "
        "add subtract multiply divide true_divide maximum minimum"
    ).split()]
)

# (module prefix, require CamelCase name): classes these libraries pickle in ordinary models.
# Constructing them runs no I/O; their functions are not covered (they stay unknown).
CLASS_MODULE_PREFIXES: tuple[str, ...] = (
    "sklearn.", "scipy.sparse.", "xgboost.", "lightgbm.", "pandas.core.", "pandas._libs.",
    "pandas.", "torch.nn.modules.", "torch.optim.", "numpy.dtypes.", "numpy.random.",
    "datetime.", "enum.", "transformers.training_args", "transformers.trainer_utils",
    "transformers.configuration_utils", "transformers.generation.configuration_utils",
    "transformers.debug_utils", "accelerate.utils.dataclasses", "catboost.", "statsmodels.",
)
# Functions (any name) from modules that only compute on their arguments.
FUNCTION_MODULE_PREFIXES: tuple[str, ...] = (
    "torch._utils._rebuild_", "torch.nn.functional.", "sklearn.metrics.", "math.",
    "scipy.special.", "numpy._core.numeric._frombuffer", "pandas._libs.",
    "torch.nn.init.",
)
_STORAGE_SUFFIX = "Storage"


@dataclass(frozen=True)
class UserPolicy:
    """Additions from the user's configuration file (``[tool.mlgate]`` / ``mlgate.toml``)."""

    allow: frozenset[str] = frozenset()
    deny: Mapping[str, Severity] = field(default_factory=dict)


class Policy:
    """Classifies globals; one instance per scan, with the user's additions merged in."""

    def __init__(self, user: UserPolicy | None = None) -> None:
        self._user = user or UserPolicy()
        self._classify = lru_cache(maxsize=65536)(self._classify_uncached)

    def classify(self, module: str, name: str) -> Verdict:
        """Classify the global ``module.name`` (name may be dotted)."""
        return self._classify(module, name)

    def _classify_uncached(self, module: str, name: str) -> Verdict:
        module = normalise_module(module)
        return _apply_user(self._user, module, name, _builtin_verdict(module, name))


def _builtin_verdict(module: str, name: str) -> Verdict:
    full = f"{module}.{name}"
    if full in EXACT_DENY:
        return EXACT_DENY[full]
    suffix = _dangerous_suffix(name)
    if suffix is not None:
        return suffix
    if full in EXACT_ALLOW:
        return _SAFE
    denied = _longest_prefix(MODULE_DENY, module)
    if denied is not None:
        return denied
    if _allowed_by_pattern(module, name, full):
        return _SAFE
    return _v(Category.UNKNOWN, Severity.MEDIUM, "not on the allowlist")


def _apply_user(user: UserPolicy, module: str, name: str, builtin: Verdict) -> Verdict:
    """User entries extend the built-in policy; they never weaken it.

    A deny entry can only raise a severity, and an allow entry only applies to a name the
    built-in tables call unknown (so ``allow = ["mycompany.*"]`` cannot lift
    ``mycompany.models.os.system`` or anything else that is denied on its own).
    """
    keys = _candidates(f"{module}.{name}", module)
    denied = [user.deny[k] for k in keys if k in user.deny]
    if denied:
        severity = max([*denied, builtin.severity or Severity.INFO])
        category = Category.SYSTEM if builtin.category in (Category.SAFE, Category.UNKNOWN) \
            else builtin.category
        return _v(category, severity, f"denied by configuration ({builtin.reason})")
    if builtin.category is Category.UNKNOWN and any(k in user.allow for k in keys):
        return _v(Category.SAFE, None, "allowed by configuration")
    return builtin


def normalise_module(module: str) -> str:
    """Map accelerator/legacy module names to the module a reviewer knows."""
    for alias, target in MODULE_ALIASES.items():
        if module == alias or module.startswith(alias + "."):
            return target + module[len(alias):]
    return module


def _candidates(full: str, module: str) -> list[str]:
    parts = module.split(".")
    return [full, *(".".join(parts[:i]) + ".*" for i in range(len(parts), 0, -1))]


def _longest_prefix(table: Mapping[str, Verdict], module: str) -> Verdict | None:
    parts = module.split(".")
    for i in range(len(parts), 0, -1):
        hit = table.get(".".join(parts[:i]))
        if hit is not None:
            return hit
    return None


_DANGEROUS_METHOD_SUFFIXES: dict[str, Verdict] = {
    "from_pretrained": _sys("loads models or code from a path or hub (trust_remote_code)"),
    "load_from_checkpoint": _deser(Loader.TORCH, "loads another checkpoint"),
    "load_model": _sys("loads another model file"),
    "system": _exec("runs a shell command"),
    "popen": _exec("runs a shell command"),
    "__globals__": _gadget("reaches a function's module globals", _CRIT),
    "__builtins__": _gadget("reaches the builtins module", _CRIT),
    "__subclasses__": _gadget("reaches every loaded class", _CRIT),
}


def _dangerous_suffix(name: str) -> Verdict | None:
    return _DANGEROUS_METHOD_SUFFIXES.get(name.rsplit(".", 1)[-1])


def _allowed_by_pattern(module: str, name: str, full: str) -> bool:
    head = name.split(".", 1)[0]
    if "." in name:
        return False  # attribute chains of allowed classes can reach anything
    if module.startswith("torch") and head.endswith(_STORAGE_SUFFIX) and head[:1].isupper():
        return module in ("torch", "torch.storage", "torch.cuda")
    if any(full.startswith(p) for p in FUNCTION_MODULE_PREFIXES):
        return not head.startswith("__") or head.startswith("__pyx_unpickle")
    if head[:1].isupper() or head.startswith("__pyx_unpickle") or head.startswith("_unpickle"):
        return any(_prefix_matches(module, p) for p in CLASS_MODULE_PREFIXES)
    return False


def _prefix_matches(module: str, prefix: str) -> bool:
    if prefix.endswith("."):
        return module == prefix[:-1] or module.startswith(prefix)
    return module == prefix or module.startswith(prefix + ".")


def policy_tables() -> Sequence[tuple[str, Verdict]]:
    """All built-in denylist entries, for documentation and tests."""
    return [*EXACT_DENY.items(), *MODULE_DENY.items()]
