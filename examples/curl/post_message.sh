#!/usr/bin/env bash
# Post "Hello, world!" through chat-broker and list the space's messages,
# with plain curl: the broker's URL instead of https://chat.googleapis.com,
# the caller secret instead of a Google access token.
#
#   CHAT_BROKER_URL    the broker, e.g. http://127.0.0.1:8080
#   CHAT_BROKER_TOKEN  this app's caller secret
#   CHAT_SPACE         the space (default spaces/DEMO, the demo's)
#   CHAT_BROKER_SOCKET the broker's Unix socket, instead of TCP: there the
#                      kernel tells the broker who the caller is, and
#                      CHAT_BROKER_TOKEN may be left unset
set -euo pipefail

space="${CHAT_SPACE:-spaces/DEMO}"
curl_args=(--silent --show-error --fail-with-body)
if [[ -n "${CHAT_BROKER_SOCKET:-}" ]]; then
  curl_args+=(--unix-socket "$CHAT_BROKER_SOCKET")
  url="${CHAT_BROKER_URL:-http://localhost}"
else
  url="${CHAT_BROKER_URL:?set CHAT_BROKER_URL (go run ./cmd/chat-broker demo prints it)}"
  : "${CHAT_BROKER_TOKEN:?set CHAT_BROKER_TOKEN to the caller secret}"
fi
url="${url%/}"

# broker ARGS... calls the broker with curl; on an error it prints the
# error body (Google's JSON shape, with the broker's reason) and fails.
broker() {
  local body
  if [[ -n "${CHAT_BROKER_TOKEN:-}" ]]; then
    # The header comes from a file descriptor, not the command line, so the
    # secret never shows in the process list (printf is a bash builtin).
    body=$(curl "${curl_args[@]}" --header @<(printf 'Authorization: Bearer %s\n' "$CHAT_BROKER_TOKEN") "$@") \
      || { echo "$body" >&2; return 1; }
  else
    body=$(curl "${curl_args[@]}" "$@") || { echo "$body" >&2; return 1; }
  fi
  echo "$body"
}

# Message names, spaces/…/messages/…, pulled out with grep so that no jq is
# needed (with jq: jq -r .name and jq '.messages | length').
message_names() { grep -o '"name": *"spaces/[^"]*/messages/[^"/]*"' | cut -d '"' -f 4 || true; }

created=$(broker --header 'Content-Type: application/json' --data '{"text":"Hello, world!"}' "$url/v1/$space/messages")
echo "created $(message_names <<<"$created" | head -n 1)"

listed=$(broker "$url/v1/$space/messages")
echo "listed $(message_names <<<"$listed" | wc -l | tr -d ' ')"
