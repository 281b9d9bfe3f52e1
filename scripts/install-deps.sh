#!/usr/bin/env bash
# Installs what Berth needs on a Debian/Ubuntu host: QEMU, the image-building tools and
# virtiofsd. Idempotent: a second run only checks. Needs root or sudo for apt.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  qemu-system-x86 qemu-utils     # the hypervisor and qemu-img
  mmdebstrap busybox-static      # guest image: root filesystem and initramfs
  cpio e2fsprogs xz-utils kmod   # guest image: packing and depmod
  libseccomp-dev libcap-ng-dev   # to build virtiofsd
  pkg-config
  libwebkit2gtk-4.1-dev libgtk-3-dev librsvg2-dev   # the desktop app (Tauri 2)
  libayatana-appindicator3-dev libxdo-dev libssl-dev
  xvfb webkit2gtk-driver         # the app's window in headless tests, and its WebDriver
  dbus-daemon python3-dbus python3-gi   # a private session bus and notification server in tests
  desktop-file-utils dpkg-dev    # checking the .deb's desktop entry; dpkg-deb
)

sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi

missing=()
for p in "${APT_PACKAGES[@]}"; do
  case "$p" in \#*) continue ;; esac
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "==> installing Debian packages: ${missing[*]}"
  "${sudo_cmd[@]}" apt-get update -q
  # The whole list, not only the missing ones: installing one package can replace another
  # (qemu-system-x86 swaps out a backported qemu-utils), and apt keeps what is right.
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends \
    "${APT_PACKAGES[@]}"
fi
for c in qemu-system-x86_64 qemu-img mmdebstrap busybox depmod cpio mkfs.ext4 WebKitWebDriver xvfb-run dbus-run-session desktop-file-validate; do
  PATH="$PATH:/usr/sbin:/sbin" command -v "$c" >/dev/null || { echo "error: $c is still missing" >&2; exit 1; }
done

if ! command -v virtiofsd >/dev/null 2>&1 && [ ! -x "$HOME/.cargo/bin/virtiofsd" ]; then
  echo "==> building virtiofsd (cargo install virtiofsd, about 2 minutes)"
  cargo install virtiofsd --locked
fi
if ! command -v tauri-driver >/dev/null 2>&1 && [ ! -x "$HOME/.cargo/bin/tauri-driver" ]; then
  echo "==> building tauri-driver (cargo install tauri-driver, about 2 minutes)"
  cargo install tauri-driver --version '^2' --locked
fi
if [ ! -d ui/node_modules ] && [ -f ui/package-lock.json ]; then
  echo "==> installing the desktop app's front-end packages (npm)"
  # `npm install`, not `npm ci`: this npm leaves other platforms' optional packages out of the
  # lockfile, which `npm ci` then rejects; `install` still takes the locked versions.
  (cd ui && npm install --no-fund --no-audit)
fi
echo "==> dependencies ready"
