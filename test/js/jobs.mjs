// Drives keel's emulator (keel emulate) with the AWS SDK for JavaScript v3's
// S3 client (forcePathStyle) and Bedrock control-plane client, unchanged but
// for their endpoint, through a batch inference job's whole flow. Run by
// internal/emulator's TestJobsJSSDK, which starts the emulator with SigV4
// verification on and passes its URL:
//
//	node test/js/jobs.mjs URL BUCKET MODEL RECORDS
//
// It puts RECORDS records as one input file (under a key with a space, so
// the S3 signature covers an escaped path), creates a job on them, polls
// GetModelInvocationJob until it ends, lists jobs by name and status, reads
// {output}/{jobId}/... .out and manifest.json.out, then creates a second job
// and stops it. It prints one JSON line per step ({"op", ...}) and exits
// non-zero on the first error.
import { setTimeout as sleep } from 'node:timers/promises';
import {
  S3Client,
  PutObjectCommand,
  GetObjectCommand,
  ListObjectsV2Command,
} from '@aws-sdk/client-s3';
import {
  BedrockClient,
  CreateModelInvocationJobCommand,
  GetModelInvocationJobCommand,
  ListModelInvocationJobsCommand,
  StopModelInvocationJobCommand,
} from '@aws-sdk/client-bedrock';

const [endpoint, bucket, model, recordsArg] = process.argv.slice(2);
const records = Number(recordsArg);
if (!endpoint || !bucket || !model || !(records > 0)) {
  console.error('usage: node jobs.mjs URL BUCKET MODEL RECORDS');
  process.exit(2);
}
// The emulator checks signatures with this key pair.
const credentials = { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY' };
const region = 'us-east-1';
const role = 'arn:aws:iam::123456789012:role/batch';
// pollEvery is the wait between polls: the test's jobs move a status every
// few tens of milliseconds.
const pollEvery = 20;
const terminal = new Set(['Completed', 'PartiallyCompleted', 'Failed', 'Stopped', 'Expired']);

const s3 = new S3Client({ region, endpoint, forcePathStyle: true, credentials, maxAttempts: 1 });
const bedrock = new BedrockClient({ region, endpoint, credentials, maxAttempts: 1 });

function line(op, r) {
  console.log(JSON.stringify({ op, ...r }));
}

async function readObject(key) {
  const o = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return o.Body.transformToString();
}

// wait polls a job until it ends and returns the statuses it saw, in order.
async function wait(jobArn) {
  const seen = [];
  for (;;) {
    const j = await bedrock.send(new GetModelInvocationJobCommand({ jobIdentifier: jobArn }));
    if (seen.at(-1) !== j.status) seen.push(j.status);
    if (terminal.has(j.status)) return { job: j, seen };
    await sleep(pollEvery);
  }
}

function create(name, token) {
  return bedrock.send(new CreateModelInvocationJobCommand({
    jobName: name, roleArn: role, modelId: model, clientRequestToken: token,
    inputDataConfig: { s3InputDataConfig: { s3Uri: `s3://${bucket}/input/`, s3InputFormat: 'JSONL' } },
    outputDataConfig: { s3OutputDataConfig: { s3Uri: `s3://${bucket}/output/` } },
  }));
}

async function run() {
  const lines = [];
  for (let i = 0; i < records; i++) {
    lines.push(JSON.stringify({
      recordId: `js${String(i).padStart(3, '0')}`,
      modelInput: { anthropic_version: 'bedrock-2023-05-31', max_tokens: 40, messages: [{ role: 'user', content: `question ${i}` }] },
    }));
  }
  const inputKey = 'input/part 1.jsonl';
  await s3.send(new PutObjectCommand({ Bucket: bucket, Key: inputKey, Body: lines.join('\n') + '\n', ContentType: 'application/jsonl' }));
  line('put', { key: inputKey, records });

  const { jobArn } = await create('js-done', 'js-token-done');
  const again = await create('js-done', 'js-token-done');
  line('create', { jobArn, sameArnOnRetry: again.jobArn === jobArn });

  const { job, seen } = await wait(jobArn);
  line('wait', {
    status: job.status, seen, total: job.totalRecordCount, processed: job.processedRecordCount,
    success: job.successRecordCount, errors: job.errorRecordCount, submitTime: job.submitTime instanceof Date,
  });

  const listed = await bedrock.send(new ListModelInvocationJobsCommand({ nameContains: 'js-', statusEquals: 'Completed', maxResults: 10 }));
  line('list', { jobs: listed.invocationJobSummaries.map((s) => ({ arn: s.jobArn, name: s.jobName, status: s.status })) });

  const jobId = jobArn.slice(jobArn.lastIndexOf('/') + 1);
  const prefix = `output/${jobId}/`;
  const objs = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }));
  const keys = (objs.Contents ?? []).map((o) => o.Key);
  line('list-output', { keys });
  const out = await readObject(`${prefix}part 1.jsonl.out`);
  const outLines = out.trim().split('\n').map((l) => JSON.parse(l));
  line('output', {
    recordIds: outLines.map((l) => l.recordId),
    withOutput: outLines.filter((l) => l.modelOutput?.content?.[0]?.text).length,
  });
  line('manifest', JSON.parse(await readObject(`${prefix}manifest.json.out`)));

  const stop = await create('js-stop', 'js-token-stop');
  await bedrock.send(new StopModelInvocationJobCommand({ jobIdentifier: stop.jobArn }));
  const stopped = await wait(stop.jobArn);
  line('stop', { jobArn: stop.jobArn, status: stopped.job.status, seen: stopped.seen });
}

try {
  await run();
} catch (err) {
  console.error(`jobs.mjs: ${err.name ?? ''} ${err.$metadata?.httpStatusCode ?? ''} ${err.message}`);
  process.exit(1);
} finally {
  s3.destroy();
  bedrock.destroy();
}
