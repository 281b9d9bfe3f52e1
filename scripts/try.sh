#!/usr/bin/env bash
# Berth's main job on a fresh Debian/Ubuntu machine: install what is missing, build, build the
# guest image, and run the demo (a real task in a real VM with the scripted demo agent, no API
# key). Where a display exists, it then builds and opens the desktop app on the same state.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

./scripts/install-deps.sh
./scripts/build.sh
./target/release/berth image build
./target/release/berth run --demo

if [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]; then
  echo "==> building the desktop app"
  (cd ui && npx vite build)
  cargo build --release --locked -p berth-app --features custom-protocol
  echo "==> opening the app (the demo task is in it)"
  exec ./target/release/berth app
else
  echo "(no display here: run \`./target/release/berth app\` on a desktop to open the app)"
fi
