#!/usr/bin/env bash
# The main job, end to end on the bundled samples with the embedded registry (SQLite + blob
# store in build/registry): scan, the dynamic test in the sandbox (skipped, and said, where
# bubblewrap is missing), quarantine, auto-reject, review, publish (signature + ML-BOM),
# admission gate on a pulled copy (passes) and a tampered copy (fails), audit log verification;
# then the private hub (`mlgate serve` on 127.0.0.1) serving the real Hugging Face client: a
# token-authenticated download that passes the gate, the rejected model refused with its
# reason (GatedRepoError), a reviewer rejecting a waiting model in the web console, requests
# without a valid token refused.
# Every step states what it expects; the script stops with exit 1 if any outcome differs.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
SAMPLES=${1:-build/samples}
# Only what this script sets applies: not the caller's registry, hub, identity or HF token.
unset MLGATE_REGISTRY MLGATE_HUB MLGATE_TOKEN MLGATE_ACTOR MLGATE_QUEUE MLGATE_UPSTREAM \
  MLGATE_UPSTREAM_TOKEN HF_TOKEN HF_ENDPOINT HF_HUB_OFFLINE
export MLGATE_HOME=build/registry
rm -rf "$MLGATE_HOME" build/deploy build/tampered build/tiny-bert.cdx.json build/hub-*

mlgate() { "$PY" -m mlgate "$@"; }
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
expect() {  # expect STATUS DESCRIPTION -- COMMAND...
  local want=$1 what=$2; shift 3
  "$@"; local got=$?
  if [ "$got" -ne "$want" ]; then
    echo "demo: FAILED: $what (exit $got, expected $want)"; exit 1
  fi
  echo "-> $what (exit $got, as expected)"
}

