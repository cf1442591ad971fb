#!/usr/bin/env bash
# Compares `edge-agent analyze --json` of two builds on the same inputs, apart from what differs on every
# run: event ids (fresh UUIDv7s) and clock times (a video's wall times count from when analysis started).
#
#   scripts/analyze-compare.sh OLD_BINARY NEW_BINARY [INPUT...]
#
# Inputs default to the clips the tests render from the shared photos (target/test-clips, made by
# `make test`) and the shared scene photos. Each input is analysed with the frames overlapping and one at a
# time, with and without motion gating, with the per-frame detections. Exit status 0: identical.
set -euo pipefail
OLD=${1:?old binary}
NEW=${2:?new binary}
shift 2
SHARED=${SHARED:-../shared}
if [ $# -eq 0 ]; then
  set -- target/test-clips/*.mp4 "$SHARED/data/plates-scenes"
fi
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# Ids and times out, everything else byte for byte.
mask() {
  python3 -c '
import re, sys
uuid = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
time = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)")
for line in sys.stdin:
    sys.stdout.write(time.sub("<time>", uuid.sub("<id>", line)))
'
}

status=0
for input in "$@"; do
  [ -e "$input" ] || { echo "skipped (missing): $input"; continue; }
  for flags in "--pipeline on" "--pipeline off" "--motion off" "--detections"; do
    name=$(basename "$input")-${flags// /}
    # shellcheck disable=SC2086
    "$OLD" analyze --json $flags "$input" 2>/dev/null | mask > "$WORK/$name.old"
    # shellcheck disable=SC2086
    "$NEW" analyze --json $flags "$input" 2>/dev/null | mask > "$WORK/$name.new"
    if cmp -s "$WORK/$name.old" "$WORK/$name.new"; then
      echo "same      $input $flags ($(wc -l < "$WORK/$name.new") lines)"
    else
      echo "DIFFERENT $input $flags"
      diff "$WORK/$name.old" "$WORK/$name.new" | head -20 || true
      status=1
    fi
  done
done
exit $status
