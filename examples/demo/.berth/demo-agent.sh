#!/bin/bash
# A scripted stand-in for a coding agent, so the demo needs no API key. It runs inside the
# attempt's VM, as the unprivileged user `agent`, in /work (its own clone of the repo).
set -u
say() { echo "[demo agent] $*"; }

say "task: ${BERTH_PROMPT:-make the tests pass} (attempt ${BERTH_ATTEMPT:-?})"
say "running the tests"
python3 -m unittest 2>&1 | tail -n 4
say "the failure is in add(): it subtracts; fixing calc.py"
sed -i 's/return a - b/return a + b/' calc.py
git --no-pager diff --stat
say "running the tests again"
if python3 -m unittest 2>&1 | tail -n 1 | grep -q '^OK'; then
  say "tests pass"
else
  say "tests still fail"; exit 1
fi
git commit -q -am "Fix add() to add instead of subtract" && say "committed the fix"
# Left uncommitted on purpose: Berth commits leftovers for the agent.
echo "Attempt ${BERTH_ATTEMPT:-?}: fixed add() in calc.py; all tests pass." > NOTES.md
say "done"
