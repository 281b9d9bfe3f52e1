#!/usr/bin/env bash
# Unit tests of qemu_plan (scripts/lib/qemu-apt.sh), fed with `apt-cache policy` output of each
# machine kind install-deps.sh meets. Needs only bash, awk and dpkg.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/../lib/qemu-apt.sh"

V7=1:7.2+dfsg-7+deb12u18+b3
V10=1:10.0.2+ds-2+deb13u1~bpo12+1
fixture() { case "$1" in /*) echo "$1" ;; *) echo "$here/apt-policy/$1" ;; esac; }
passed=0 failed=0
check() { # NAME FIXTURE EXPECTED-PREFIX [EXPECTED-SUBSTRING]
  local got
  got="$(qemu_plan < "$(fixture "$2")")"
  if [[ "$got" == "$3"* && "$got" == *"${4:-}"* ]]; then
    passed=$((passed + 1)); echo "ok   $1"
  else
    failed=$((failed + 1)); echo "FAIL $1"; echo "     want: $3…${4:+ …$4…}"; echo "     got:  $got"
  fi
}

# The machine CI and newcomers get: a backported qemu-utils, no apt source for its version.
check fresh_machine_with_newer_qemu_utils_goes_down_to_what_apt_has \
  newer-utils-no-source.txt "install $V7 downgrade" "qemu-utils $V10"
check plain_debian_without_qemu_gets_apts_candidate \
  no-qemu.txt "install $V7 plain" "the version apt installs"
check consistent_qemu_is_kept_without_apt consistent.txt "keep $V7"
check matching_newer_qemu_system_keeps_the_newer_qemu_utils \
  newer-utils-matching-source.txt "install $V10 plain" "keeps the installed $V10"
check installed_but_mismatched_pair_meets_at_the_installable_version \
  installed-mismatch.txt "install $V7 downgrade"
check no_installable_version_is_an_error_not_a_guess no-source.txt "error " "apt-cache policy"
check empty_policy_is_an_error /dev/null "error "

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
