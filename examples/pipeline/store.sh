#!/bin/sh
# Stage 3: append the parsed page to pages.jsonl (one line per page).
set -eu
jq -c . >> pages.jsonl
