#!/usr/bin/env node
// interop_signature.js TOOL - csession's signatures against cookie-signature
// 1.0.7, in both directions (ctest: node_cookie_signature).
//
// TOOL is the test_node_sign_tool binary (csn_cookie_sign/unsign). For
// random and awkward ids and several secrets (text, empty, binary, longer
// than the HMAC block, non-ASCII):
//   - Node signs, C verifies and returns the id and the secret's index;
//   - C signs, Node's unsign accepts and C's output equals Node's;
//   - a value signed with one secret is rejected by both under another.
// Any missing piece (node_modules, the tool) makes the test fail, never skip.
'use strict';

const { execFileSync, spawnSync } = require('child_process');
const crypto = require('crypto');
const path = require('path');

const tool = process.argv[2];
if (!tool) {
  console.error('usage: interop_signature.js PATH_TO_test_node_sign_tool');
  process.exit(2);
}
// Throws (test fails) when npm ci has not been run in tests/node.
const node = require('./sign.js');

let checks = 0;
function fail(msg) {
  console.error('FAIL: ' + msg);
  process.exit(1);
}
function expectEqual(got, want, what) {
  checks++;
  if (got !== want) fail(`${what}: got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
}

function cSign(secret, value) {
  return execFileSync(tool, ['sign', secret, value], { encoding: 'utf8' }).replace(/\n$/, '');
}
function cUnsign(input, secrets) {
  const r = spawnSync(tool, ['unsign', input, ...secrets], { encoding: 'utf8' });
  if (r.status === 1 && r.stdout === 'false\n') return false;
  if (r.status !== 0) fail(`tool unsign exited ${r.status}: ${r.stderr}`);
  const line = r.stdout.replace(/\n$/, '');
  const sp = line.indexOf(' ');
  return { index: Number(line.slice(0, sp)), value: line.slice(sp + 1) };
}

const secrets = [
  'keyboard cat',
  'nyan cat',
  '',
  'hex:' + Buffer.from([...Array(32).keys()]).toString('hex'),
  'hex:ff00fe01' + crypto.randomBytes(12).toString('hex'),
  'x'.repeat(100), // longer than the 64-byte block: hashed first
  'h\u00e9llo \u2603',
];

const ids = ['apple', 'a.b', '', '%', '/foo', 'hrUjCnwaZpmnU9oJmZTfH4rMSdHuVvyf'];
for (let i = 0; i < 10; i++) ids.push(crypto.randomBytes(24).toString('base64url'));

// The fixed vector first: if this fails, nothing else matters.
expectEqual(node.sign('apple', 'keyboard cat'),
  'apple.D8Y+pkTAmeR0PobOhY4G97PRW+j7bUnP/5m6/On1MCU', 'node vector');

for (const [si, secret] of secrets.entries()) {
  const other = secrets[(si + 1) % secrets.length];
  for (const id of ids) {
    // Node signs, C verifies.
    const nodeSigned = node.sign(id, secret);
    const r = cUnsign(nodeSigned, [other, secret]);
    if (r === false) fail(`C rejected Node's signature of ${JSON.stringify(id)} with secret #${si}`);
    expectEqual(r.index, 1, 'C: matching secret index');
    expectEqual(r.value, id, 'C: unsigned value');
    // C signs identically, and Node accepts it.
    const cSigned = cSign(secret, id);
    expectEqual(cSigned, nodeSigned, 'C signature equals Node signature');
    expectEqual(node.unsign(cSigned, secret), id, 'Node unsign of C signature');
    // Mismatched secret: both reject.
    expectEqual(node.unsign(cSigned, other), false, 'Node rejects other secret');
    expectEqual(cUnsign(cSigned, [other]), false, 'C rejects other secret');
    // Tampering: a re-added '=' and a flipped character are rejected by both.
    expectEqual(node.unsign(cSigned + '=', secret), false, 'Node rejects padding');
    expectEqual(cUnsign(cSigned + '=', [secret]), false, 'C rejects padding');
    const flipped = cSigned.slice(0, -1) + (cSigned.endsWith('A') ? 'B' : 'A');
    expectEqual(node.unsign(flipped, secret), false, 'Node rejects tampering');
    expectEqual(cUnsign(flipped, [secret]), false, 'C rejects tampering');
  }
}

// The command-line form of sign.js itself, once each way.
const script = path.join(__dirname, 'sign.js');
const viaCli = execFileSync(process.execPath, [script, 'sign', 'nyan cat', 'abc'],
  { encoding: 'utf8' }).trim();
expectEqual(viaCli, cSign('nyan cat', 'abc'), 'sign.js CLI vs C');
const un = spawnSync(process.execPath, [script, 'unsign', 'keyboard cat', viaCli], { encoding: 'utf8' });
expectEqual(un.status, 1, 'sign.js CLI rejects other secret');

console.log(`ok: ${checks} checks, ${secrets.length} secrets x ${ids.length} ids`);
