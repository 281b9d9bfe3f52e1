#!/usr/bin/env bash
# Checks a built Berth .deb: what it installs where, its dependencies, a valid desktop entry
# and icon, a CLI that runs, and a static guest agent. Usage: packaging/check-deb.sh FILE.deb
set -euo pipefail
deb="$1"
fail() { echo "check-deb: $*" >&2; exit 1; }
[ -f "$deb" ] || fail "no such file: $deb"
x="$(mktemp -d)"; trap 'rm -rf "$x"' EXIT
dpkg-deb -x "$deb" "$x"
for f in usr/bin/berth-app usr/bin/berth usr/lib/berth/berth-agent usr/lib/berth/virtiofsd \
         usr/share/applications/Berth.desktop usr/share/icons/hicolor/128x128/apps/berth-app.png; do
  [ -e "$x/$f" ] || fail "$f is missing"
done
[ "$(dpkg-deb -f "$deb" Package)" = berth ] || fail "the package is not named berth"
depends="$(dpkg-deb -f "$deb" Depends)"
# What a clean machine needs to build an image (xz-utils unpacks the kernel) and to run the
# bundled virtiofsd.
for d in qemu-system-x86 qemu-utils mmdebstrap busybox-static cpio e2fsprogs kmod xz-utils \
         libseccomp2 libcap-ng0 libwebkit2gtk-4.1-0; do
  case ", $depends," in *", $d,"*|*", $d "*) ;; *) fail "Depends lacks $d: $depends" ;; esac
done
desktop-file-validate "$x/usr/share/applications/Berth.desktop"
grep -qx 'Exec=berth-app' "$x/usr/share/applications/Berth.desktop" || fail "the desktop entry does not run berth-app"
grep -qx 'Icon=berth-app' "$x/usr/share/applications/Berth.desktop" || fail "the desktop entry has no icon"
"$x/usr/bin/berth" --version | grep -q '^berth ' || fail "the packaged berth does not run"
"$x/usr/lib/berth/virtiofsd" --version | grep -q virtiofsd || fail "the packaged virtiofsd does not run"
# The agent is PID 1 in every guest: it must not need the host's libc.
if ldd "$x/usr/lib/berth/berth-agent" 2>&1 | grep -q '=>'; then fail "berth-agent is dynamically linked"; fi
echo "check-deb: $deb is fine ($(du -h "$deb" | cut -f1); depends: $depends)"
