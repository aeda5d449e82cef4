// kafkajs round trip: node roundtrip.js BOOTSTRAP TOPIC COUNT GROUP
// Produces COUNT keyed records (plain producer: kafkajs's idempotent and
// transactional producers cannot run against the mock, see TESTBED.md), then
// consumes the topic from the beginning in group GROUP until COUNT records
// arrived. Prints one JSON line: {"produced": [...], "consumed": [...]}.
'use strict';
const { Kafka, logLevel } = require('kafkajs');

const [bootstrap, topic, countArg, group] = process.argv.slice(2);
if (!bootstrap || !topic || !countArg || !group) {
  console.error('usage: node roundtrip.js BOOTSTRAP TOPIC COUNT GROUP');
  process.exit(2);
}
const count = parseInt(countArg, 10);
const kafka = new Kafka({
  clientId: 'eosproxy-it-kafkajs',
  brokers: bootstrap.split(','),
  logLevel: logLevel.ERROR,
  retry: { retries: 8 },
});

async function main() {
  const producer = kafka.producer({ allowAutoTopicCreation: false });
  await producer.connect();
  const produced = [];
  const batch = 50;
  for (let i = 0; i < count; i += batch) {
    const messages = [];
    for (let j = i; j < Math.min(count, i + batch); j++) {
      messages.push({ key: `k${j % 9}`, value: `kafkajs-${j}` });
    }
    const res = await producer.send({ topic, acks: -1, messages });
    for (const r of res) {
      if (r.errorCode !== 0) throw new Error(`produce error ${JSON.stringify(r)}`);
    }
    produced.push(...messages.map((m) => ({ key: m.key, value: m.value })));
  }
  await producer.disconnect();

  const consumer = kafka.consumer({ groupId: group, sessionTimeout: 10000, heartbeatInterval: 1000 });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const consumed = [];
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timeout: ${consumed.length}/${count} consumed`)), 60000);
    consumer.run({
      eachMessage: async ({ partition, message }) => {
        consumed.push({
          partition,
          offset: message.offset,
          key: message.key ? message.key.toString() : null,
          value: message.value.toString(),
        });
        if (consumed.length >= count) {
          clearTimeout(timer);
          resolve();
        }
      },
    }).catch(reject);
  });
  await consumer.disconnect();
  process.stdout.write(JSON.stringify({ produced, consumed }) + '\n');
}

main().then(() => process.exit(0), (err) => {
  console.error(`roundtrip.js: ${err.stack || err}`);
  process.exit(1);
});
