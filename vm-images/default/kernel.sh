#!/usr/bin/env bash
# Stage 1 of the default image: the distribution's kernel, unpacked for direct boot.
# Usage: kernel.sh OUT_DIR
# Writes OUT_DIR/vmlinux (uncompressed ELF with a PVH entry, so QEMU boots it without the
# in-guest decompressor), OUT_DIR/modules/<version>/ and OUT_DIR/version.
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"
out=$(realpath -m "$1")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

meta=linux-image-amd64
echo "resolving $meta from this host's apt sources"
pkg=$(apt-cache depends "$meta" 2>/dev/null | awk '/Depends: linux-image-/ {print $2; exit}')
if [ -z "$pkg" ]; then
  echo "error: apt knows no $meta; run 'apt-get update' (Debian hosts only for now)" >&2
  exit 1
fi
echo "downloading $pkg"
apt-get download -q "$pkg" 2>&1 | grep -v '^W: Download is performed unsandboxed' || true
deb=$(ls ./*.deb)
dpkg-deb -x "$deb" root
vmlinuz=$(ls root/boot/vmlinuz-*)
version=${vmlinuz##*/vmlinuz-}

echo "unpacking the kernel image ($version)"
# The bzImage carries an XZ payload; its stream starts with FD 37 7A 58 5A 00.
offset=$(LC_ALL=C grep -abo $'\xfd7zXZ\x00' "$vmlinuz" | head -n 1 | cut -d: -f1)
[ -n "$offset" ] || { echo "error: no XZ payload in $vmlinuz" >&2; exit 1; }
tail -c +"$((offset + 1))" "$vmlinuz" | xz -dc > vmlinux 2>/dev/null || true
head -c 4 vmlinux | grep -q $'\x7fELF' || { echo "error: unpacked kernel is not an ELF" >&2; exit 1; }

mkdir -p "$out/modules"
mv vmlinux "$out/vmlinux"
cp -a "root/lib/modules/$version" "$out/modules/"
echo "$version" > "$out/version"
echo "kernel $version ready"
