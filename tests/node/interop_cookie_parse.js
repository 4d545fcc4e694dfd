#!/usr/bin/env node
// interop_cookie_parse.js TOOL - csession's Cookie header scanner against
// cookie@0.7.2's parse() (the version express-session pins), on thousands
// of random hostile headers (ctest: node_cookie_parse).
//
// For each header and name, Node computes cookie.parse(header)[name] and
// the C tool (test_node_sign_tool parse) prints what csession would read:
// the first value, unquoted, percent-decoded unless that throws. Headers
// are ASCII (Node reads header bytes as latin1, so non-ASCII bytes would
// compare differently by construction, not by bug) and both sides are
// compared as UTF-8 bytes.
'use strict';

const { spawnSync } = require('child_process');
const cookie = require('cookie'); // fails loudly without node_modules

const tool = process.argv[2];
if (!tool) {
  console.error('usage: interop_cookie_parse.js PATH_TO_test_node_sign_tool');
  process.exit(2);
}
if (require('cookie/package.json').version !== '0.7.2') {
  console.error('cookie 0.7.2 expected');
  process.exit(1);
}

// A seeded generator so a failure can be reproduced.
// xorshift32 in 32-bit integer arithmetic (a float LCG loses its low bits).
let seed = (Number(process.env.CSN_SEED || 20250101) >>> 0) || 1;
function rnd(n) {
  seed ^= seed << 13;
  seed >>>= 0;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  seed >>>= 0;
  return seed % n;
}

const pieces = ['a', 'b', 'connect.sid', '=', ';', ' ', '\t', '"', '%', '%2', '%3A',
  '%E2%82%AC', '%C3', '%ZZ', '%C0%80', 's:', '.', 'x', '==', ';;', ' ; ', 'a=1',
  'connect.sid=', '"v"', '%F0%9F%98%80', '%ED%A0%80', '+', '/'];
const names = ['a', 'b', 'connect.sid', 'x'];

const cases = [];
for (let i = 0; i < 5000; i++) {
  // Mostly name=value pairs (so names are found), with junk mixed in.
  const noise = () => (rnd(8) === 0 ? String.fromCharCode(1 + rnd(127)) // any ASCII
    : pieces[rnd(pieces.length)]);
  const ws = () => [' ', '\t', '', ''][rnd(4)];
  let h = '';
  const parts = 1 + rnd(12);
  for (let k = 0; k < parts; k++) {
    if (rnd(3) > 0) {
      h += ws() + names[rnd(names.length)] + ws() + '=' + ws();
      for (let v = rnd(5); v > 0; v--) h += noise();
    } else {
      h += noise();
    }
    h += ['; ', ';', ' ; ', ''][rnd(4)];
  }
  cases.push([h, names[rnd(names.length)]]);
}
// Fixed cases from the spec (2.4).
cases.push(['connect.sid=garbage; connect.sid=s%3Aok', 'connect.sid']);
cases.push(['foo; connect.sid=x', 'connect.sid']);
cases.push(['a=1; connect.sid', 'connect.sid']);
cases.push(['connect.sid="s%3Aabc"', 'connect.sid']);

const hex = (s) => Buffer.from(s, 'latin1').toString('hex');
const input = cases.map(([h, n]) => `${hex(h)} ${hex(n)}\n`).join('');
const r = spawnSync(tool, ['parse'], { input, encoding: 'utf8', maxBuffer: 1 << 26 });
if (r.status !== 0) {
  console.error(`tool exited ${r.status}: ${r.stderr}`);
  process.exit(1);
}
const lines = r.stdout.split('\n');
let failures = 0;
cases.forEach(([h, n], i) => {
  const v = cookie.parse(h)[n];
  const want = v === undefined ? '-' : Buffer.from(v, 'utf8').toString('hex');
  if (lines[i] !== want) {
    if (failures++ < 10)
      console.error(`MISMATCH header=${JSON.stringify(h)} name=${n}: C=${lines[i]} node=${want}`);
  }
});
// The generator must produce a useful mix, or agreement proves little.
const found = lines.slice(0, cases.length).filter((l) => l !== '-').length;
if (found < cases.length / 4) {
  console.error(`FAIL: only ${found} of ${cases.length} headers held the name`);
  process.exit(1);
}
if (failures) {
  console.error(`FAIL: ${failures} of ${cases.length} headers differ`);
  process.exit(1);
}
console.log(`ok: ${cases.length} headers (${found} with a value) agree with cookie@0.7.2`);
