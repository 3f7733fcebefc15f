"""Drives keel's gateway (keel serve) with boto3's bedrock-runtime client,
unchanged but for endpoint_url: converse, converse_stream, invoke_model,
invoke_model_with_response_stream and count_tokens. Run by
internal/gateway's TestPythonClient, which starts the gateway on the
emulator:

    KEEL_URL=http://127.0.0.1:8080 python3 test/py/gateway.py

KEEL_MODEL names the model (default us.anthropic.claude-opus-4-7; count
tokens is sent to its base model). It prints one JSON line per call
({"client", "op", "text", "input_tokens", "output_tokens", "stop_reason"};
the first line names the boto3 and botocore versions) and exits 1 on the
first error, 3 when this boto3 has no bedrock-runtime client.
"""
import json
import os
import re
import sys

# botocore-data holds the bedrock-runtime service model of botocore 1.43.11
# (Apache License 2.0; see botocore-data/README.md), so that a boto3 older
# than Bedrock (Debian 12's python3-boto3 1.26.27, which .ci/run installs)
# gets the client; a boto3 that has one uses this same model.
os.environ.setdefault("AWS_DATA_PATH", os.path.join(os.path.dirname(os.path.abspath(__file__)), "botocore-data"))

import boto3  # noqa: E402 (after AWS_DATA_PATH)
import botocore  # noqa: E402
from botocore.config import Config  # noqa: E402

url = os.environ.get("KEEL_URL")
if not url:
    sys.exit("gateway.py: set KEEL_URL to the gateway, e.g. http://127.0.0.1:8080")
model = os.environ.get("KEEL_MODEL", "us.anthropic.claude-opus-4-7")
base_model = re.sub(r"^(us|eu|apac|jp|au|global)\.", "", model)
prompt = "Tell me about rivers."


def line(op, **r):
    print(json.dumps({"client": "boto3", "op": op, **r}), flush=True)


print(json.dumps({"boto3": boto3.__version__, "botocore": botocore.__version__}), flush=True)
if "bedrock-runtime" not in boto3.session.Session().get_available_services():
    print(f"gateway.py: boto3 {boto3.__version__} has no bedrock-runtime client", file=sys.stderr)
    sys.exit(3)

# The one change from a client of Bedrock itself is endpoint_url. The
# credentials are fake: the gateway runs open on loopback and signs
# upstream with its own.
client = boto3.client(
    "bedrock-runtime",
    endpoint_url=url,
    region_name="us-east-1",
    aws_access_key_id="AKIDEXAMPLE",
    aws_secret_access_key="wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
    config=Config(retries={"max_attempts": 1, "mode": "standard"}),
)
messages = [{"role": "user", "content": [{"text": prompt}]}]

try:
    r = client.converse(modelId=model, messages=messages, inferenceConfig={"maxTokens": 200})
    line("converse", text="".join(b.get("text", "") for b in r["output"]["message"]["content"]),
         input_tokens=r["usage"]["inputTokens"], output_tokens=r["usage"]["outputTokens"], stop_reason=r["stopReason"])

    r = client.converse_stream(modelId=model, messages=messages, inferenceConfig={"maxTokens": 200})
    st = {"text": ""}
    for ev in r["stream"]:
        if "contentBlockDelta" in ev:
            st["text"] += ev["contentBlockDelta"]["delta"].get("text", "")
        elif "messageStop" in ev:
            st["stop_reason"] = ev["messageStop"]["stopReason"]
        elif "metadata" in ev:
            u = ev["metadata"]["usage"]
            st.update(input_tokens=u["inputTokens"], output_tokens=u["outputTokens"])
    line("converse-stream", **st)

    body = json.dumps({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 200,
                       "messages": [{"role": "user", "content": prompt}]})
    r = client.invoke_model(modelId=model, contentType="application/json", body=body)
    m = json.loads(r["body"].read())
    line("invoke", text="".join(b.get("text", "") for b in m["content"]),
         input_tokens=m["usage"]["input_tokens"], output_tokens=m["usage"]["output_tokens"], stop_reason=m["stop_reason"])

    r = client.invoke_model_with_response_stream(modelId=model, contentType="application/json", body=body)
    st = {"text": ""}
    for ev in r["body"]:
        e = json.loads(ev["chunk"]["bytes"])
        if e["type"] == "message_start":
            st["input_tokens"] = e["message"]["usage"]["input_tokens"]
        elif e["type"] == "content_block_delta" and e["delta"]["type"] == "text_delta":
            st["text"] += e["delta"]["text"]
        elif e["type"] == "message_delta":
            st.update(stop_reason=e["delta"]["stop_reason"], output_tokens=e["usage"]["output_tokens"])
    line("invoke-with-response-stream", **st)

    if hasattr(client, "count_tokens"):
        r = client.count_tokens(modelId=base_model, input={"converse": {"messages": messages}})
        line("count-tokens", input_tokens=r["inputTokens"])
except botocore.exceptions.ClientError as err:
    e = err.response.get("Error", {})
    print(f"gateway.py: {e.get('Code')} {err.response.get('ResponseMetadata', {}).get('HTTPStatusCode')} {e.get('Message')}", file=sys.stderr)
    sys.exit(1)
except Exception as err:  # a connection or stream error: say what, exit 1
    print(f"gateway.py: {type(err).__name__}: {err}", file=sys.stderr)
    sys.exit(1)
