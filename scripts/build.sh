#!/usr/bin/env bash
# Builds `berth` and the static guest agent it puts into images.
# Usage: scripts/build.sh [--debug]   (release by default)
set -euo pipefail
cd "$(dirname "$0")/.."
profile=release; flag=--release
if [ "${1:-}" = "--debug" ]; then profile=debug; flag=; fi

echo "==> building berth ($profile)"
cargo build $flag --locked -p berth-cli
# The agent runs inside any guest image, so it is linked statically. An explicit --target
# keeps these RUSTFLAGS away from build scripts and proc macros (and from the host build).
echo "==> building the static guest agent"
RUSTFLAGS="-C target-feature=+crt-static" \
  cargo build --release --locked -p berth-agent --target x86_64-unknown-linux-gnu
echo "==> built target/$profile/berth and target/x86_64-unknown-linux-gnu/release/berth-agent"
