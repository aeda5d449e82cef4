// kafkajs idempotent and transactional producers, for a real broker
// (tests/integration/test_real_clients.py; they fail on the mock, whose
// Metadata names no real controller). node txn.js BOOTSTRAP TOPIC GROUP
//   1. an idempotent producer sends 30 records (values idem-i);
//   2. a transactional producer commits 20 (values commit-i), aborts 10
//      (abort-i), then commits 5 more (commit2-i);
//   3. a read_committed consumer (kafkajs's default) in GROUP reads the
//      topic from the beginning until 55 records arrived, then 2 s more.
// Prints one JSON line: {"idempotent": [values], "committed": [values],
// "aborted": [values], "consumed": [{partition, offset, value}]}.
'use strict';
const { Kafka, logLevel } = require('kafkajs');

const [bootstrap, topic, group] = process.argv.slice(2);
if (!bootstrap || !topic || !group) {
  console.error('usage: node txn.js BOOTSTRAP TOPIC GROUP');
  process.exit(2);
}
const kafka = new Kafka({
  clientId: 'eosproxy-it-kafkajs-txn',
  brokers: bootstrap.split(','),
  logLevel: logLevel.ERROR,
  retry: { retries: 8 },
});

function values(prefix, n) {
  const out = [];
  for (let i = 0; i < n; i++) out.push(`${prefix}-${i}`);
  return out;
}

function check(res) {
  for (const r of res) if (r.errorCode !== 0) throw new Error(`produce error ${JSON.stringify(r)}`);
}

async function main() {
  const out = { idempotent: values('idem', 30), committed: [], aborted: [], consumed: [] };

  const idem = kafka.producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false });
  await idem.connect();
  for (let i = 0; i < 30; i += 10) {
    check(await idem.send({ topic, acks: -1, messages: out.idempotent.slice(i, i + 10).map((v, j) => ({ key: `k${j % 3}`, value: v })) }));
  }
  await idem.disconnect();

  const txp = kafka.producer({
    transactionalId: `eosproxy-it-kjs-${topic}`, idempotent: true, maxInFlightRequests: 1,
    allowAutoTopicCreation: false,
  });
  await txp.connect();
  for (const [prefix, n, commit] of [['commit', 20, true], ['abort', 10, false], ['commit2', 5, true]]) {
    const vals = values(prefix, n);
    const txn = await txp.transaction();
    try {
      await txn.send({ topic, messages: vals.map((v, j) => ({ key: `k${j % 3}`, value: v })) });
    } catch (err) {
      await txn.abort();
      throw err;
    }
    if (commit) {
      await txn.commit();
      out.committed.push(...vals);
    } else {
      await txn.abort();
      out.aborted.push(...vals);
    }
  }
  await txp.disconnect();

  const want = out.idempotent.length + out.committed.length;
  const consumer = kafka.consumer({ groupId: group, sessionTimeout: 10000, heartbeatInterval: 1000, maxWaitTimeInMs: 500 });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timeout: ${out.consumed.length}/${want} consumed`)), 90000);
    consumer.run({
      eachMessage: async ({ partition, message }) => {
        out.consumed.push({ partition, offset: message.offset, value: message.value.toString() });
        if (out.consumed.length === want) {
          clearTimeout(timer);
          // Anything aborted that a broken filter let through would follow.
          setTimeout(resolve, 2000);
        }
      },
    }).catch(reject);
  });
  await consumer.disconnect();
  process.stdout.write(JSON.stringify(out) + '\n');
}

main().then(() => process.exit(0), (err) => {
  console.error(`txn.js: ${err.stack || err}`);
  process.exit(1);
});
