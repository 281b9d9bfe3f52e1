#!/usr/bin/env bash
# Stage 2 of the default image: the guest's root filesystem, from Debian packages only.
# Usage: rootfs.sh OUT_IMAGE
# Uses this host's apt sources (mmdebstrap's default), so no mirror is named here.
# Environment (an environment's package layer, see crates/berth-vm/src/image/build.rs):
#   BERTH_SUITE           Debian release (default: this host's)
#   BERTH_EXTRA_PACKAGES  comma-separated packages added to the base ones
#   BERTH_ROOTFS_SIZE     size of the ext4 image (default 3G)
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"
out=$(realpath -m "$1")
size=${BERTH_ROOTFS_SIZE:-3G}
. /etc/os-release
suite=${BERTH_SUITE:-${VERSION_CODENAME:?/etc/os-release names no VERSION_CODENAME}}

# The base every attempt gets: a shell and git, a C toolchain, Python with pip and venv.
packages=bash,coreutils,git,ca-certificates,curl,passwd,procps,less,findutils,grep,sed,python3
packages=$packages,build-essential,python3-pip,python3-venv
if [ -n "${BERTH_EXTRA_PACKAGES:-}" ]; then packages=$packages,$BERTH_EXTRA_PACKAGES; fi
echo "building a $suite root filesystem with: $packages"
mmdebstrap --mode=auto --variant=minbase --format=null --skip=chroot/mount \
  --include="$packages" \
  --customize-hook='chroot "$1" useradd --create-home --uid 1000 --shell /bin/bash agent' \
  --customize-hook='mkdir -p "$1/work" && chown 1000:1000 "$1/work"' \
  --customize-hook='echo berth > "$1/etc/hostname"' \
  --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin "$1"/var/cache/apt/archives/*.deb' \
  --customize-hook="mkfs.ext4 -q -F -L berth-root -d \"\$1\" '$out' $size" \
  "$suite" /dev/null
echo "root filesystem ready"
