#!/usr/bin/env bash
# Stage 2 of the default image: the guest's root filesystem, from Debian packages only.
# Usage: rootfs.sh OUT_IMAGE
# Uses this host's apt sources (mmdebstrap's default), so no mirror is named here.
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"
out=$(realpath -m "$1")
size=${BERTH_ROOTFS_SIZE:-2G}
. /etc/os-release
suite=${VERSION_CODENAME:?/etc/os-release names no VERSION_CODENAME}

packages=bash,coreutils,git,ca-certificates,curl,passwd,procps,less,findutils,grep,sed,python3
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
