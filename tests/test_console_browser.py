"""The web console end to end in a real headless Chromium against a real hub: a review (log
in with a token, search, read the findings, reject; a second reviewer approves what the first
ingested) checked afterwards in the registry, its audit log and the hub's Hugging Face route;
hostile text shown inert; forms refused without their CSRF token; axe-core accessibility
checks; screenshots at desktop and phone widths (build/test-artifacts/console/).

One seeded hub and one browser serve the whole module (see tests/browser_support.py); each
test changes only models no other test looks at, so any order (or xdist split) works.
"""

from __future__ import annotations

import hashlib
import http.client
import json
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
from browser_support import (
    ARTIFACTS,
    DESKTOP,
    PHONE,
    XSS_IMG,
    XSS_SCRIPT,
    ConsoleHub,
    Tab,
    axe_core_js,
    new_tab,
)

from mlgate.registry.lifecycle import State

PREFIX = "/console"


def log_in(tab: Tab, hub: ConsoleHub, user: str) -> None:
    """Through the login form, as a person would; lands on the inventory."""
    tab.open(f"{PREFIX}/login")
    # Keyboard only: the token field has the focus (autofocus, applied once the page has
    # rendered), Enter sends the form.
    field = tab.page.get_by_label("Hub token").element_handle()
    tab.page.wait_for_function("field => document.activeElement === field", arg=field)
    tab.page.keyboard.type(hub.tokens[user])
    tab.page.keyboard.press("Enter")
    tab.page.wait_for_url(f"{hub.url}{PREFIX}/")
    assert tab.page.locator("header .who").inner_text() == user


def review_item(tab: Tab, ref: str) -> Any:
    """The review queue's card of version ``ref``."""
    return tab.page.locator("section.review-item").filter(
        has=tab.page.get_by_role("link", name=ref, exact=True)
    )


def decide(tab: Tab, ref: str, action: str, reason: str) -> None:
    """Fill the reason and press approve/reject in ``ref``'s card of the review queue."""
    tab.open(f"{PREFIX}/review")
    card = review_item(tab, ref)
    card.get_by_label(f"Reason to {action}").fill(reason)
    card.get_by_role("button", name=action.capitalize()).click()
    # Post/redirect/get: the outcome is the version's page.
    tab.page.wait_for_url(f"**{PREFIX}/models/{ref.replace('@', '?v=')}")


def shown_state(tab: Tab) -> str:
    """The state badge of the version page in ``tab``."""
    return str(tab.page.locator("main .state").first.inner_text())