# Hub helpers (steps 9-12). The client is the real huggingface_hub, as users run it.
hf() { "$PY" -m huggingface_hub.cli.hf "$@"; }
without_token() { (unset HF_TOKEN; "$@"); }
free_port() {
  "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_for_hub() {  # PORT PID: 0 once the hub answers HTTP; 1 if it exits or 30 s pass
  "$PY" - "$@" <<'EOF'
import os, sys, time, urllib.error, urllib.request
port, pid = sys.argv[1], int(sys.argv[2])
deadline = time.monotonic() + 30
while time.monotonic() < deadline:
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/api/mlgate/v1/openapi.json", timeout=2)
        sys.exit(0)
    except urllib.error.HTTPError:
        sys.exit(0)  # any HTTP answer: the hub is up
    except OSError:
        time.sleep(0.2)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        sys.exit("the hub exited: see build/hub-serve.log")
sys.exit("the hub did not answer in 30 s: see build/hub-serve.log")
EOF
}
sandbox_unavailable() {  # why `mlgate sandbox` cannot run on this host (nothing: it can)
  "$PY" - <<'EOF'
from mlgate.sandbox.errors import SandboxUnavailableError
from mlgate.sandbox.isolation import probe
from mlgate.sandbox.seccomp_policy import compile_filter
found = probe()
if found.bwrap is None:
    print("bubblewrap not installed")
elif not found.full:
    print(found.reason)
else:
    try:
        compile_filter().close()
    except SandboxUnavailableError as e:
        print(str(e).splitlines()[0])
EOF
}
console_reject() {  # TOKEN MODEL REASON: log in to the web console and reject MODEL's
  # waiting version from the review queue, as a reviewer's browser would (cookie + CSRF)
  "$PY" - "$PORT" "$@" <<'EOF'
import http.client, re, sys
from urllib.parse import urlencode
port, token, model, reason = sys.argv[1:5]
cookies = {}
def call(method, path, form=None):
    conn = http.client.HTTPConnection("127.0.0.1", int(port), timeout=30)
    headers = {"cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())}
    if form is not None:
        headers["content-type"] = "application/x-www-form-urlencoded"
    conn.request(method, "/console" + path, urlencode(form) if form else None, headers)
    answer = conn.getresponse()
    for header in answer.headers.get_all("set-cookie") or []:
        name, _, rest = header.partition("=")
        cookies[name] = rest.split(";")[0]
    return answer.status, answer.read().decode()
def csrf(page):
    return re.search(r'name="csrf" value="([^"]+)"', page).group(1)
status, page = call("GET", "/login")
status, _ = call("POST", "/login", {"csrf": csrf(page), "token": token})
status, queue = call("GET", "/review")
ref = re.search(rf'name="ref" value="({re.escape(model)}@[0-9]+)"', queue)
if status != 200 or ref is None:
    sys.exit(f"{model} is not in the review queue (HTTP {status})")
print(f"the review queue shows {ref.group(1)}: rejecting it")
form = {"csrf": csrf(queue), "ref": ref.group(1), "reason": reason}
status, _ = call("POST", "/review/reject", form)
sys.exit(0 if status == 303 else f"reject answered HTTP {status}")
EOF
}
download() {  # REPO DEST EXPECTED: snapshot_download REPO into DEST; exit 0 when downloaded,
  # 1 when refused as EXPECTED (the client's exception class/HTTP status), else 2
  "$PY" - "$@" <<'EOF'
import sys
from huggingface_hub import snapshot_download
repo, dest, expected = sys.argv[1:4]
try:
    snapshot_download(repo, local_dir=dest)
except Exception as e:
    response = getattr(e, "response", None)
    got = f"{type(e).__name__}/{getattr(response, 'status_code', '-')}"
    print(f"{got}: {e}")
    sys.exit(1 if got == expected else 2)
print(f"downloaded {repo} into {dest}")
EOF
}

step "1. Static scan of the sample folder: malicious pickles must be caught"
expect 1 "malicious samples caught" -- mlgate scan "$SAMPLES/benign" "$SAMPLES/malicious"

step "1b. Dynamic test: the real loader runs each sample inside the sandbox, observed"
# bubblewrap (namespaces), strace (syscall record) and libseccomp are host packages: where one
# is missing the step says so and the rest of the demo goes on.
WHY_NOT=$(sandbox_unavailable)
if [ -n "$WHY_NOT" ]; then
  echo "skipped: $WHY_NOT"
else
  MARKER=$("$PY" -c 'import sys; sys.path.insert(0, "samples"); import payloads
print(payloads.marker("demo1"))')
  rm -f "$MARKER"
  expect 1 "os.system pickle caught as it runs (process and command reported)" -- \
    mlgate sandbox "$SAMPLES/malicious/os_system.pkl"
  expect 1 "its marker was not created on the host" -- test -e "$MARKER"
  expect 0 "benign pickle loaded clean" -- mlgate sandbox "$SAMPLES/benign/config_p4.pkl"
fi

step "2. Create the registry; alice (admin) adds a publisher, a reviewer and the CI reader"
expect 0 "registry initialised" -- mlgate registry init --as alice
expect 0 "pat is a publisher" -- mlgate registry user pat --role publisher --as alice
expect 0 "rita is a reviewer" -- mlgate registry user rita --role reviewer --as alice
expect 0 "ci is a reader" -- mlgate registry user ci --role reader --as alice

step "3. Ingest the benign model: quarantined, scanned, waiting for review"
expect 0 "benign model quarantined and scanned" -- \
  mlgate ingest "$SAMPLES/models/tiny-bert" --name acme/tiny-bert --as pat

step "4. Ingest the malicious model: the policy rejects it automatically"
expect 1 "malicious model auto-rejected" -- \
  mlgate ingest "$SAMPLES/models/evil-bert" --name acme/evil-bert --as pat
expect 2 "a rejected model cannot be approved" -- \
  mlgate approve acme/evil-bert@1 --reason "looks fine" --as rita

step "5. Review and publish: rita approves, pat publishes (signed, ML-BOM attached)"
expect 0 "approved by a second person" -- \
  mlgate approve acme/tiny-bert@1 --reason "weights only, licence ok" --as rita
expect 0 "published as production" -- \
  mlgate publish acme/tiny-bert@1 --alias production --as pat
expect 0 "ML-BOM written" -- mlgate models bom acme/tiny-bert@production \
  -o build/tiny-bert.cdx.json --as ci
mlgate models list --as ci

step "6. Deploy: pull production and run the admission gate (must pass)"
expect 0 "pulled (download recorded)" -- mlgate pull acme/tiny-bert@production build/deploy --as ci
expect 0 "admitted" -- mlgate admit build/deploy --as ci

step "7. A tampered copy must be refused"
cp -r build/deploy build/tampered
printf 'X' | dd of=build/tampered/model.safetensors bs=1 seek=100 conv=notrunc status=none
expect 1 "tampered copy refused" -- mlgate admit build/tampered --as ci

step "8. Audit: the tamper-evident log of everything above"
expect 0 "head of the log signed (checkpoint)" -- mlgate audit checkpoint --as alice
expect 0 "audit log verified" -- mlgate audit verify --as ci
expect 0 "registry consistent" -- mlgate registry check --as ci

step "9. The hub: a reader token for ci, then \`mlgate serve\` on 127.0.0.1"
TOKEN=$(mlgate token create --label "demo client" --roles reader --expires-in 1 --as ci) ||
  { echo "demo: FAILED: no token created"; exit 1; }
PORT=$(free_port)
# --no-worker: no background jobs here (no upstream to pull from; see docs/hub.md).
"$PY" -m mlgate serve --port "$PORT" --no-worker --log-level warning >build/hub-serve.log 2>&1 &
SERVER=$!
trap 'kill "$SERVER" 2>/dev/null; wait "$SERVER" 2>/dev/null' EXIT
expect 0 "hub answering on http://127.0.0.1:$PORT" -- wait_for_hub "$PORT" "$SERVER"

# The real Hugging Face client pointed at the hub; its cache and token store under build/.
export HF_ENDPOINT="http://127.0.0.1:$PORT" HF_HOME=build/hub-hf-home HF_TOKEN="$TOKEN"
export HF_HUB_DISABLE_TELEMETRY=1 HF_HUB_DISABLE_UPDATE_CHECK=1

step "10. ci downloads the published model with \`hf download\` and admits it"
expect 0 "downloaded through the hub (mlgate.sig beside the files)" -- \
  hf download acme/tiny-bert --revision production --local-dir build/hub-download
ls -A build/hub-download
expect 0 "the downloaded folder is admitted" -- \
  mlgate admit build/hub-download --expect acme/tiny-bert@production --as ci

step "11. Quarantined and rejected models are refused with the reason (GatedRepoError)"
expect 0 "a new model ingested, scanned, awaiting review" -- \
  mlgate ingest "$SAMPLES/models/tiny-bert" --name acme/tiny-bert-next --as pat
expect 1 "model pending review refused" -- \
  download acme/tiny-bert-next build/hub-pending GatedRepoError/403
expect 1 "rejected model refused" -- download acme/evil-bert build/hub-refused GatedRepoError/403

step "11b. The web console: rita logs in with her token and rejects the waiting model"
RITA=$(mlgate token create --label "rita's browser" --roles reviewer --expires-in 1 --as rita) ||
  { echo "demo: FAILED: no token created for rita"; exit 1; }
expect 0 "rejected from the console's review queue (cookie session, CSRF token)" -- \
  console_reject "$RITA" acme/tiny-bert-next "demo: superseded"
mlgate models show acme/tiny-bert-next --as ci | grep -i -m 3 "rejected\|rita"

step "12. Without a valid token nothing is served"
expect 1 "no token: refused (401)" -- \
  without_token download acme/tiny-bert build/hub-anonymous HfHubHTTPError/401
TOKEN_ID=${TOKEN#mlg_}
expect 0 "token revoked" -- mlgate token revoke "${TOKEN_ID%%_*}" --as ci
expect 1 "revoked token: refused (401)" -- \
  download acme/tiny-bert build/hub-revoked HfHubHTTPError/401
expect 0 "audit log verified (hub downloads recorded as ci)" -- mlgate audit verify --as ci
echo
echo "demo: every step behaved as expected"
