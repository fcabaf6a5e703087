#!/bin/sh
# Stage 2: parse a fetched page: its <title> and its size.
set -eu
jq -c '{url, title: (.body | capture("<title>(?<t>[^<]*)</title>").t // null), bytes: (.body | length)}'