def hf_status(hub: ConsoleHub, repo: str, path: str, user: str = "rob") -> tuple[int, bytes]:
    """A download through the hub's Hugging Face route, as ``hf download`` makes it."""
    parts = urlsplit(hub.url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    try:
        conn.request(
            "GET",
            f"/{repo}/resolve/main/{path}",
            headers={"Authorization": f"Bearer {hub.tokens[user]}"},
        )
        answer = conn.getresponse()
        return answer.status, answer.read()
    finally:
        conn.close()


def audit_entries(hub: ConsoleHub, action: str, subject: str) -> list[dict[str, Any]]:
    registry = hub.registry()
    try:
        entries = [json.loads(line) for line in registry.audit_export()]
    finally:
        registry.engine.dispose()
    return [e for e in entries if e["action"] == action and e.get("subject") == subject]


def test_reject_then_a_second_reviewer_approves(
    tab: Tab, browser: Any, console_hub: ConsoleHub
) -> None:
    seed = console_hub.seed
    suspicious, clean = f"{seed.suspicious}@1", f"{seed.clean}@1"
    assert hf_status(console_hub, seed.clean, "model.safetensors")[0] in {403, 404}  # unserved
    log_in(tab, console_hub, "rita")
    page = tab.page

    # Find the model waiting in quarantine through the inventory's search.
    page.get_by_label("Name contains").fill("sentiment")
    page.get_by_role("button", name="Apply").click()
    page.wait_for_url("**search=sentiment**")
    rows = page.locator("table.grid tbody tr")
    assert rows.count() == 1
    assert "scanned" in rows.first.inner_text() and "critical" in rows.first.inner_text()

    # Its findings: the os.system call, where it is, and what loading would run.
    rows.first.get_by_role("link", name=seed.suspicious).click()
    page.wait_for_url(f"**{PREFIX}/models/{seed.suspicious}*")
    assert page.get_by_role("heading", level=1).inner_text().startswith(seed.suspicious)
    finding = page.locator(".finding.sev-critical").first
    assert "os.system" in finding.inner_text() and "pytorch_model.bin" in finding.inner_text()
    assert "touch " in page.locator("pre").filter(has_text="os.system").first.inner_text()
    code = page.locator("pre").filter(has_text="class SentimentModel")
    assert XSS_SCRIPT in code.inner_text()  # shown as text, not run (no page event)

    decide(tab, suspicious, "reject", "calls os.system when loaded")
    assert shown_state(tab) == "rejected"

    # rita ingested the clean model: the console says so, and her approval does not count.
    tab.open(f"{PREFIX}/review")
    assert "You ingested this" in review_item(tab, clean).inner_text()
    decide(tab, clean, "approve", "my own model")
    assert "separation of duties" in page.locator("main .pending").first.inner_text()
    assert shown_state(tab) == "scanned"

    # A second reviewer, in another browser session.
    rex = new_tab(browser, console_hub.url)
    try:
        log_in(rex, console_hub, "rex")
        decide(rex, clean, "approve", "weights only, no code")
        assert shown_state(rex) == "approved"
        assert rex.events == []
    finally:
        rex.page.context.close()
    assert tab.events == []

    registry = console_hub.registry("pat")
    try:
        rejected, approved = registry.show(suspicious), registry.show(clean)
        assert rejected.state is State.REJECTED
        assert [(d.actor, d.decision, d.reason) for d in rejected.decisions] == [
            ("rita", "reject", "calls os.system when loaded")
        ]
        assert approved.state is State.APPROVED
        assert [(d.actor, d.decision) for d in approved.decisions] == [
            ("rita", "approve"),
            ("rex", "approve"),
        ]
        # Publishing is the publisher's step (not a console form): pat, as the CLI would.
        registry.publish(clean)
        weights = next(f for f in approved.files if f.path == "model.safetensors")
    finally:
        registry.engine.dispose()
    assert [e["actor"] for e in audit_entries(console_hub, "reject", suspicious)] == ["rita"]
    assert [e["actor"] for e in audit_entries(console_hub, "approve", clean)] == ["rita", "rex"]

    status, body = hf_status(console_hub, seed.clean, "model.safetensors")
    assert status == 200 and hashlib.sha256(body).hexdigest() == weights.digest
    assert hf_status(console_hub, seed.suspicious, "pytorch_model.bin")[0] in {403, 404}


# Every page showing the hostile model (with the HTTP status and whether it shows one of the
# payloads as text); the last two reflect payloads from the URL: a link sent to a reviewer
# (reflected XSS), into the search field and into a "no such model" page.
HOSTILE_PAGES = {
    "/?search=xss": (200, True),  # the licence
    "/models/{name}?v=2": (200, True),  # file name, finding, evidence, explain
    "/models/{name}?v=1": (200, True),  # and the rejection's reason
    "/review": (200, False),  # its name, source and finding counts only
    "/audit": (200, True),
    f"/?search={quote(XSS_IMG)}": (200, False),
    f"/models/{quote(XSS_SCRIPT)}": (404, True),
    f"/lineage?kind=base_model&value={quote(XSS_SCRIPT)}": (200, True),
}


def test_hostile_names_and_findings_are_shown_as_text(tab: Tab, console_hub: ConsoleHub) -> None:
    log_in(tab, console_hub, "rob")
    name = console_hub.seed.hostile
    for path, (status, shows_payload) in HOSTILE_PAGES.items():
        tab.open(PREFIX + path.format(name=name), status)
        page = tab.page
        assert page.evaluate("typeof window.__xss") == "undefined", path
        # No element was made of the payloads; where shown, they are text.
        assert page.locator("img[src=x], main script").count() == 0, path
        text = page.locator("main").inner_text()
        assert shows_payload <= (XSS_SCRIPT in text or XSS_IMG in text), path
    tab.open(f"{PREFIX}/?search={quote(XSS_IMG)}")
    assert tab.page.get_by_label("Name contains").input_value() == XSS_IMG
    tab.open(f"{PREFIX}/models/{name}?v=2")
    text = tab.page.locator("main").inner_text()
    for shown in (f"{XSS_IMG}.bin", XSS_SCRIPT, XSS_IMG):  # file name, finding, licence
        assert shown in text
    assert tab.events == []


def test_forms_without_the_csrf_token_are_refused(
    tab: Tab, browser: Any, console_hub: ConsoleHub
) -> None:
    # Login CSRF (a forged post logging the victim in as the attacker): refused, no session.
    stranger = new_tab(browser, console_hub.url)
    try:
        login = stranger.page.context.request.post(
            f"{console_hub.url}{PREFIX}/login",
            form={"token": console_hub.tokens["rex"]},
            max_redirects=0,
        )
        assert login.status == 403
        stranger.page.goto(f"{console_hub.url}{PREFIX}/")
        assert stranger.page.url == f"{console_hub.url}{PREFIX}/login"
    finally:
        stranger.page.context.close()

    ref = f"{console_hub.seed.hostile}@2"
    before = audit_entries(console_hub, "reject", ref)
    log_in(tab, console_hub, "rex")
    # The session cookie is out of reach of scripts (XSS) and of other sites' requests.
    [cookie] = tab.page.context.cookies()
    assert (cookie["httpOnly"], cookie["sameSite"]) == (True, "Lax")
    assert cookie["name"] not in tab.page.evaluate("document.cookie")
    # A script on the page (what an injection could do) posting without the token...
    status = tab.page.evaluate(
        """async (ref) => (await fetch('/console/review/reject', {
            method: 'POST', credentials: 'same-origin',
            headers: {'Content-Type': 'application/x-www-form-urlencoded'},
            body: new URLSearchParams({ref, reason: 'forged'})})).status""",
        ref,
    )
    assert status == 403
    # ...and a hand-made request carrying the session cookie and a made-up token.
    forged = tab.page.context.request.post(
        f"{console_hub.url}{PREFIX}/review/reject",
        form={"ref": ref, "reason": "forged", "csrf": "0" * 64},
        max_redirects=0,
    )
    assert forged.status == 403
    # ...and another site's form, sent from the same (logged-in) browser with a click.
    other_site = tab.page.context.new_page()
    try:
        other_site.set_content(
            f'<form method="post" action="{console_hub.url}{PREFIX}/review/reject">'
            f'<input type="hidden" name="ref" value="{ref}">'
            '<input type="hidden" name="reason" value="forged"><button>win</button></form>'
        )
        with other_site.expect_navigation() as sent:
            other_site.get_by_role("button").click()
        # SameSite=Lax: a cross-site POST goes without the cookie, so it reached no session.
        assert sent.value is not None and sent.value.url == f"{console_hub.url}{PREFIX}/login"
        # A plain link from another site (a chat message, a ticket) keeps the reviewer
        # logged in: the console answers with the inventory, not the login page.
        other_site.set_content(f'<a href="{console_hub.url}{PREFIX}/">the console</a>')
        with other_site.expect_navigation() as followed:
            other_site.get_by_role("link").click()
        assert followed.value is not None and followed.value.url == f"{console_hub.url}{PREFIX}/"
    finally:
        other_site.close()
    registry = console_hub.registry()
    try:
        version = registry.show(ref)
    finally:
        registry.engine.dispose()
    assert (version.state, version.decisions) == (State.SCANNED, ())
    assert audit_entries(console_hub, "reject", ref) == before == []


MAIN_PAGES = (
    "/login",
    "/",
    "/models/{name}",
    "/review",
    "/audit",
    "/requests",
    "/lineage?kind=base_model&value=upstream/poisoned-base",
)


def test_a_poisoned_base_model_is_found_and_its_versions_revoked(
    tab: Tab, console_hub: ConsoleHub
) -> None:
    """Incident response: from a version's *Built from*, the affected versions with where
    they are deployed; one form revokes them, and the alias falls back."""
    seed = console_hub.seed
    log_in(tab, console_hub, "alice")
    page = tab.page
    tab.open(f"{PREFIX}/models/{seed.derived}?v=2")
    page.get_by_role("link", name=seed.poisoned_base, exact=True).click()
    page.wait_for_url("**/lineage?kind=base_model*")
    rows = page.locator("table.grid tbody tr")
    assert rows.count() == 1
    assert f"{seed.derived}@2" in rows.first.inner_text()
    assert "production" in rows.first.inner_text()
    page.get_by_label("Reason").fill("base model poisoned upstream")
    page.get_by_role("button", name="Revoke affected versions").click()
    # Not ticked: the browser does not send the form (the server would refuse it too).
    assert page.url.endswith("/lineage?kind=base_model&value=upstream%2Fpoisoned-base")
    page.get_by_label("I confirm revoking 1 version").check()
    page.get_by_role("button", name="Revoke affected versions").click()
    page.wait_for_url("**revoked=1")
    assert page.get_by_role("status").inner_text() == "Revoked 1 version(s)."
    assert "revoked" in rows.first.inner_text()
    assert tab.events == []
    registry = console_hub.registry()
    try:
        assert registry.show(f"{seed.derived}@2").state is State.REVOKED
        assert registry.show(f"{seed.derived}@production").number == 1  # fell back
    finally:
        registry.engine.dispose()
    [entry] = audit_entries(console_hub, "revoked", f"{seed.derived}@2")
    assert (entry["actor"], entry["details"]["reason"]) == ("alice", "base model poisoned upstream")


def axe_violations(tab: Tab) -> list[str]:
    """axe-core's serious and critical violations on the current page."""
    found = tab.page.evaluate(
        """async () => (await axe.run(document, {resultTypes: ['violations']})).violations
            .filter(v => ['serious', 'critical'].includes(v.impact))
            .map(v => `${v.id}: ${v.help} @ ${v.nodes.map(n => n.target.join(' ')).join(', ')}`)"""
    )
    return [str(v) for v in found]


# Inventory rows at phone width were ~300 px tall (nine columns squeezed into 390 px).
MAX_ROW_HEIGHT = 80


def layout_problems(tab: Tab, slug: str, width: dict[str, int]) -> list[str]:
    """What axe-core does not see: the model heading's "version N" kept on one line, short
    inventory rows at phone width, and a visible keyboard focus ring (on the first links,
    reached with Tab)."""
    page, problems = tab.page, []
    if (
        slug == "models"
        and page.evaluate("document.querySelector('h1 small').getClientRects().length") != 1
    ):
        problems.append("the heading's 'version N' breaks across lines")
    if slug == "inventory" and width == PHONE:
        tallest = page.evaluate(
            "Math.max(...[...document.querySelectorAll('tbody tr')].map(r => r.offsetHeight))"
        )
        if tallest > MAX_ROW_HEIGHT:
            problems.append(f"inventory rows up to {tallest} px tall")
    if slug == "inventory":
        for _ in range(2):  # the skip link, then the brand link
            page.keyboard.press("Tab")
            ring = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
            if ring in ("none", ""):
                problems.append(
                    f"no focus ring on {page.evaluate('document.activeElement.outerHTML')[:80]}"
                )
    return problems


@pytest.mark.parametrize("width", [DESKTOP, PHONE], ids=["1280px", "390px"])
def test_main_pages_pass_axe_core_and_fit_the_width(
    browser: Any, console_hub: ConsoleHub, width: dict[str, int]
) -> None:
    """Each main page, at a desktop and at a phone width: no serious or critical axe-core
    violation (labels, contrast, headings, keyboard access), no sideways scrolling of the
    page (wide tables scroll inside their box), and a screenshot saved as an artifact."""
    axe = axe_core_js()
    tab = new_tab(browser, console_hub.url, viewport=width)
    # axe is injected by the browser driver before the page loads, not as a <script> of the
    # page: the console's CSP (script-src 'self') stays in force while it runs.
    tab.page.context.add_init_script(path=str(axe))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    problems = {}
    try:
        for path in MAIN_PAGES:
            if path == "/":
                log_in(tab, console_hub, "rex")
            tab.open(PREFIX + path.format(name=console_hub.seed.suspicious))
            slug = path.strip("/").split("/")[0].split("?")[0] or "inventory"
            shot = ARTIFACTS / f"{slug}-{width['width']}px.png"
            tab.page.screenshot(path=str(shot), full_page=True)
            found = axe_violations(tab) + layout_problems(tab, slug, width)
            scroll = tab.page.evaluate("document.documentElement.scrollWidth")
            if scroll > width["width"]:
                found.append(f"the page scrolls sideways ({scroll} px wide)")
            if found:
                problems[path] = found
        assert tab.events == []
    finally:
        tab.page.context.close()
    assert problems == {}
