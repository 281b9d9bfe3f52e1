#!/usr/bin/env bash
# Stage 3 of the default image: a small initramfs (busybox, the virtio/ext4/virtiofs modules,
# the guest agent and ./init). Left uncompressed: under TCG, unpacking costs more than reading.
# Usage: initramfs.sh OUT_FILE KERNEL_DIR AGENT_BINARY RECIPE_DIR
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"
out=$(realpath -m "$1"); kernel=$(realpath "$2"); agent=$(realpath "$3"); recipe=$(realpath "$4")
version=$(cat "$kernel/version")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

busybox=/bin/busybox   # from busybox-static: no shared libraries needed in the initramfs
[ -x "$busybox" ] || { echo "error: $busybox is missing; install busybox-static" >&2; exit 1; }

mkdir -p "$work"/{bin,dev,proc,sys,newroot,run,lib/modules/"$version"}
cp "$busybox" "$work/bin/busybox"
cp "$agent" "$work/berth-agent"
install -m 0755 "$recipe/init" "$work/init"

src="$kernel/modules/$version"
want="virtio virtio_ring virtio_mmio virtio_blk virtio_console crc16 crc32c_generic mbcache jbd2 ext4 fuse virtiofs failover net_failover virtio_net virtio_balloon"
for m in $want; do
  f=$(find "$src/kernel" -name "$m.ko*" | head -n 1)
  [ -n "$f" ] || { echo "error: module $m missing from kernel $version" >&2; exit 1; }
  mkdir -p "$work/lib/modules/$version/$(dirname "${f#"$src"/}")"
  dest="$work/lib/modules/$version/${f#"$src"/}"
  cp "$f" "$dest"
  # Without its appended signature: the guest kernel then loads it without hashing and
  # verifying it, which under TCG took a third of the modules' load time. (The guest is not
  # trusted anyway; this only skips a check inside it.) Layout of the tail: signature,
  # struct module_signature (12 bytes, its last 4 the signature's length, big-endian), magic.
  magic="~Module signature appended~"
  if [ "$(tail -c 28 "$dest" | head -c 27)" = "$magic" ]; then
    siglen=$(tail -c 32 "$dest" | head -c 4 | od -An -tu1 | awk '{print ($1*16777216)+($2*65536)+($3*256)+$4}')
    size=$(stat -c %s "$dest")
    truncate -s $((size - 28 - 12 - siglen)) "$dest"
  fi
done
for f in modules.builtin modules.builtin.modinfo modules.order; do
  if [ -f "$src/$f" ]; then cp "$src/$f" "$work/lib/modules/$version/"; fi
done
depmod -b "$work" "$version"

(cd "$work" && find . -print0 | cpio --null --create --format=newc --owner=0:0 --quiet) > "$out"
echo "initramfs ready ($(du -h "$out" | cut -f1))"
