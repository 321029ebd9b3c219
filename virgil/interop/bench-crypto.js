'use strict';
// Times virgil-crypto's signThenEncryptDetached of a 48-byte epoch message
// to 1, 10 and 99 recipients (the Keyknox ticket of an E3Kit group), and
// prints one JSON object with ms/op per recipient count, to compare with the
// Go implementation (go test -bench in package virgil).
//
// Run: node --no-experimental-fetch bench-crypto.js [minMillisPerCase]

const { initCrypto, VirgilCrypto } = require('virgil-crypto');

async function main() {
  await initCrypto();
  const crypto = new VirgilCrypto();
  const minMillis = Number(process.argv[2] || 1000);
  const signer = crypto.generateKeys();
  const message = Buffer.alloc(48, 7);
  const results = [];
  for (const n of [1, 10, 99]) {
    const recipients = [];
    for (let i = 0; i < n; i++) recipients.push(crypto.generateKeys().publicKey);
    // Sanity check: the library produced a ticket.
    const probe = crypto.signThenEncryptDetached(message, signer.privateKey, recipients);
    if (!probe.metadata || !probe.encryptedData) throw new Error('empty output');
    for (let i = 0; i < 3; i++) crypto.signThenEncryptDetached(message, signer.privateKey, recipients); // warm up
    let ops = 0;
    const start = process.hrtime.bigint();
    let elapsed = 0;
    do {
      crypto.signThenEncryptDetached(message, signer.privateKey, recipients);
      ops++;
      elapsed = Number(process.hrtime.bigint() - start) / 1e6;
    } while (elapsed < minMillis);
    results.push({
      recipients: n,
      ops,
      ms_per_op: Number((elapsed / ops).toFixed(4)),
      metadata_bytes: probe.metadata.length,
    });
  }
  process.stdout.write(
    JSON.stringify({
      library: 'virgil-crypto',
      version: require('virgil-crypto/package.json').version,
      node: process.version,
      operation: 'signThenEncryptDetached',
      message_bytes: message.length,
      results,
    }) + '\n',
  );
}

main().catch((err) => {
  console.error(err && err.stack ? err.stack : err);
  process.exit(1);
});
