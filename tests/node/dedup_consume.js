// kafkajs consumer for the dedup tests:
//   node dedup_consume.js BOOTSTRAP TOPIC GROUP EXPECT TIMEOUT_MS [idle]
// Subscribes GROUP to TOPIC from the beginning (autoCommit on), collects
// every record until EXPECT records arrived or TIMEOUT_MS passed. With
// "idle", the script also writes "idle\n" to stdout once the group's
// committed offset of every partition has reached its high watermark,
// i.e. kafkajs stepped past everything there was (the test then measures
// eosproxy's Fetch rate, produces more records, and the count continues),
// and does not finish before that. At the end it commits and prints one JSON line:
// {"records": [{partition, offset, eventId, value}], "committed": {p: offset},
//  "highWatermarks": {p: offset}}.
'use strict';
const fs = require('fs');
const { Kafka, logLevel } = require('kafkajs');

const [bootstrap, topic, group, expectArg, timeoutArg, idleArg] = process.argv.slice(2);
if (!bootstrap || !topic || !group || !expectArg || !timeoutArg) {
  console.error('usage: node dedup_consume.js BOOTSTRAP TOPIC GROUP EXPECT TIMEOUT_MS [idle]');
  process.exit(2);
}
const expect = parseInt(expectArg, 10);
const timeoutMs = parseInt(timeoutArg, 10);
const kafka = new Kafka({
  clientId: 'eosproxy-it-dedup',
  brokers: bootstrap.split(','),
  logLevel: logLevel.ERROR,
  retry: { retries: 10 },
});

async function watermarks(admin) {
  const offs = await admin.fetchTopicOffsets(topic);
  const hw = {};
  for (const o of offs) hw[o.partition] = o.high;
  return hw;
}

async function committed(admin) {
  const res = await admin.fetchOffsets({ groupId: group, topics: [topic] });
  const out = {};
  for (const t of res) for (const p of t.partitions) out[p.partition] = p.offset;
  return out;
}

async function main() {
  const admin = kafka.admin();
  await admin.connect();
  const consumer = kafka.consumer({ groupId: group, sessionTimeout: 10000, heartbeatInterval: 500,
                                    maxWaitTimeInMs: 500 });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const records = [];
  const resolved = {}; // partition -> next offset kafkajs resolved
  consumer.on(consumer.events.END_BATCH_PROCESS, (e) => {
    const p = e.payload.partition;
    const next = Number(e.payload.lastOffset) + 1;
    if (!(p in resolved) || next > resolved[p]) resolved[p] = next;
  });
  let idleSent = idleArg !== 'idle';
  const done = new Promise((resolve) => {
    const deadline = setTimeout(resolve, timeoutMs);
    const poll = setInterval(async () => {
      if (!idleSent) {
        try {
          const hw = await watermarks(admin);
          const c = await committed(admin);
          if (Object.keys(hw).every((p) => hw[p] === '0' || Number(c[p]) >= Number(hw[p]))) {
            idleSent = true;
            process.stdout.write('idle\n');
          }
        } catch (e) { /* retried on the next tick */ }
      }
      if (idleSent && records.length >= expect) {
        clearTimeout(deadline);
        clearInterval(poll);
        resolve();
      }
    }, 250);
  });
  await consumer.run({
    autoCommit: true,
    autoCommitInterval: 200,
    autoCommitThreshold: 1, // commit as soon as an offset is resolved, filtered batches included
    eachMessage: async ({ partition, message }) => {
      const h = message.headers && message.headers['event-id'];
      records.push({ partition, offset: message.offset,
                     eventId: h ? h.toString() : null,
                     value: message.value ? message.value.toString() : null });
    },
  });
  await done;
  await consumer.stop();
  const hw = await watermarks(admin);
  const c = await committed(admin);
  await consumer.disconnect();
  await admin.disconnect();
  process.stdout.write(JSON.stringify({ records, committed: c, highWatermarks: hw, resolved }) + '\n');
}

main().catch((e) => { console.error(e && e.stack ? e.stack : String(e)); process.exit(1); });
