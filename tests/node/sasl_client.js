// kafkajs with SASL (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512) and TLS, for
// tests/integration/test_security.py. Reads one JSON spec on stdin:
//   {"bootstrap": "host:port",
//    "sasl": {"mechanism": "plain|scram-sha-256|scram-sha-512", "username": U, "password": P} | null,
//    "ssl": {"ca": PATH, "cert": PATH, "key": PATH} | null,     (cert/key optional)
//    "retries": N,                                              (kafkajs retry.retries)
//    "produce": [{"topic": T, "count": N, "prefix": S}],        (one send per topic, acks=-1)
//    "consume": {"topic": T, "group": G, "count": N, "timeout_ms": MS} | null}
// Prints one JSON line and exits 0, also when the client failed (the test
// decides whether that failure was the expected one):
//   {"connect_error": ERR|null, "produced": {topic: [values]}, "produce_errors": {topic: ERR},
//    "consumed": [{topic, partition, offset, value}], "consume_error": ERR|null,
//    "consumer_crashes": [ERR]}                                (crashes kafkajs recovered from)
// ERR is {"name", "type", "message", "broker", "cause": ERR|null} of the kafkajs error. Exit 1
// only on a bad spec or a bug here. The password is never printed.
'use strict';
const fs = require('fs');
const { Kafka, logLevel } = require('kafkajs');

// An error and its causes (kafkajs wraps a non-retriable error, such as a
// failed login, in KafkaJSNonRetriableError), at most 5 deep.
function describe(err, depth = 0) {
  if (!err || depth >= 5) return null;
  return {
    name: err.name || 'Error',
    type: err.type || null,
    message: String(err.message || err),
    broker: err.broker || (err.host ? `${err.host}:${err.port}` : null),
    cause: err.cause && err.cause !== err ? describe(err.cause, depth + 1) : null,
  };
}

function clientConfig(spec) {
  const cfg = {
    clientId: 'eosproxy-it-kafkajs-sasl',
    brokers: spec.bootstrap.split(','),
    logLevel: logLevel.NOTHING,
    connectionTimeout: 10000,
    authenticationTimeout: 10000,
    retry: { retries: spec.retries === undefined ? 5 : spec.retries, initialRetryTime: 200 },
  };
  if (spec.sasl) cfg.sasl = spec.sasl;
  if (spec.ssl) {
    cfg.ssl = { ca: [fs.readFileSync(spec.ssl.ca, 'utf8')] };
    if (spec.ssl.cert) cfg.ssl.cert = fs.readFileSync(spec.ssl.cert, 'utf8');
    if (spec.ssl.key) cfg.ssl.key = fs.readFileSync(spec.ssl.key, 'utf8');
  }
  return cfg;
}

async function produceAll(kafka, spec, out) {
  const producer = kafka.producer({ allowAutoTopicCreation: false });
  try {
    await producer.connect();
  } catch (err) {
    out.connect_error = describe(err);
    return false;
  }
  try {
    for (const p of spec.produce || []) {
      const messages = [];
      for (let i = 0; i < p.count; i++) messages.push({ key: `k${i % 5}`, value: `${p.prefix}-${i}` });
      try {
        const res = await producer.send({ topic: p.topic, acks: -1, messages });
        const bad = res.filter((r) => r.errorCode !== 0);
        if (bad.length) throw new Error(`produce error codes ${JSON.stringify(bad)}`);
        out.produced[p.topic] = messages.map((m) => m.value);
      } catch (err) {
        out.produce_errors[p.topic] = describe(err);
      }
    }
  } finally {
    await producer.disconnect();
  }
  return true;
}

async function consume(kafka, c, out) {
  // A short maxWaitTime: disconnect() waits for the fetch in flight.
  const consumer = kafka.consumer({
    groupId: c.group, sessionTimeout: 10000, heartbeatInterval: 1000, maxWaitTimeInMs: 500,
  });
  try {
    await consumer.connect();
    await consumer.subscribe({ topic: c.topic, fromBeginning: true });
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timeout: ${out.consumed.length}/${c.count} consumed`)),
        c.timeout_ms || 60000);
      // kafkajs restarts the consumer after a retriable crash, as it would
      // in an application: only a crash it gives up on fails the run.
      consumer.on(consumer.events.CRASH, (e) => {
        out.consumer_crashes.push(describe(e.payload.error));
        if (!e.payload.restart) {
          clearTimeout(timer);
          reject(e.payload.error);
        }
      });
      consumer.run({
        eachMessage: async ({ topic, partition, message }) => {
          out.consumed.push({ topic, partition, offset: message.offset, value: message.value.toString() });
          if (out.consumed.length >= c.count) {
            clearTimeout(timer);
            resolve();
          }
        },
      }).catch((err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
  } catch (err) {
    out.consume_error = describe(err);
  } finally {
    await consumer.disconnect();
  }
}

async function main() {
  const spec = JSON.parse(fs.readFileSync(0, 'utf8'));
  if (!spec.bootstrap) throw new Error('spec without bootstrap');
  const out = {
    connect_error: null, produced: {}, produce_errors: {}, consumed: [], consume_error: null,
    consumer_crashes: [],
  };
  const kafka = new Kafka(clientConfig(spec));
  const connected = await produceAll(kafka, spec, out);
  if (connected && spec.consume) await consume(kafka, spec.consume, out);
  process.stdout.write(JSON.stringify(out) + '\n');
}

main().then(() => process.exit(0), (err) => {
  console.error(`sasl_client.js: ${err.stack || err}`);
  process.exit(1);
});
