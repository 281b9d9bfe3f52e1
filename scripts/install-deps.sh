#!/usr/bin/env bash
# Installs what Berth needs on a Debian/Ubuntu host: QEMU, the image-building tools and
# virtiofsd. Idempotent: a second run only checks. Needs root or sudo for apt.
set -euo pipefail
cd "$(dirname "$0")/.."

# QEMU (qemu-system-x86, qemu-system-common, qemu-utils) is installed at one version chosen by
# scripts/lib/qemu-apt.sh; everything else here takes apt's own choice.
. scripts/lib/qemu-apt.sh
APT_PACKAGES=(
  mmdebstrap busybox-static      # guest image: root filesystem and initramfs
  cpio e2fsprogs xz-utils kmod   # guest image: packing and depmod
  libseccomp-dev libcap-ng-dev   # to build virtiofsd
  pkg-config
  libwebkit2gtk-4.1-dev libgtk-3-dev librsvg2-dev   # the desktop app (Tauri 2)
  libayatana-appindicator3-dev libxdo-dev libssl-dev
  xvfb webkit2gtk-driver         # the app's window in headless tests, and its WebDriver
  dbus-daemon python3-dbus python3-gi   # a private session bus and notification server in tests
  desktop-file-utils dpkg-dev    # checking the .deb's desktop entry; dpkg-deb
  libdbus-1-dev keyutils         # secrets: the Secret Service client; keyctl (tests use the kernel keyring)
  python3-pip                    # `berth agent install aider` fetches wheels with the user's pip
)

sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi

# "VERSION" when all three QEMU packages are installed at one version, else empty.
qemu_installed_version() {
  local p v first=""
  for p in "${QEMU_PACKAGES[@]}"; do
    v="$(dpkg-query -W -f='${Status} ${Version}' "$p" 2>/dev/null)" || return 0
    case "$v" in "install ok installed "*) v="${v#install ok installed }" ;; *) return 0 ;; esac
    if [ -z "$first" ]; then first="$v"; elif [ "$v" != "$first" ]; then return 0; fi
  done
  echo "$first"
}

missing=()
for p in "${APT_PACKAGES[@]}"; do
  case "$p" in \#*) continue ;; esac
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
qemu_now="$(qemu_installed_version)"
if [ "${#missing[@]}" -gt 0 ] || [ -z "$qemu_now" ]; then
  "${sudo_cmd[@]}" apt-get update -q
  qemu_args=() apt_flags=()
  if [ -z "$qemu_now" ]; then
    plan="$(LC_ALL=C apt-cache policy "${QEMU_PACKAGES[@]}" | qemu_plan)"
    read -r verb version mode why <<<"$plan"
    case "$verb" in
      install)
        echo "==> qemu: installing ${QEMU_PACKAGES[*]} at $version: $why"
        for p in "${QEMU_PACKAGES[@]}"; do qemu_args+=("$p=$version"); done
        if [ "$mode" = downgrade ]; then apt_flags+=(--allow-downgrades); fi
        ;;
      keep) ;;
      *) echo "error: cannot choose a QEMU version: ${plan#error }" >&2; exit 1 ;;
    esac
  fi
  if [ "${#missing[@]}" -gt 0 ]; then echo "==> installing Debian packages: ${missing[*]}"; fi
  # The whole list, not only the missing ones, in one apt call with QEMU's pinned versions, so
  # apt resolves everything together.
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends \
    "${apt_flags[@]}" "${APT_PACKAGES[@]}" "${qemu_args[@]}"
  if [ -z "$(qemu_installed_version)" ]; then
    echo "error: QEMU's packages still differ in version after apt:" >&2
    dpkg-query -W "${QEMU_PACKAGES[@]}" >&2 || true
    exit 1
  fi
fi
for c in qemu-system-x86_64 qemu-img mmdebstrap busybox depmod cpio mkfs.ext4 WebKitWebDriver xvfb-run dbus-run-session desktop-file-validate keyctl; do
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
