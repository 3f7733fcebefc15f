#!/usr/bin/env python3
"""Point boto3 at `keel emulate`: only the endpoint URL and fake credentials change.

    keel emulate --listen 127.0.0.1:4566 &
    python3 examples/emulator-boto3.py            # or: KEEL_EMULATOR_URL=http://host:port python3 ...
"""
import json
import os

import boto3
from botocore.config import Config

URL = os.environ.get("KEEL_EMULATOR_URL", "http://127.0.0.1:4566")
MODEL = "us.anthropic.claude-sonnet-5-5"

session = boto3.Session(
    aws_access_key_id="AKIDEXAMPLE",      # any values: the emulator accepts any credentials
    aws_secret_access_key="any-secret",  # unless started with --access-key ID=SECRET
    region_name="us-west-2",             # the region the requests are signed for, and served in
)
# Retries off, so injected faults show up as they are.
config = Config(retries={"max_attempts": 1, "mode": "standard"})
runtime = session.client("bedrock-runtime", endpoint_url=URL, config=config)
bedrock = session.client("bedrock", endpoint_url=URL, config=config)

# Converse
out = runtime.converse(
    modelId=MODEL,
    messages=[{"role": "user", "content": [{"text": "Hello!"}]}],
    inferenceConfig={"maxTokens": 20},
)
print("converse:", out["stopReason"], out["usage"])
print(" ", out["output"]["message"]["content"][0]["text"])

# ConverseStream: one contentBlockDelta per token, then messageStop and metadata
text = ""
for event in runtime.converse_stream(
    modelId=MODEL, messages=[{"role": "user", "content": [{"text": "Hello!"}]}], inferenceConfig={"maxTokens": 20}
)["stream"]:
    if "contentBlockDelta" in event:
        text += event["contentBlockDelta"]["delta"]["text"]
    elif "metadata" in event:
        print("converse_stream: same text:", text == out["output"]["message"]["content"][0]["text"],
              "usage", event["metadata"]["usage"])

# InvokeModel with the Anthropic Messages body
resp = runtime.invoke_model(
    modelId=MODEL,
    body=json.dumps({
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 20,
        "messages": [{"role": "user", "content": "Hello!"}],
    }),
)
body = json.loads(resp["body"].read())
headers = resp["ResponseMetadata"]["HTTPHeaders"]
print("invoke_model:", body["stop_reason"], body["usage"],
      "header input tokens:", headers["x-amzn-bedrock-input-token-count"])

# CountTokens
count = runtime.count_tokens(
    modelId="anthropic.claude-sonnet-5-5",
    input={"converse": {"messages": [{"role": "user", "content": [{"text": "Hello!"}]}]}},
)
print("count_tokens:", count["inputTokens"])

# The control plane: ListFoundationModels
models = bedrock.list_foundation_models(byProvider="Anthropic")["modelSummaries"]
print("list_foundation_models:", len(models), "Anthropic models")

# An error arrives as the service sends it
try:
    runtime.converse(modelId="anthropic.claude-9-v1:0", messages=[{"role": "user", "content": [{"text": "Hi"}]}])
except runtime.exceptions.ResourceNotFoundException as e:
    print("error:", e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"])
