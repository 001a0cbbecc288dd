"""Browser test fixtures: the web console in a real headless Chromium (Debian's ``chromium``,
driven by Playwright; never a downloaded browser) against a real hub on 127.0.0.1 over a
seeded SQLite registry.

- ``console_hub`` (module): the hub, its registry and login tokens of the seeded users.
- ``browser`` (module): one Chromium per test module (starting one costs ~1 s).
- ``tab`` (function): a fresh browser context (no cookies) and page; it records every page
  error, console error or warning and dialog (a script that ran where none should), and at
  the end of the test saves a screenshot of every console page it visited into
  ``build/test-artifacts/console/`` (gitignored; the folder a CI job uploads as an artifact).

conftest.py registers it for every session, so the hub (seconds to import) is imported only
when a fixture is used. Chromium, Playwright and axe-core are looked up, not assumed: on a
laptop without them the tests skip with the reason; under CI (``CI=true``; .ci/run installs
all three) they fail instead.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit

import payloads
import pytest

CHROMIUM = os.environ.get("MLGATE_CHROMIUM", "/usr/bin/chromium")
# Headless as root (no sandbox possible), and quiet: the machine has no network, so every
# background service Chromium starts would only log refused connections. Playwright gives
# each launch a fresh temporary profile (its --user-data-dir), so no state leaks in.
CHROMIUM_FLAGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
ARTIFACTS = Path(__file__).resolve().parents[1] / "build" / "test-artifacts" / "console"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}

# What a successful injection would do; the tests check it never happened.
XSS_SCRIPT = "<script>window.__xss=1</script>"
XSS_IMG = '<img src=x onerror="window.__xss=1">'


def unavailable(reason: str) -> NoReturn:
    """Skip on a laptop without the tool; fail under CI, where .ci/run installs it."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: .ci/run installs it)")
    pytest.skip(reason)


def axe_core_js() -> Path:
    """axe-core's browser bundle (``AXE_CORE_JS``, set by .ci/run from its npm install)."""
    path = os.environ.get("AXE_CORE_JS", "")
    if not path or not Path(path).is_file():
        unavailable(f"axe-core not found (AXE_CORE_JS={path!r}); npm install axe-core")
    return Path(path)


# -- the seeded hub ------------------------------------------------------------------------


@dataclass(frozen=True)
class Seed:
    """The models the registry starts with, by role in the tests.

    ``suspicious``: a pickle with findings ingested by pat, awaiting review (to reject).
    ``clean``: benign safetensors ingested by rita, who also reviews: rex must approve it.
    ``hostile``: file name, finding texts, licence and an earlier rejection reason are XSS
    payloads (model names cannot be: the registry allows ``[A-Za-z0-9._-/]`` only).
    ``served``: published, for an inventory that is not all pending.
    ``unscanned``: quarantined and never scanned.
    ``derived``: version 1 built on a clean base, version 2 on ``poisoned_base`` (its card's
    ``base_model``); both published, ``production`` on 2 (the incident-response flow).
    """

    suspicious: str = "acme/sentiment-pickle"
    clean: str = "acme/clean-bert"
    hostile: str = "evil/xss-model"
    served: str = "acme/served-bert"
    unscanned: str = "acme/unscanned"
    derived: str = "acme/derived-chat"
    poisoned_base: str = "upstream/poisoned-base"


@dataclass
class ConsoleHub:
    """The running hub at ``url`` over the registry in ``data_dir``."""

    url: str
    data_dir: Path
    seed: Seed
    tokens: dict[str, str] = field(default_factory=dict)

    def registry(self, actor: str = "alice") -> Any:
        """A fresh view of the registry as ``actor`` (what the hub's database now holds)."""
        from mlgate.registry import open_registry

        return open_registry(self.data_dir, None, actor)


# rita is a reviewer who also ingests (publisher): the separation of duties case.
USERS = {"pat": "publisher", "rita": "reviewer,publisher", "rex": "reviewer", "rob": "reader"}


def hostile_pickle(marker: str) -> bytes:
    """A pickle importing a global whose module and name are HTML payloads, calling it with
    a shell command that is a third; it would create a marker file if ever loaded."""
    return (
        payloads.glob0(XSS_IMG, XSS_SCRIPT)
        + b"(V"
        + (payloads.shell(marker) + " " + XSS_SCRIPT).encode()
        + b"\ntR."
    )


def _hostile_folder(root: Path, seed: int) -> Path:
    from registry_models import write_benign

    folder = write_benign(root / f"hostile-{seed}", seed)
    (folder / "README.md").write_text(f"---\nlicense: '{XSS_IMG}'\n---\n# {XSS_SCRIPT}\n")
    (folder / f"{XSS_IMG}.bin").write_bytes(hostile_pickle(f"console-xss-{seed}"))
    return folder


def _suspicious_folder(root: Path) -> Path:
    folder = root / "suspicious"
    folder.mkdir(parents=True)
    (folder / "pytorch_model.bin").write_bytes(payloads.os_system("console-suspicious"))
    # Code trust_remote_code would import: the version page shows it (axe checks that part).
    auto_map = {"AutoModel": "modeling_sentiment.SentimentModel"}
    (folder / "config.json").write_text(json.dumps({"auto_map": auto_map}))
    (folder / "modeling_sentiment.py").write_text(f"class SentimentModel:\n    '{XSS_SCRIPT}'\n")
    return folder


