"""Catalogue of every rule the scanner can report.

Rule ids are stable: they appear in JSON and SARIF output and users filter on them.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlgate.findings import Severity


@dataclass(frozen=True)
class Rule:
    """A kind of finding: stable id, short name, default severity and explanation."""

    id: str
    name: str
    severity: Severity
    description: str


def _rule(rule_id: str, name: str, severity: Severity, description: str) -> Rule:
    return Rule(rule_id, name, severity, description)


# --- pickle behaviour -------------------------------------------------------------
CODE_EXECUTION = _rule(
    "MLG101",
    "code-execution",
    Severity.CRITICAL,
    "The stream calls or imports a callable that runs arbitrary code or commands.",
)
SYSTEM_ACCESS = _rule(
    "MLG102",
    "system-access",
    Severity.HIGH,
    "The stream reaches a file, network or process primitive.",
)
UNKNOWN_GLOBAL = _rule(
    "MLG103",
    "unknown-global",
    Severity.MEDIUM,
    "The stream imports a global that is on neither the allowlist nor the denylist; "
    "importing and calling it cannot be proven safe.",
)
DYNAMIC_CALL = _rule(
    "MLG104",
    "dynamic-call",
    Severity.HIGH,
    "The stream calls a callable it computed at load time (getattr, attrgetter, "
    "methodcaller, import helpers) that could not be resolved to a safe one.",
)
NESTED_PAYLOAD = _rule(
    "MLG105",
    "nested-deserialization",
    Severity.LOW,
    "The stream hands bytes or a file to a deserialiser; the payload was analysed.",
)
ENCODED_CODE = _rule(
    "MLG106",
    "encoded-code",
    Severity.CRITICAL,
    "Code decoded at load time (base64, zlib, hex...) is passed to an exec-like callable.",
)
EXTENSION_CODE = _rule(
    "MLG107",
    "extension-registry",
    Severity.HIGH,
    "The stream refers to the copyreg extension registry, whose content depends on the "
    "loading process and cannot be resolved statically.",
)
CODE_OBJECT = _rule(
    "MLG108",
    "serialized-code",
    Severity.CRITICAL,
    "The stream rebuilds a Python function or code object (dill/cloudpickle/marshal style).",
)
CHAINED_LOAD = _rule(
    "MLG109",
    "chained-load",
    Severity.HIGH,
    "The stream makes the loader read another file as a model or pickle (multi-stage payload).",
)

# --- model formats other than pickle (issue 3) -----------------------------------
LAMBDA_CODE = _rule(
    "MLG110",
    "embedded-lambda",
    Severity.CRITICAL,
    "A Keras Lambda layer (or similar) carries serialized Python code that runs on load.",
)
UNSAFE_REFERENCE = _rule(
    "MLG111",
    "unsafe-reference",
    Severity.HIGH,
    "A model config names a module, class or function outside the framework's safe "
    "namespaces (Keras safe_mode bypasses, get_file-style gadgets).",
)
DANGEROUS_OP = _rule(
    "MLG112",
    "dangerous-op",
    Severity.HIGH,
    "A graph uses file-system, process or Python-callback operations (ReadFile, WriteFile, "
    "PyFunc...).",
)
CUSTOM_OP = _rule(
    "MLG113",
    "custom-op",
    Severity.MEDIUM,
    "A graph uses an operator outside the standard set (custom domain, non-builtin op); it "
    "needs code that is not part of the model file.",
)
EXTERNAL_DATA = _rule(
    "MLG114",
    "external-data-escape",
    Severity.HIGH,
    "A model references external data outside its folder (.., absolute path, symlink).",
)
TEMPLATE_INJECTION = _rule(
    "MLG115",
    "template-injection",
    Severity.CRITICAL,
    "A Jinja2 template reaches Python internals (dunder attributes, globals, os, eval...): "
    "server-side template injection when the template is rendered.",
)
REMOTE_CODE = _rule(
    "MLG116",
    "remote-code",
    Severity.HIGH,
    "A repository makes from_pretrained(trust_remote_code=True) import its own Python code.",
)
LOADS_CODE = _rule(
    "MLG117",
    "loads-code",
    Severity.HIGH,
    "A configuration or manifest makes its loader import Python code shipped with the model or "
    "download code (MLflow loader_module and code paths, TorchServe handler and model file, "
    "torch.package modules, transformers Hub kernels).",
)

# --- stream and container integrity ------------------------------------------------
MALFORMED = _rule(
    "MLG201",
    "malformed-stream",
    Severity.MEDIUM,
    "The stream is invalid: the real loader fails at this point, after running every call "
    "made before it.",
)
FRAME_MISMATCH = _rule(
    "MLG202",
    "frame-mismatch",
    Severity.HIGH,
    "A pickle FRAME's declared length disagrees with the opcodes inside it; readers that "
    "honour frames differently see different programs (scanner evasion).",
)
TRAILING_DATA = _rule(
    "MLG203",
    "trailing-data",
    Severity.LOW,
    "Bytes follow the last pickle that are not part of any analysable stream.",
)
ARCHIVE_ANOMALY = _rule(
    "MLG204",
    "archive-anomaly",
    Severity.HIGH,
    "The archive is built so that different readers see different content (duplicate names, "
    "local/central header disagreement, bad CRC, unreadable members).",
)
POLYGLOT = _rule(
    "MLG205",
    "polyglot",
    Severity.HIGH,
    "The file is valid as two formats; both readings were analysed.",
)
PATH_TRAVERSAL = _rule(
    "MLG206",
    "path-traversal",
    Severity.HIGH,
    "An archive member or referenced file escapes its folder (.., absolute path, link).",
)
EXTENSION_MISMATCH = _rule(
    "MLG207",
    "extension-mismatch",
    Severity.MEDIUM,
    "The file's content is not what its extension says (e.g. a pickle named .safetensors).",
)

# --- completeness (fail closed) -----------------------------------------------------
LIMIT_EXCEEDED = _rule(
    "MLG301",
    "limit-exceeded",
    Severity.HIGH,
    "A resource limit was hit (size, depth, time, ratio); the artifact was not fully analysed.",
)
UNSUPPORTED = _rule(
    "MLG302",
    "not-analysed",
    Severity.HIGH,
    "The artifact or part of it could not be analysed; it is not known to be safe.",
)
RECOGNISED = _rule(
    "MLG304",
    "recognised-format",
    Severity.INFO,
    "The format was recognised; the message says whether it can carry code and how far it was "
    "analysed.",
)
UNRECOGNISED = _rule(
    "MLG303",
    "unrecognised-format",
    Severity.INFO,
    "The file's format is not one mlgate analyses for code; it was not scanned further.",
)

# --- informational --------------------------------------------------------------------
EMBEDDED_CODE = _rule(
    "MLG401",
    "embedded-source",
    Severity.INFO,
    "The artifact carries source code that the loader compiles (e.g. TorchScript).",
)
SUSPICIOUS_SOURCE = _rule(
    "MLG402",
    "suspicious-source",
    Severity.HIGH,
    "Source code carried by the artifact reaches process, file, network or dynamic-code APIs.",
)

# --- conversion (mlgate convert / mlgate.load) ----------------------------------------------
CONVERSION_REFUSED = _rule(
    "MLG501",
    "conversion-refused",
    Severity.HIGH,
    "The checkpoint holds something other than tensors, arrays and plain containers; "
    "converting or loading it would run code from the file, so it was refused.",
)

# --- completeness of the scanned tree (issue 10: the driver fails closed) -------------------
UNREADABLE = _rule(
    "MLG305",
    "unreadable",
    Severity.HIGH,
    "A file or folder could not be listed or read (permissions, I/O error, changed during the "
    "scan); what it holds was not analysed.",
)
NOT_REGULAR_FILE = _rule(
    "MLG306",
    "not-a-regular-file",
    Severity.HIGH,
    "A FIFO, socket or device stands where a file should be; it was never opened (a FIFO blocks, "
    "a device streams without end), so what a loader would read from it was not analysed.",
)
EMPTY_FILE = _rule(
    "MLG307",
    "empty-file",
    Severity.HIGH,
    "The file is empty: there is nothing to analyse, and a model file named like this is not the "
    "model it claims to be (HIGH for model file names, LOW otherwise).",
)
LFS_POINTER = _rule(
    "MLG308",
    "git-lfs-pointer",
    Severity.HIGH,
    "A Git LFS pointer stands where a model file should be: the real content was never fetched, "
    "so what a deployment eventually loads in its place was not analysed.",
)
NOTHING_SCANNED = _rule(
    "MLG309",
    "nothing-scanned",
    Severity.HIGH,
    "The path given holds no file to analyse (empty folder, or only links and special files); "
    "an empty scan is not a clean one.",
)

# --- discovery in code (mlgate discover, issue 14) ----------------------------------------------
TORCH_LOAD = _rule(
    "MLG601",
    "torch-load-unpickles",
    Severity.HIGH,
    "torch.load without weights_only=True unpickles the checkpoint: loading it runs any code "
    "in it (MEDIUM when the value or the torch version is not known).",
)
TORCH_WEIGHTS_ONLY_BYPASS = _rule(
    "MLG602",
    "weights-only-bypassable",
    Severity.HIGH,
    "torch.load(weights_only=True) in a project whose requirements admit torch < 2.6.0, where "
    "the flag could be bypassed to run code (CVE-2025-32434).",
)
PICKLE_LOAD = _rule(
    "MLG603",
    "pickle-load",
    Severity.HIGH,
    "Code deserialises with pickle or a pickle-based loader (cPickle, dill, cloudpickle, joblib, "
    "pandas.read_pickle): loading an untrusted file runs any code in it.",
)
NUMPY_ALLOW_PICKLE = _rule(
    "MLG604",
    "numpy-allow-pickle",
    Severity.HIGH,
    "numpy.load(allow_pickle=True) unpickles object arrays: loading the file runs code.",
)
KERAS_UNSAFE = _rule(
    "MLG605",
    "keras-unsafe-deserialization",
    Severity.HIGH,
    "Keras load_model(safe_mode=False) or enable_unsafe_deserialization(): Lambda layers and "
    "arbitrary callables in the model run on load.",
)
TRUST_REMOTE_CODE = _rule(
    "MLG606",
    "trust-remote-code",
    Severity.HIGH,
    "trust_remote_code=True imports and runs Python files from the model repository.",
)
TORCH_HUB_LOAD = _rule(
    "MLG607",
    "torch-hub-load",
    Severity.HIGH,
    "torch.hub.load imports and runs hubconf.py from a GitHub repository.",
)
MLFLOW_EXTERNAL = _rule(
    "MLG608",
    "mlflow-external-model",
    Severity.HIGH,
    "mlflow load_model on a URI outside the tracking server (http, s3, gs...): the pyfunc "
    "wrapper and its pickles come from wherever the URI points (MEDIUM when not computable).",
)
YAML_UNSAFE = _rule(
    "MLG609",
    "yaml-unsafe-load",
    Severity.HIGH,
    "yaml.load without a safe loader (or yaml.unsafe_load) builds arbitrary Python objects from "
    "the document (MEDIUM for a missing loader or FullLoader).",
)
HYDRA_DOWNLOADED = _rule(
    "MLG610",
    "hydra-instantiate-downloaded",
    Severity.HIGH,
    "Hydra instantiate/call on a configuration that was downloaded: its _target_ names any "
    "importable callable, which is called.",
)
MODEL_REFERENCE = _rule(
    "MLG620",
    "model-reference",
    Severity.INFO,
    "A model the code loads or downloads (hub repo, URL, bucket, torch.hub repo): the inventory.",
)
FLOATING_REVISION = _rule(
    "MLG621",
    "floating-revision",
    Severity.MEDIUM,
    "A hub model is loaded without a commit pin (revision= a 40-hex commit): what is loaded "
    "changes whenever the repository does.",
)
FOREIGN_ENDPOINT = _rule(
    "MLG622",
    "foreign-endpoint",
    Severity.MEDIUM,
    "A model is fetched from an endpoint that is not the configured hub (a URL, a bucket, "
    "GitHub, another hub): it goes around the gate.",
)
SHADOW_MODEL = _rule(
    "MLG623",
    "shadow-model",
    Severity.HIGH,
    "A model the code loads is not published in the registry (unknown, or not approved).",
)
DYNAMIC_REFERENCE = _rule(
    "MLG624",
    "dynamic-model-reference",
    Severity.LOW,
    "A model reference is computed at run time; it could not be resolved or cross-checked.",
)
FRAMEWORK_DEPENDENCY = _rule(
    "MLG630",
    "framework-dependency",
    Severity.INFO,
    "An ML framework the project depends on, with the versions its requirements admit.",
)

# --- dynamic test in the sandbox (mlgate sandbox, issue 13) --------------------------------------
SANDBOX_PROCESS = _rule(
    "MLG701",
    "sandbox-process-creation",
    Severity.CRITICAL,
    "Loading the model in the sandbox started a process (execve, fork, subprocess, os.system).",
)
SANDBOX_CODE = _rule(
    "MLG702",
    "sandbox-code-execution",
    Severity.CRITICAL,
    "Loading the model compiled or executed Python code outside the framework's own modules.",
)
SANDBOX_NETWORK = _rule(
    "MLG703",
    "sandbox-network",
    Severity.CRITICAL,
    "Loading the model resolved a name, opened a connection or sent bytes (the sandbox's fake "
    "network recorded the destination).",
)
SANDBOX_WRITE = _rule(
    "MLG704",
    "sandbox-write-outside-scratch",
    Severity.CRITICAL,
    "Loading the model wrote, created, renamed or deleted a file outside its private scratch "
    "folder.",
)
SANDBOX_IMPORT = _rule(
    "MLG705",
    "sandbox-unexpected-import",
    Severity.HIGH,
    "Loading the model imported a module or resolved a global that the pickle policy denies.",
)
SANDBOX_ESCAPE = _rule(
    "MLG706",
    "sandbox-escape-attempt",
    Severity.CRITICAL,
    "Loading the model made a system call the sandbox denies (ptrace, mount, bpf, namespaces, "
    "kernel modules, io_uring...) or tampered with what observes it.",
)
SANDBOX_SIGNAL = _rule(
    "MLG707",
    "sandbox-signal",
    Severity.HIGH,
    "Loading the model sent a signal to a process it did not start (its parent, init, or all).",
)
SANDBOX_LOAD_FAILED = _rule(
    "MLG708",
    "sandbox-load-failed",
    Severity.MEDIUM,
    "The real loader did not finish (exception, crash, resource limit or time-out): what the "
    "model would do after that point was not observed.",
)
SANDBOX_NATIVE = _rule(
    "MLG709",
    "sandbox-native-code",
    Severity.HIGH,
    "Loading the model loaded a native library or called into native code through ctypes.",
)
SANDBOX_SECRET_READ = _rule(
    "MLG710",
    "sandbox-secret-read",
    Severity.HIGH,
    "Loading the model tried to read credentials or host files (SSH keys, cloud credentials, "
    "process environments, /etc/shadow).",
)
SANDBOX_OUTPUT = _rule(
    "MLG711",
    "sandbox-output-anomaly",
    Severity.MEDIUM,
    "The behaviour probe saw anomalous outputs (NaN/Inf, constant output, or a large difference "
    "from the reference model). Not backdoor detection.",
)
SANDBOX_INCOMPLETE = _rule(
    "MLG712",
    "sandbox-record-incomplete",
    Severity.HIGH,
    "Part of what happened in the sandbox was not recorded (event or trace limit, unreadable "
    "records): the dynamic test is incomplete.",
)
SANDBOX_WEAK = _rule(
    "MLG713",
    "sandbox-weaker-isolation",
    Severity.MEDIUM,
    "The dynamic test ran with weaker isolation than mlgate's default (asked for with "
    "--allow-weaker-isolation).",
)

ALL_RULES: tuple[Rule, ...] = (
    CODE_EXECUTION,
    SYSTEM_ACCESS,
    UNKNOWN_GLOBAL,
    DYNAMIC_CALL,
    NESTED_PAYLOAD,
    ENCODED_CODE,
    EXTENSION_CODE,
    CODE_OBJECT,
    CHAINED_LOAD,
    LAMBDA_CODE,
    UNSAFE_REFERENCE,
    DANGEROUS_OP,
    CUSTOM_OP,
    EXTERNAL_DATA,
    TEMPLATE_INJECTION,
    REMOTE_CODE,
    LOADS_CODE,
    MALFORMED,
    FRAME_MISMATCH,
    TRAILING_DATA,
    ARCHIVE_ANOMALY,
    POLYGLOT,
    PATH_TRAVERSAL,
    EXTENSION_MISMATCH,
    LIMIT_EXCEEDED,
    UNSUPPORTED,
    RECOGNISED,
    UNRECOGNISED,
    EMBEDDED_CODE,
    SUSPICIOUS_SOURCE,
    CONVERSION_REFUSED,
    UNREADABLE,
    NOT_REGULAR_FILE,
    EMPTY_FILE,
    LFS_POINTER,
    NOTHING_SCANNED,
    TORCH_LOAD,
    TORCH_WEIGHTS_ONLY_BYPASS,
    PICKLE_LOAD,
    NUMPY_ALLOW_PICKLE,
    KERAS_UNSAFE,
    TRUST_REMOTE_CODE,
    TORCH_HUB_LOAD,
    MLFLOW_EXTERNAL,
    YAML_UNSAFE,
    HYDRA_DOWNLOADED,
    MODEL_REFERENCE,
    FLOATING_REVISION,
    FOREIGN_ENDPOINT,
    SHADOW_MODEL,
    DYNAMIC_REFERENCE,
    FRAMEWORK_DEPENDENCY,
    SANDBOX_PROCESS,
    SANDBOX_CODE,
    SANDBOX_NETWORK,
    SANDBOX_WRITE,
    SANDBOX_IMPORT,
    SANDBOX_ESCAPE,
    SANDBOX_SIGNAL,
    SANDBOX_LOAD_FAILED,
    SANDBOX_NATIVE,
    SANDBOX_SECRET_READ,
    SANDBOX_OUTPUT,
    SANDBOX_INCOMPLETE,
    SANDBOX_WEAK,
)
RULES_BY_ID: dict[str, Rule] = {r.id: r for r in ALL_RULES}
