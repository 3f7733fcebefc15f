// Point the AWS SDK for JavaScript (v3) at `keel emulate`: only the endpoint
// and fake credentials change.
//
//   npm install @aws-sdk/client-bedrock-runtime @aws-sdk/client-bedrock
//   keel emulate --listen 127.0.0.1:4566 &
//   node examples/emulator-js.mjs          # or: KEEL_EMULATOR_URL=http://host:port node ...
import {
  BedrockRuntimeClient, ConverseCommand, ConverseStreamCommand, InvokeModelWithResponseStreamCommand,
} from "@aws-sdk/client-bedrock-runtime";
import { BedrockClient, ListFoundationModelsCommand } from "@aws-sdk/client-bedrock";

const config = {
  endpoint: process.env.KEEL_EMULATOR_URL ?? "http://127.0.0.1:4566",
  region: "eu-west-1", // the region the requests are signed for, and served in
  credentials: { accessKeyId: "AKIDEXAMPLE", secretAccessKey: "any-secret" }, // any values
  maxAttempts: 1, // retries off, so injected faults show up as they are
};
const runtime = new BedrockRuntimeClient(config);
const modelId = "eu.anthropic.claude-sonnet-5-5";
const messages = [{ role: "user", content: [{ text: "Hello!" }] }];

const out = await runtime.send(new ConverseCommand({ modelId, messages, inferenceConfig: { maxTokens: 20 } }));
console.log("converse:", out.stopReason, out.usage);

let text = "";
const stream = await runtime.send(new ConverseStreamCommand({ modelId, messages, inferenceConfig: { maxTokens: 20 } }));
for await (const event of stream.stream) {
  if (event.contentBlockDelta) text += event.contentBlockDelta.delta.text;
  if (event.metadata) console.log("converse stream: same text:", text === out.output.message.content[0].text);
}

// InvokeModelWithResponseStream: each chunk's bytes are an Anthropic stream event
const chunks = await runtime.send(new InvokeModelWithResponseStreamCommand({
  modelId,
  body: JSON.stringify({ anthropic_version: "bedrock-2023-05-31", max_tokens: 20, messages: [{ role: "user", content: "Hello!" }] }),
}));
for await (const event of chunks.body) {
  const e = JSON.parse(new TextDecoder().decode(event.chunk.bytes));
  if (e.type === "message_stop") console.log("invoke stream metrics:", e["amazon-bedrock-invocationMetrics"]);
}

const models = await new BedrockClient(config).send(new ListFoundationModelsCommand({ byProvider: "Meta" }));
console.log("list foundation models:", models.modelSummaries.map((m) => m.modelId).join(", "));

try {
  await runtime.send(new ConverseCommand({ modelId: "eu.anthropic.claude-sonnet-5-5", messages: [] }));
} catch (e) {
  console.log("error:", e.name, e.$metadata.httpStatusCode, e.message);
}
