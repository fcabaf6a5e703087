#!/bin/sh
# A `localqueue queue exec` handler: POST one webhook per message.
#
#   localqueue queue add webhooks --value '{"url": "https://example.com/hook", "event": "signup", "data": {"user": 42}}'
#   localqueue queue exec webhooks -- examples/process_webhook.sh
#
# The message value arrives as one JSON line on stdin; LOCALQUEUE_MESSAGE_ID and
# LOCALQUEUE_ATTEMPT are in the environment. Exit 0 acks the message; any other status
# (a missing field, a connection error, an HTTP error thanks to --fail) releases it for
# another attempt, and it is dead-lettered once --max-tries attempts are spent.
set -eu

payload=$(cat)
url=$(printf '%s\n' "$payload" | jq -er '.url')
body=$(printf '%s\n' "$payload" | jq -c '{
  event: .event,
  data: .data,
  message_id: env.LOCALQUEUE_MESSAGE_ID,
  attempt: (env.LOCALQUEUE_ATTEMPT | tonumber)
}')

# The message id makes a retried delivery recognisable as the same webhook.
curl --fail --silent --show-error --max-time 10 \
  --header 'Content-Type: application/json' \
  --header "Idempotency-Key: $LOCALQUEUE_MESSAGE_ID" \
  --data "$body" --output /dev/null \
  "$url"
