# Chooses one QEMU version for qemu-system-x86, qemu-system-common and qemu-utils.
# Sourced by scripts/install-deps.sh; unit-tested by scripts/tests/qemu-apt.test.sh.
#
# Why: a machine can come with a newer qemu-utils (a backport) and no apt source for its
# version. Installing qemu-system-x86 next to it then fails ("qemu-utils : Breaks:
# qemu-system-common (< …)"), because apt will not downgrade qemu-utils by itself.

QEMU_PACKAGES=(qemu-system-x86 qemu-system-common qemu-utils)

# qemu_plan: reads `apt-cache policy qemu-system-x86 qemu-system-common qemu-utils` on stdin
# and prints one line:
#   keep VERSION                 all three are installed at VERSION: nothing to do
#   install VERSION MODE WHY…    install all three at VERSION; MODE is `downgrade` when an
#                                installed one goes down, else `plain`; WHY is for the user
#   error WHY…                   no version apt can install for all three
# Choice, in order: the newest version already installed (of any of the three) that apt can
# install for all three (so a matching newer qemu-system-x86 keeps a newer qemu-utils); else
# the version apt itself would install for qemu-system-x86 (its candidate, honouring pins)
# when the other two exist at it; else the newest version all three exist at.
qemu_plan() {
  local policy
  policy="$(cat)"
  # "pkg installed|candidate|available VERSION" rows; `available` only for versions that some
  # apt source offers (a row whose only origin is /var/lib/dpkg/status is not installable).
  local rows
  rows="$(printf '%s\n' "$policy" | awk '
    /^[^ ].*:$/ { pkg = substr($0, 1, length($0) - 1); ver = ""; next }
    /^  Installed: / { print pkg, "installed", $2; next }
    /^  Candidate: / { print pkg, "candidate", $2; next }
    /^ (\*\*\*|   ) [^ ]+ -?[0-9]+$/ { ver = ($1 == "***") ? $2 : $1; next }
    /^        -?[0-9]+ / { if (ver != "" && $2 != "/var/lib/dpkg/status") print pkg, "available", ver; next }
  ' | sort -u)"

  local p installed=() all_installed="" same=1 first=""
  for p in "${QEMU_PACKAGES[@]}"; do
    local v
    v="$(printf '%s\n' "$rows" | awk -v p="$p" '$1 == p && $2 == "installed" { print $3 }')"
    [ -n "$v" ] || v="(none)"
    installed+=("$v")
    all_installed+="$p $v, "
    if [ -z "$first" ]; then first="$v"; elif [ "$v" != "$first" ]; then same=0; fi
  done
  if [ "$same" = 1 ] && [ "$first" != "(none)" ]; then
    echo "keep $first"
    return 0
  fi

  # Versions all three can be installed at (installed already counts for that package).
  local common=() cand
  cand="$(printf '%s\n' "$rows" | awk '$1 == "qemu-system-x86" && $2 == "available" { print $3 }' | sort -u)"
  local v ok
  for v in $cand; do
    ok=1
    for p in qemu-system-common qemu-utils; do
      printf '%s\n' "$rows" | awk -v p="$p" -v v="$v" '$1 == p && ($2 == "available" || $2 == "installed") && $3 == v { f = 1 } END { exit !f }' || ok=0
    done
    [ "$ok" = 1 ] && common+=("$v")
  done
  if [ "${#common[@]}" = 0 ]; then
    echo "error apt offers no version of qemu-system-x86 that qemu-system-common and qemu-utils also have (installed: ${all_installed%, }); check the apt sources (apt-cache policy ${QEMU_PACKAGES[*]})"
    return 0
  fi

  local chosen="" why=""
  # 1. the newest installed version that all three can have
  local i best=""
  for i in "${installed[@]}"; do
    [ "$i" = "(none)" ] && continue
    for v in "${common[@]}"; do
      if [ "$v" = "$i" ] && { [ -z "$best" ] || dpkg --compare-versions "$v" gt "$best"; }; then best="$v"; fi
    done
  done
  if [ -n "$best" ]; then
    chosen="$best"; why="keeps the installed $best and brings the others to it"
  else
    local candidate
    candidate="$(printf '%s\n' "$rows" | awk '$1 == "qemu-system-x86" && $2 == "candidate" { print $3 }')"
    for v in "${common[@]}"; do
      [ "$v" = "$candidate" ] && chosen="$v"
    done
    if [ -n "$chosen" ]; then
      why="the version apt installs for qemu-system-x86"
    else
      for v in "${common[@]}"; do
        if [ -z "$chosen" ] || dpkg --compare-versions "$v" gt "$chosen"; then chosen="$v"; fi
      done
      why="the newest version apt has for all three"
    fi
  fi

  local mode=plain downs=()
  for idx in 0 1 2; do
    i="${installed[$idx]}"
    if [ "$i" != "(none)" ] && dpkg --compare-versions "$i" gt "$chosen"; then
      mode=downgrade; downs+=("${QEMU_PACKAGES[$idx]} $i")
    fi
  done
  if [ "$mode" = downgrade ]; then
    why="$why; apt has no qemu-system-x86 matching ${downs[*]}, so it goes down to $chosen"
  fi
  echo "install $chosen $mode $why (installed: ${all_installed%, })"
}
