// Checks the official Anthropic Bedrock SDK for JavaScript against keel's
// emulator: messages.create with and without stream: true. Run by
// internal/emulator's TestAnthropicJSSDK, which starts the emulator and
// passes its URL and the model:
//
//	node test/js/anthropic-bedrock.mjs URL MODEL PROMPT
//
// It prints one JSON line per call ({"mode", "text", "input_tokens",
// "output_tokens", "stop_reason", "model"}) and exits non-zero on any error.
import { AnthropicBedrock } from '@anthropic-ai/bedrock-sdk';

const [baseURL, model, prompt] = process.argv.slice(2);
if (!baseURL || !model || !prompt) {
  console.error('usage: node anthropic-bedrock.mjs URL MODEL PROMPT');
  process.exit(2);
}

const client = new AnthropicBedrock({
  baseURL,
  awsRegion: 'us-east-1',
  awsAccessKey: 'AKIDEXAMPLE',
  awsSecretKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY',
  maxRetries: 0,
});

const params = {
  model,
  max_tokens: 200,
  system: 'Answer plainly.',
  messages: [{ role: 'user', content: prompt }],
};

function line(mode, msg) {
  const text = msg.content.filter((b) => b.type === 'text').map((b) => b.text).join('');
  console.log(JSON.stringify({
    mode,
    text,
    input_tokens: msg.usage.input_tokens,
    output_tokens: msg.usage.output_tokens,
    stop_reason: msg.stop_reason,
    model: msg.model,
  }));
}

try {
  line('create', await client.messages.create(params));

  // stream: true returns the raw event stream; fold it the way a reader does.
  const stream = await client.messages.create({ ...params, stream: true });
  const msg = { content: [{ type: 'text', text: '' }], usage: {}, stop_reason: null, model: '' };
  for await (const ev of stream) {
    switch (ev.type) {
      case 'message_start':
        msg.model = ev.message.model;
        msg.usage = { ...ev.message.usage };
        break;
      case 'content_block_delta':
        if (ev.delta.type === 'text_delta') msg.content[0].text += ev.delta.text;
        break;
      case 'message_delta':
        msg.stop_reason = ev.delta.stop_reason;
        msg.usage.output_tokens = ev.usage.output_tokens;
        break;
    }
  }
  line('stream', msg);
} catch (err) {
  console.error(`anthropic-bedrock.mjs: ${err.status ?? ''} ${err.message}`);
  process.exit(1);
}
