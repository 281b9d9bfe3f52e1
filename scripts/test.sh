#!/usr/bin/env bash
# The whole test suite, from a fresh Debian/Ubuntu machine: installs what is missing, builds,
# builds the test guest image, then runs the gates and every test (real VMs included).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

scripts/install-deps.sh
echo "==> front end: typecheck, unit tests, build (ui/dist is embedded in the app)"
(cd ui && npm run typecheck && npm test && npx vite build)
scripts/build.sh --debug

echo "==> building the test guest image (cached in target/berth-test-data)"
target/debug/berth --data-dir target/berth-test-data image build

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy"
cargo clippy --locked --workspace --all-targets -- -D warnings
echo "==> cargo test"
# Real-VM tests are heavy under TCG on a 2-core machine: run two test threads at most.
cargo test --locked --workspace -- --test-threads=2
echo "==> the desktop app end to end (real window under Xvfb, tauri-driver; screenshots in target/e2e-artifacts)"
cargo build --locked -p berth-app --features custom-protocol
# WebKitWebDriver intermittently drops its connection mid-run (about 1 run in 5 here, after the
# pull step; its log shows only "connection reset"). A real regression fails every run, so up
# to 3 runs are allowed; each failure's driver log stays in target/e2e-artifacts/.
for run in 1 2 3; do
  if xvfb-run -a -s "-screen 0 1280x800x24" python3 tests/e2e/app_e2e.py; then break; fi
  cp target/e2e-artifacts/driver-and-app.log "target/e2e-artifacts/driver-and-app.failed-run-$run.log" || true
  if [ "$run" = 3 ]; then echo "the app end-to-end suite failed 3 times" >&2; exit 1; fi
  echo "==> the app end-to-end suite failed (run $run of 3); running it again"
done
echo "==> all gates and tests passed in ${SECONDS}s"
