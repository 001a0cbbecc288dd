#!/usr/bin/env bash
# The main job, end to end on the bundled samples with the embedded registry (SQLite + blob
# store in build/registry): scan, quarantine, auto-reject, review, publish (signature + ML-BOM),
# admission gate on a pulled copy (passes) and a tampered copy (fails), audit log verification.
# Every step states what it expects; the script stops with exit 1 if any outcome differs.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
SAMPLES=${1:-build/samples}
export MLGATE_HOME=build/registry
rm -rf "$MLGATE_HOME" build/deploy build/tampered build/tiny-bert.cdx.json

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

step "1. Static scan of the sample folder: malicious pickles must be caught"
expect 1 "malicious samples caught" -- mlgate scan "$SAMPLES/benign" "$SAMPLES/malicious"

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
echo
echo "demo: every step behaved as expected"