def seed_registry(data_dir: Path, models: Path, seed: Seed) -> dict[str, str]:
    """Users, models in every state the tests need; returns a login token per user."""
    from registry_models import write_benign

    from mlgate.registry import init_registry, open_registry

    alice = init_registry(data_dir, None, admin="alice")
    for user, roles in USERS.items():
        alice.add_user(user, roles)
    # Findings must reach a reviewer rather than be auto-rejected at ingest.
    alice.set_policy(replace(alice.policy, auto_reject_at=None))
    as_ = {u: open_registry(data_dir, None, u) for u in USERS}
    as_["pat"].ingest(_suspicious_folder(models), name=seed.suspicious)
    as_["rita"].ingest(write_benign(models / "clean", 1), name=seed.clean)
    first = as_["pat"].ingest(_hostile_folder(models, 0), name=seed.hostile)
    as_["rex"].reject(first.ref, f"rejected: {XSS_SCRIPT} {XSS_IMG}")
    as_["pat"].ingest(_hostile_folder(models, 1), name=seed.hostile)
    served = as_["pat"].ingest(write_benign(models / "served", 2), name=seed.served)
    as_["rex"].approve(served.ref, "reviewed")
    as_["pat"].publish(served.ref, alias="production")
    as_["pat"].ingest(write_benign(models / "unscanned", 3), name=seed.unscanned, scan=False)
    for n, base in enumerate(("upstream/clean-base", seed.poisoned_base)):
        folder = write_benign(models / f"derived-{n}", 4 + n)
        (folder / "README.md").write_text(f"---\nbase_model: {base}\n---\n")
        version = as_["pat"].ingest(folder, name=seed.derived)
        as_["rex"].approve(version.ref, "reviewed")
        as_["pat"].publish(version.ref, alias="production")
    tokens = {u: r.tokens.create(label=f"{u} console test").secret for u, r in as_.items()}
    tokens["alice"] = alice.tokens.create(label="alice console test").secret
    for registry in (alice, *as_.values()):
        registry.engine.dispose()
    return tokens


@pytest.fixture(scope="module")
def console_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleHub]:
    """A hub over a freshly seeded registry, for one test module."""
    from hub_support import serving

    from mlgate.hub.app import create_app
    from mlgate.hub.settings import HubSettings

    root = tmp_path_factory.mktemp("console")
    hub = ConsoleHub("", root / "registry", Seed())
    hub.tokens = seed_registry(hub.data_dir, root / "models", hub.seed)
    app = create_app(HubSettings(hub.data_dir))
    with serving(app) as url:
        hub.url = url
        yield hub
    app.state.registry.engine.dispose()


# -- the browser -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium for the module."""
    if shutil.which(CHROMIUM) is None:
        unavailable(f"Chromium not found at {CHROMIUM} (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("Python package playwright missing (pip install -e '.[test]')")
    with sync_playwright() as driver:
        chromium = driver.chromium.launch(executable_path=CHROMIUM, args=list(CHROMIUM_FLAGS))
        yield chromium
        chromium.close()


@dataclass
class Tab:
    """A page of a fresh browser context, with what happened in it."""

    page: Any
    base: str
    events: list[str] = field(default_factory=list)
    visited: list[str] = field(default_factory=list)
    expected_failures: set[str] = field(default_factory=set)

    def open(self, path: str, status: int = 200) -> Any:
        """Navigate to console ``path``, answered with ``status``."""
        if status >= 400:  # Chromium logs the error status it was told to expect
            self.expected_failures.add(self.base + path)
        response = self.page.goto(self.base + path)
        assert response is not None and response.status == status, (path, response)
        return response

    def listen(self) -> None:
        page = self.page
        page.on("pageerror", lambda error: self.events.append(f"page error: {error}"))
        page.on("dialog", self._dialog)
        page.on("console", self._console)
        page.on("framenavigated", self._navigated)

    def _dialog(self, dialog: Any) -> None:
        # alert()/confirm() from an injected script; dismissed so the page does not hang.
        self.events.append(f"dialog {dialog.type}: {dialog.message}")
        dialog.dismiss()

    def _console(self, message: Any) -> None:
        url = message.location.get("url", "")
        expected = url in self.expected_failures
        if message.type in {"error", "warning"} and not expected:
            self.events.append(f"console {message.type}: {message.text} ({url})")

    def _navigated(self, frame: Any) -> None:
        if frame == self.page.main_frame and frame.url.startswith(self.base):
            url = frame.url.removeprefix(self.base)
            if url not in self.visited:
                self.visited.append(url)

    def screenshots(self, prefix: str) -> list[Path]:
        """A full-page screenshot of every console page visited, as it is now."""
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        saved = []
        for index, url in enumerate(self.visited):
            self.page.goto(self.base + url)
            slug = re.sub(r"[^A-Za-z0-9]+", "-", urlsplit(url).path).strip("-") or "root"
            path = ARTIFACTS / f"{prefix}-{index:02d}-{slug[:60]}.png"
            self.page.screenshot(path=str(path), full_page=True)
            saved.append(path)
        return saved


def new_tab(browser: Any, base: str, viewport: dict[str, int] = DESKTOP, **options: Any) -> Tab:
    """A page in a new context (its own cookie jar: a separate login)."""
    context = browser.new_context(viewport=viewport, **options)
    tab = Tab(context.new_page(), base)
    tab.listen()
    return tab


@pytest.fixture
def tab(browser: Any, console_hub: ConsoleHub, request: pytest.FixtureRequest) -> Iterator[Tab]:
    """A fresh tab on the hub; its visited pages are screenshotted when the test ends."""
    opened = new_tab(browser, console_hub.url)
    yield opened
    try:
        opened.screenshots(re.sub(r"\W+", "-", request.node.name))
    finally:
        opened.page.context.close()
