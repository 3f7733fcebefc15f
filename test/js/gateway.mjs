// Drives keel's gateway (keel serve) with the official JavaScript clients,
// unchanged but for their endpoint: the AWS SDK for JavaScript v3's
// Bedrock Runtime client (which speaks HTTP/2 through its
// NodeHttp2Handler) with the five operations, and @anthropic-ai/bedrock-sdk
// with messages.create, plain and stream: true. Run by internal/gateway's
// TestJSClients, which starts the gateway on the emulator:
//
//	KEEL_URL=http://127.0.0.1:8080 node test/js/gateway.mjs
//
// KEEL_MODEL names the model (default us.anthropic.claude-opus-4-7; count
// tokens is sent to its base model). It prints one JSON line per call
// ({"client", "op", "text", "input_tokens", "output_tokens",
// "stop_reason"}) and exits non-zero on the first error.
import {
  BedrockRuntimeClient,
  ConverseCommand,
  ConverseStreamCommand,
  CountTokensCommand,
  InvokeModelCommand,
  InvokeModelWithResponseStreamCommand,
} from '@aws-sdk/client-bedrock-runtime';
import { AnthropicBedrock } from '@anthropic-ai/bedrock-sdk';

const url = process.env.KEEL_URL;
if (!url) {
  console.error('gateway.mjs: set KEEL_URL to the gateway, e.g. http://127.0.0.1:8080');
  process.exit(2);
}
const model = process.env.KEEL_MODEL || 'us.anthropic.claude-opus-4-7';
const baseModel = model.replace(/^(us|eu|apac|jp|au|global)\./, '');
const prompt = 'Tell me about rivers.';
// Fake credentials: the gateway runs open on loopback and signs upstream
// with its own.
const credentials = { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY' };

function line(client, op, r) {
  console.log(JSON.stringify({ client, op, ...r }));
}

// The AWS SDK for JavaScript v3: the one change is endpoint.
const bedrock = new BedrockRuntimeClient({ region: 'us-east-1', endpoint: url, credentials, maxAttempts: 1 });
const messages = [{ role: 'user', content: [{ text: prompt }] }];

async function awsSDK() {
  const c = await bedrock.send(new ConverseCommand({ modelId: model, messages, inferenceConfig: { maxTokens: 200 } }));
  line('aws-sdk-js-v3', 'converse', {
    text: c.output.message.content.map((b) => b.text ?? '').join(''),
    input_tokens: c.usage.inputTokens, output_tokens: c.usage.outputTokens, stop_reason: c.stopReason,
  });

  const s = await bedrock.send(new ConverseStreamCommand({ modelId: model, messages, inferenceConfig: { maxTokens: 200 } }));
  const st = { text: '' };
  for await (const ev of s.stream) {
    if (ev.contentBlockDelta?.delta?.text) st.text += ev.contentBlockDelta.delta.text;
    if (ev.messageStop) st.stop_reason = ev.messageStop.stopReason;
    if (ev.metadata) Object.assign(st, { input_tokens: ev.metadata.usage.inputTokens, output_tokens: ev.metadata.usage.outputTokens });
  }
  line('aws-sdk-js-v3', 'converse-stream', st);

  const body = JSON.stringify({
    anthropic_version: 'bedrock-2023-05-31', max_tokens: 200,
    messages: [{ role: 'user', content: prompt }],
  });
  const inv = await bedrock.send(new InvokeModelCommand({ modelId: model, contentType: 'application/json', body }));
  const msg = JSON.parse(new TextDecoder().decode(inv.body));
  line('aws-sdk-js-v3', 'invoke', {
    text: msg.content.map((b) => b.text ?? '').join(''),
    input_tokens: msg.usage.input_tokens, output_tokens: msg.usage.output_tokens, stop_reason: msg.stop_reason,
  });

  const is = await bedrock.send(new InvokeModelWithResponseStreamCommand({ modelId: model, contentType: 'application/json', body }));
  const ist = { text: '' };
  for await (const ev of is.body) {
    const e = JSON.parse(new TextDecoder().decode(ev.chunk.bytes));
    if (e.type === 'message_start') ist.input_tokens = e.message.usage.input_tokens;
    if (e.type === 'content_block_delta' && e.delta.type === 'text_delta') ist.text += e.delta.text;
    if (e.type === 'message_delta') Object.assign(ist, { stop_reason: e.delta.stop_reason, output_tokens: e.usage.output_tokens });
  }
  line('aws-sdk-js-v3', 'invoke-with-response-stream', ist);

  const ct = await bedrock.send(new CountTokensCommand({ modelId: baseModel, input: { converse: { messages } } }));
  line('aws-sdk-js-v3', 'count-tokens', { input_tokens: ct.inputTokens });
}

// The Anthropic Bedrock SDK: the one change is baseURL.
async function anthropicSDK() {
  const client = new AnthropicBedrock({
    baseURL: url, awsRegion: 'us-east-1', awsAccessKey: credentials.accessKeyId,
    awsSecretKey: credentials.secretAccessKey, maxRetries: 0,
  });
  const params = { model, max_tokens: 200, messages: [{ role: 'user', content: prompt }] };
  const m = await client.messages.create(params);
  line('anthropic-bedrock-sdk', 'messages.create', {
    text: m.content.map((b) => b.text ?? '').join(''),
    input_tokens: m.usage.input_tokens, output_tokens: m.usage.output_tokens, stop_reason: m.stop_reason,
  });

  const stream = await client.messages.create({ ...params, stream: true });
  const st = { text: '' };
  for await (const ev of stream) {
    if (ev.type === 'message_start') st.input_tokens = ev.message.usage.input_tokens;
    if (ev.type === 'content_block_delta' && ev.delta.type === 'text_delta') st.text += ev.delta.text;
    if (ev.type === 'message_delta') Object.assign(st, { stop_reason: ev.delta.stop_reason, output_tokens: ev.usage.output_tokens });
  }
  line('anthropic-bedrock-sdk', 'messages.create stream', st);
}

try {
  await awsSDK();
  await anthropicSDK();
} catch (err) {
  console.error(`gateway.mjs: ${err.name ?? ''} ${err.$metadata?.httpStatusCode ?? err.status ?? ''} ${err.message}`);
  process.exit(1);
} finally {
  bedrock.destroy();
}
