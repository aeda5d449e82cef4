// Decodes the batches of this directory with kafkajs 2.2.4's own fetch
// decoder and consumer Batch (fetch offset 1000, high watermark 1010) and
// prints what runner.js would do. Run from the repository root:
//   node tests/unit/golden/dedup/check_kafkajs.js
const fs = require('fs')
const path = require('path')
const base = path.join(__dirname, '../../../node/node_modules/kafkajs/src')
const Decoder = require(base + '/protocol/decoder')
const decodeMessages = require(base + '/protocol/requests/fetch/v4/decodeMessages')
const Batch = require(base + '/consumer/batch')

async function run(file) {
  const data = fs.readFileSync(file)
  const buf = Buffer.alloc(4 + data.length)
  buf.writeInt32BE(data.length, 0)
  data.copy(buf, 4)
  let out
  try {
    const messages = await decodeMessages(new Decoder(buf))
    const b = new Batch('t', '1000', {
      partition: 0, highWatermark: '1010', abortedTransactions: [], messages,
    })
    // runner.js: isEmptyDueToFiltering -> resolveOffset(lastOffset);
    // isEmpty -> heartbeat only (the same offset is fetched again)
    out = b.isEmptyDueToFiltering()
      ? `resolve ${b.lastOffset()}: next fetch ${Number(b.lastOffset()) + 1}`
      : b.isEmpty()
        ? 'nothing resolved: next fetch 1000 again'
        : `deliver ${b.messages.map(m => m.offset + ':' + m.key).join(',')}`
  } catch (e) {
    out = 'EXC ' + e.message
  }
  console.log(path.basename(file).padEnd(14), out)
}

(async () => {
  for (const f of fs.readdirSync(__dirname).filter(f => f.endsWith('.bin')).sort())
    await run(path.join(__dirname, f))
})()
