#!/usr/bin/env bash
# clang-tidy (.clang-tidy) on the product sources a change touched, and fails when a warning points
# into one of them: a change leaves the files it touches clean (the rest is not re-checked each
# run: one file costs about 20 s of clang-tidy here).
#
#   deploy/local/check-tidy.sh            the files changed by the last commit (HEAD~1..HEAD) and
#                                         any uncommitted ones
#   deploy/local/check-tidy.sh origin/main   the files changed since that commit
# Needs a configured build with compile_commands.json (MAILSYNC_TIDY_BUILD, default build/debug).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
build=${MAILSYNC_TIDY_BUILD:-build/debug}
base=${1:-HEAD~1}
command -v clang-tidy >/dev/null || { echo "check-tidy: clang-tidy is not installed" >&2; exit 1; }
[[ -f $build/compile_commands.json ]] || { echo "check-tidy: no $build/compile_commands.json" >&2; exit 1; }
if ! git rev-parse --verify -q "$base^{commit}" >/dev/null; then
  echo "check-tidy: no commit $base to compare with; nothing checked" >&2
  exit 0
fi
paths=(common worker scheduler admin)
mapfile -t changed < <({ git diff --name-only --diff-filter=AMR "$base" -- "${paths[@]}"; \
  git ls-files --others --exclude-standard -- "${paths[@]}"; } | grep -E '\.(cpp|hpp)$' | sort -u)
mapfile -t sources < <(printf '%s\n' "${changed[@]}" | grep -E '\.cpp$' || true)
if ((${#sources[@]} == 0)); then
  echo "check-tidy: no C++ source changed since $base" >&2
  exit 0
fi
echo "check-tidy: ${#sources[@]} changed sources since $base" >&2
out=$(printf '%s\n' "${sources[@]}" | xargs -P "$(nproc)" -n1 clang-tidy -p "$build" --quiet 2>/dev/null || true)
bad=$(printf '%s\n' "$out" | grep -E ': (warning|error): ' | grep -F -f <(printf "$PWD/%s:\n" "${changed[@]}") || true)
if [[ -n $bad ]]; then
  echo "check-tidy: clang-tidy warnings in the changed files:" >&2
  printf '%s\n' "$bad" | sort -u >&2
  exit 1
fi
echo "check-tidy: clean" >&2
