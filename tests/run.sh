#!/usr/bin/env bash
# Runs every test of mailsync: installs what is missing, checks formatting, builds the debug and
# the ASan+UBSan presets, runs clang-tidy on the sources the last commit changed, starts the
# throwaway local stack under each profile (plain Dovecot, then Dovecot behaving like Gmail and
# Outlook.com), runs the unit and integration tests under both builds, and stops the stack even
# when tests fail.
# Exits non-zero on any failure.
#
#   tests/run.sh                          everything (what CI runs)
#   MAILSYNC_TEST_PRESETS=debug tests/run.sh   one build only (faster while developing)
#   MAILSYNC_TEST_PROFILES=providers tests/run.sh   one stack profile only (the first one listed
#                                         also runs the unit and PostgreSQL-only tests)
#   MAILSYNC_CTEST_ARGS="-R Migrate" tests/run.sh   pass a filter to ctest
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
presets=${MAILSYNC_TEST_PRESETS:-"debug asan"}
profiles=${MAILSYNC_TEST_PROFILES:-"dovecot providers"}
jobs=$(nproc)

step() { printf '\n==> %s\n' "$*" >&2; }

step "install dependencies"
deploy/local/install-deps.sh

step "check formatting (clang-format)"
deploy/local/check-format.sh

for preset in $presets; do
  step "build $preset"
  cmake --preset "$preset" >/dev/null
  cmake --build --preset "$preset" -j "$jobs"
done

step "clang-tidy on the sources the last change touched"
MAILSYNC_TIDY_BUILD=build/$(set -- $presets; echo "$1") deploy/local/check-tidy.sh

# The integration tests that talk IMAP run twice: against plain Dovecot and against the
# "providers" profile, where the servers behave like Gmail and Outlook.com (deploy/local/up.sh).
# Unit and PostgreSQL-only tests do not depend on the profile and run once, with the first.
status=0
stack=
trap 'if [[ -n $stack ]]; then step "stop the local stack"; deploy/local/down.sh "$stack"; fi' EXIT
first=1
for profile in $profiles; do
  step "start the local stack ($profile profile)"
  stack=$(deploy/local/up.sh --profile "$profile")
  # shellcheck disable=SC1091
  . "$stack/env"
  for preset in $presets; do
    step "tests ($preset, $profile profile)"
    select=()
    ((first)) || select=(-L integration-stack)
    # shellcheck disable=SC2086
    ctest --preset "$preset" -j "$jobs" "${select[@]}" ${MAILSYNC_CTEST_ARGS:-} || status=1
  done
  step "stop the local stack ($profile profile)"
  deploy/local/down.sh "$stack"
  stack=
  first=0
done

if ((status == 0)); then step "all tests passed"; else step "TESTS FAILED"; fi
exit $status
