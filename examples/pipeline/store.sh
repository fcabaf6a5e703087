#!/bin/sh
# Stage 3: append the parsed page to pages.jsonl (one line per page), unless a run before
# this one already did: a message is delivered again when its worker dies before the ack.
set -eu
line=$(jq -c .)
touch pages.jsonl
grep -qxF -e "$line" pages.jsonl || printf '%s\n' "$line" >> pages.jsonl
