#!/usr/bin/env bash
# Talk to `keel emulate` without an SDK. Unsigned requests are fine; the
# /region/{region} prefix picks the region (signed requests use the region
# of their SigV4 credential scope instead).
#
#   keel emulate --listen 127.0.0.1:4566 &
#   bash examples/emulator-curl.sh
set -euo pipefail
URL=${KEEL_EMULATOR_URL:-http://127.0.0.1:4566}
MODEL='us.anthropic.claude-sonnet-5-5'   # a ':' in an id is escaped (%3A), as the SDKs do

echo '--- Converse in us-west-2'
curl -s "$URL/region/us-west-2/model/$MODEL/converse" \
  -H 'Content-Type: application/json' \
  -d '{"messages":[{"role":"user","content":[{"text":"Hello!"}]}],"inferenceConfig":{"maxTokens":12}}'
echo

echo '--- InvokeModel (Anthropic Messages body), with the usage headers'
curl -s -D - -o /dev/null "$URL/model/$MODEL/invoke" \
  -H 'Content-Type: application/json' \
  -d '{"anthropic_version":"bedrock-2023-05-31","max_tokens":12,"messages":[{"role":"user","content":"Hello!"}]}' \
  | grep -i '^x-amzn'

echo '--- An error, as the service sends it'
curl -s -i "$URL/model/anthropic.claude-9-v1%3A0/converse" -d '{}' | grep -i '^HTTP\|^x-amzn-errortype\|message'
echo

echo '--- CountTokens'
curl -s "$URL/model/anthropic.claude-sonnet-5-5/count-tokens" \
  -d '{"input":{"converse":{"messages":[{"role":"user","content":[{"text":"Hello!"}]}]}}}'
echo
