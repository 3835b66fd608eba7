#!/usr/bin/env bash
# Runs every test of mailsync: installs what is missing, checks formatting, builds the debug and
# the ASan+UBSan presets, runs clang-tidy on the sources the last commit changed, starts the
# throwaway local stack, runs the unit and integration tests under both builds, and stops the
# stack even when tests fail.
# Exits non-zero on any failure.
#
#   tests/run.sh                          everything (what CI runs)
#   MAILSYNC_TEST_PRESETS=debug tests/run.sh   one build only (faster while developing)
#   MAILSYNC_CTEST_ARGS="-R Migrate" tests/run.sh   pass a filter to ctest
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
presets=${MAILSYNC_TEST_PRESETS:-"debug asan"}
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

step "start the local stack"
stack=$(deploy/local/up.sh)
trap 'step "stop the local stack"; deploy/local/down.sh "$stack"' EXIT
# shellcheck disable=SC1091
. "$stack/env"

status=0
for preset in $presets; do
  step "tests ($preset)"
  # shellcheck disable=SC2086
  ctest --preset "$preset" -j "$jobs" ${MAILSYNC_CTEST_ARGS:-} || status=1
done

if ((status == 0)); then step "all tests passed"; else step "TESTS FAILED"; fi
exit $status
