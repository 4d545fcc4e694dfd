#!/usr/bin/env node
// sign.js - cookie-signature 1.0.7 (the version express-session pins) from
// the command line, for csession's interop tests.
//
//   node sign.js sign SECRET VALUE     prints VALUE.SIGNATURE
//   node sign.js unsign SECRET INPUT   prints the value, or "false" (exit 1)
//
// A SECRET written as "hex:0001ff" is the binary Buffer of those bytes, so
// tests can use secrets that are not valid UTF-8 text.
'use strict';

// Fails loudly when node_modules is missing: the test must not pass then.
const signature = require('cookie-signature');

function parseSecret(s) {
  return s.startsWith('hex:') ? Buffer.from(s.slice(4), 'hex') : s;
}

function sign(value, secret) {
  return signature.sign(value, parseSecret(secret));
}

function unsign(input, secret) {
  return signature.unsign(input, parseSecret(secret));
}

module.exports = { sign, unsign, parseSecret };

if (require.main === module) {
  const [cmd, secret, value] = process.argv.slice(2);
  if ((cmd !== 'sign' && cmd !== 'unsign') || secret === undefined ||
      value === undefined) {
    process.stderr.write('usage: sign.js sign|unsign SECRET VALUE\n');
    process.exit(2);
  }
  if (cmd === 'sign') {
    process.stdout.write(sign(value, secret) + '\n');
  } else {
    const v = unsign(value, secret);
    process.stdout.write((v === false ? 'false' : v) + '\n');
    process.exit(v === false ? 1 : 0);
  }
}
