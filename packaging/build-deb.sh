#!/usr/bin/env bash
# Builds the desktop app's .deb with the Tauri bundler: berth-app (the window, with its
# desktop entry and icons), the `berth` CLI it runs attempts with, and the static guest
# agent images are built with (/usr/lib/berth/berth-agent), and virtiofsd
# (/usr/lib/berth/virtiofsd), so a clean install can build an image and share a folder.
# Usage: packaging/build-deb.sh [--debug]   (release by default). Prints the .deb's path.
# AppImage: `--bundles appimage` works the same way where the bundler can download its
# linuxdeploy tools; the config is in src-tauri/tauri.conf.json.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
profile=release; flag=()
if [ "${1:-}" = "--debug" ]; then profile=debug; flag=(--debug); fi

scripts/build.sh "${flag[@]}" >&2
mkdir -p target/deb-staging
cp "target/$profile/berth" target/deb-staging/berth
cp target/x86_64-unknown-linux-gnu/release/berth-agent target/deb-staging/berth-agent
# virtiofsd (the Rust one) has no Debian 12 package: it ships inside Berth's.
virtiofsd="$(command -v virtiofsd || echo "$HOME/.cargo/bin/virtiofsd")"
[ -x "$virtiofsd" ] || { echo "virtiofsd is missing; run scripts/install-deps.sh" >&2; exit 1; }
cp "$virtiofsd" target/deb-staging/virtiofsd
[ -x ui/node_modules/.bin/tauri ] || (cd ui && npm install --no-fund --no-audit) >&2
echo "==> bundling the .deb ($profile)" >&2
(cd src-tauri && ../ui/node_modules/.bin/tauri build "${flag[@]}" --bundles deb --ci) >&2
ls -t "target/$profile/bundle/deb/"*.deb | head -n 1
