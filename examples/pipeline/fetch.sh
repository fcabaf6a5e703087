#!/bin/sh
# Stage 1: fetch the page at .url; print {"url", "body"} for the next stage. curl -f fails
# the job on an HTTP error; --retry tries a timeout, a 429 or a 5xx again first.
set -eu
url=$(jq -er .url)
body=$(curl -fsS --max-time 30 --retry 2 "$url")
jq -cn --arg url "$url" --arg body "$body" '{url: $url, body: $body}'
