#!/bin/sh
# Stage 1: fetch the page at .url; print {"url", "body"} for the next stage.
set -eu
url=$(jq -er .url)
body=$(curl -fsS --max-time 30 "$url")
jq -cn --arg url "$url" --arg body "$body" '{url: $url, body: $body}'
