#!/usr/bin/env bash
# Coverage-guided fuzzing of one target with libFuzzer (clang, ASan + UBSan), starting from the
# seed corpus; new interesting inputs go to build/fuzz/corpus/TARGET (add the useful ones to
# tests/fuzz/corpus/TARGET). Crashes are written to build/fuzz/ as crash-*.
#
#   tests/fuzz/run.sh imap_response 600      # ten minutes
#   tests/fuzz/run.sh mutf7 600
#   tests/fuzz/run.sh rfc822 600
#   tests/fuzz/run.sh oauth_token 600
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
target=${1:?usage: run.sh imap_response|mutf7|rfc822|oauth_token [SECONDS]}
seconds=${2:-600}
case $target in
  imap_response) sources=(common/src/imap/parser.cpp common/src/util/strings.cpp) ;;
  mutf7) sources=(common/src/imap/utf7.cpp) ;;
  rfc822) sources=(common/src/mail/rfc822.cpp) ;;
  oauth_token) sources=(common/src/oauth/token_response.cpp) ;;
  *) echo "unknown target $target" >&2; exit 2 ;;
esac
dpkg-query -W -f='${Status}' clang libclang-rt-14-dev 2>/dev/null | grep -q "^install ok installed.*install ok installed$" ||
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clang libclang-rt-14-dev >/dev/null
out=$root/build/fuzz
mkdir -p "$out/corpus/$target"
cd "$root"
clang++ -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  -Icommon/include "tests/fuzz/${target}_fuzz.cpp" "${sources[@]}" -o "$out/$target"
cd "$out"
"./$target" -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
  "corpus/$target" "$root/tests/fuzz/corpus/$target"
