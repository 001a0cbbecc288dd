"""``torch.package`` archives: ``PackageImporter`` executes the Python modules stored in them.

A package (``torch.package.PackageExporter``) is a ZIP archive whose
``<name>/.data/extern_modules`` lists the modules taken from the loading environment; every
other module its pickles need is *interned*: the module's source is stored in the archive and
``PackageImporter`` executes it while loading the pickle (the policy denies the
``torch.package`` module for that reason). A package that stores code is therefore at least
HIGH; each stored module is analysed as Python source by the ZIP handler, the pickles as
pickles, and the extern list is judged by the pickle policy.
"""

from __future__ import annotations

import re

from mlgate.scan import rules
from mlgate.scan.config_refs import IMPORTABLE, shown
from mlgate.scan.context import ScanContext
from mlgate.scan.pickle.policy import MODULE_MARK, Category
from mlgate.scan.source import Source

EXTERN_MODULES = ".data/extern_modules"
MAX_EXTERN_BYTES = 1 << 20
MAX_LISTED = 10
# Records PackageImporter reads itself: raw storages and version stamps, never unpickled.
PACKAGE_DATA = re.compile(
    r"(^|/)\.data/(\d+\.storage|version|python_version|serialization_id|extern_modules)$"
    r"|(^|/)byteorder$"
)


def report_package(
    source: Source, ctx: ScanContext, modules: list[str], extern: Source | None
) -> None:
    """One finding for the package: the code it runs and the externs the policy denies."""
    externs = _extern_names(extern) if extern is not None else []
    denied = _denied_externs(ctx, externs)
    listed = ", ".join(shown(m) for m in modules[:MAX_LISTED])
    if len(modules) > MAX_LISTED:
        listed += f" and {len(modules) - MAX_LISTED} more"
    if not modules and not denied:
        ctx.add(
            rules.RECOGNISED,
            source.location,
            f"torch.package archive with no stored Python module; {len(externs)} extern module(s)",
        )
        return
    message = "torch.package archive: PackageImporter executes the stored module(s) " + (
        listed or "(none)"
    )
    if denied:
        message += "; it imports from the environment modules the policy denies: "
        message += ", ".join(denied[:MAX_LISTED])
    ctx.add(rules.LOADS_CODE, source.location, message)


def _extern_names(extern: Source) -> list[str]:
    with extern.open() as f:
        text = f.read(MAX_EXTERN_BYTES).decode("utf-8", "replace")
    return [line.strip() for line in text.splitlines() if line.strip()]


def _denied_externs(ctx: ScanContext, externs: list[str]) -> list[str]:
    denied = []
    for module in externs:
        if not IMPORTABLE.fullmatch(module):
            denied.append(f"{shown(module)} (not a module name)")
            continue
        verdict = ctx.policy.classify(module, MODULE_MARK)
        if verdict.category not in (Category.SAFE, Category.UNKNOWN):
            denied.append(f"{module} ({verdict.reason})")
    return denied
