#!/usr/bin/python3
"""mongo_server.py - a MongoDB-wire-compatible, in-memory server for tests.

There is no mongod on the test machines, so the tests run against this:
a TCP server on 127.0.0.1 that speaks the MongoDB wire protocol (OP_MSG,
and OP_QUERY for the legacy handshake) and answers the commands the
drivers under test send (libmongoc 1.23, the Node `mongodb` driver 6,
pymongo), reporting itself as a MongoDB 6.0 standalone (wire version 17).

The wire layer and the query engine are written here rather than taken
from mockupdb/mongomock: mongomock compares sub-documents without regard
to field order, lets `true` match `1` and turns an int64 into an int32
after $inc, and each of those would hide a bug in a store under test. The
`bson` module of Debian's python3-bson (pymongo) does the encoding, so
types round-trip exactly: int32 stays int32 (Python int), int64 stays
int64 (bson.Int64), doubles stay doubles, dates are naive UTC datetimes
at millisecond precision.

Run with Debian's interpreter (it sees python3-bson):
    /usr/bin/python3 tests/mongo/mongo_server.py --port 27017
Logs go to stderr only. SIGTERM and SIGINT stop it cleanly (exit 0).
See tests/mongo/README.md for what differs from a real mongod.
"""

import argparse
import copy
import datetime
import functools
import math
import os
import random
import re
import signal
import socket
import socketserver
import struct
import sys
import threading
import time

import bson
import bson.errors
from bson import ObjectId
from bson.binary import Binary
from bson.codec_options import CodecOptions
from bson.int64 import Int64
from bson.max_key import MaxKey
from bson.min_key import MinKey
from bson.raw_bson import RawBSONDocument
from bson.regex import Regex
from bson.timestamp import Timestamp

try:
    from bson.decimal128 import Decimal128
except ImportError:  # pragma: no cover
    Decimal128 = None

# Plain dicts keep the field order of the wire; naive datetimes are UTC.
# unicode_decode_error_handler stays strict: mongod refuses invalid UTF-8.
CODEC = CodecOptions(document_class=dict, tz_aware=False)

MAX_WIRE_VERSION = 17  # MongoDB 6.0
MAX_BSON_SIZE = 16 * 1024 * 1024
MAX_MESSAGE_SIZE = 48000000
MAX_WRITE_BATCH = 100000
DEFAULT_BATCH = 101
INT32_MIN, INT32_MAX = -(2 ** 31), 2 ** 31 - 1
INT64_MIN, INT64_MAX = -(2 ** 63), 2 ** 63 - 1

OP_REPLY, OP_QUERY, OP_MSG, OP_COMPRESSED = 1, 2004, 2013, 2012
MSG_CHECKSUM, MSG_MORE_TO_COME = 1, 2

LOG_VERBOSE = False


def log(msg):
  sys.stderr.write('[mongo_server] %s\n' % msg)
  sys.stderr.flush()


class CmdError(Exception):
  """A command failure as mongod reports it: {ok: 0, code, codeName}."""

  def __init__(self, code, msg, name=None):
    Exception.__init__(self, msg)
    self.code = code
    self.msg = msg
    self.name = name or CODE_NAMES.get(code, 'Error')


CODE_NAMES = {
    2: 'BadValue', 8: 'UnknownError', 9: 'FailedToParse', 14: 'TypeMismatch',
    26: 'NamespaceNotFound', 27: 'IndexNotFound', 43: 'CursorNotFound',
    48: 'NamespaceExists', 59: 'CommandNotFound', 66: 'ImmutableField',
    67: 'CannotCreateIndex', 72: 'InvalidOptions', 73: 'InvalidNamespace',
    85: 'IndexOptionsConflict', 86: 'IndexKeySpecsConflict',
    115: 'CommandNotSupported', 11000: 'DuplicateKey', 40324: 'Location40324',
    40415: 'Location40415', 51091: 'Location51091',
}


class _Missing(object):
  """A path that leads nowhere (distinct from an explicit null)."""

  def __repr__(self):
    return 'MISSING'


MISSING = _Missing()


def utcnow():
  """Now as the naive UTC datetime BSON dates decode to, at ms precision."""
  now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
  return now.replace(microsecond=now.microsecond // 1000 * 1000)


# --------------------------------------------------------------------------
# BSON ordering and equality (mongod's type brackets and comparison order)
# --------------------------------------------------------------------------

def type_rank(v):
  # bool before int: bool is an int subclass in Python.
  if v is None or v is MISSING:
    return 2
  if isinstance(v, bool):
    return 9
  if isinstance(v, (int, float)) or (Decimal128 and isinstance(v, Decimal128)):
    return 3
  if isinstance(v, str):
    return 4
  if isinstance(v, (dict, RawBSONDocument)):
    return 5
  if isinstance(v, (list, tuple)):
    return 6
  if isinstance(v, (bytes, Binary)):
    return 7
  if isinstance(v, ObjectId):
    return 8
  if isinstance(v, datetime.datetime):
    return 10
  if isinstance(v, Timestamp):
    return 11
  if isinstance(v, (Regex, re.Pattern)):
    return 12
  if isinstance(v, MinKey):
    return 1
  if isinstance(v, MaxKey):
    return 13
  return 14


def _num(v):
  if Decimal128 and isinstance(v, Decimal128):
    return float(v.to_decimal())
  return v


def _cmp(a, b):
  return (a > b) - (a < b)


def bson_cmp(a, b):
  """-1, 0 or 1 as mongod orders the two values (field order matters)."""
  ra, rb = type_rank(a), type_rank(b)
  if ra != rb:
    return _cmp(ra, rb)
  if ra == 3:
    a, b = _num(a), _num(b)
    an = isinstance(a, float) and math.isnan(a)
    bn = isinstance(b, float) and math.isnan(b)
    if an or bn:
      return _cmp(not an, not bn)
    return _cmp(a, b)
  if ra == 5:
    a, b = list(a.items()), list(b.items())
    for (ka, va), (kb, vb) in zip(a, b):
      c = _cmp(type_rank(va), type_rank(vb))
      if c == 0:
        c = _cmp(ka, kb)
      if c == 0:
        c = bson_cmp(va, vb)
      if c != 0:
        return c
    return _cmp(len(a), len(b))
  if ra == 6:
    for va, vb in zip(a, b):
      c = bson_cmp(va, vb)
      if c != 0:
        return c
    return _cmp(len(a), len(b))
  if ra == 7:
    sa = getattr(a, 'subtype', 0)
    sb = getattr(b, 'subtype', 0)
    return _cmp((len(a), sa, bytes(a)), (len(b), sb, bytes(b)))
  if ra == 8:
    return _cmp(a.binary, b.binary)
  if ra == 11:
    return _cmp((a.time, a.inc), (b.time, b.inc))
  if ra == 12:
    return _cmp((a.pattern, str(a.flags)), (b.pattern, str(b.flags)))
  if ra in (1, 2, 13):
    return 0
  if ra == 14:
    return _cmp(repr(a), repr(b))
  return _cmp(a, b)


def bson_eq(a, b):
  return bson_cmp(a, b) == 0


def hash_key(v):
  """A hashable key equal for values mongod considers equal (1 == 1.0)."""
  r = type_rank(v)
  if r == 3:
    v = _num(v)
    if isinstance(v, float):
      if math.isnan(v):
        return ('nan',)
      if v.is_integer():
        return ('n', int(v))
    return ('n', int(v))
  if r == 5:
    return ('d', tuple((k, hash_key(x)) for k, x in v.items()))
  if r == 6:
    return ('a', tuple(hash_key(x) for x in v))
  if r == 7:
    return ('x', getattr(v, 'subtype', 0), bytes(v))
  if r == 2:
    return ('z',)
  if r in (4, 8, 9, 10):
    return (r, v)
  return (r, repr(v))


def show(v):
  """A short mongo-shell-like rendering for error messages."""
  if isinstance(v, str):
    return '"%s"' % v
  if isinstance(v, dict):
    return '{ %s }' % ', '.join('%s: %s' % (k, show(x)) for k, x in v.items())
  if isinstance(v, list):
    return '[ %s ]' % ', '.join(show(x) for x in v)
  if isinstance(v, ObjectId):
    return "ObjectId('%s')" % v
  if isinstance(v, datetime.datetime):
    return 'new Date(%d)' % to_millis(v)
  return repr(v)


def to_millis(d):
  return int((d - datetime.datetime(1970, 1, 1)).total_seconds() * 1000)


# --------------------------------------------------------------------------
# Paths
# --------------------------------------------------------------------------

def path_values(value, parts):
  """Every value a dotted path reaches, traversing arrays as mongod's
  matcher does; [] when it reaches nothing."""
  if not parts:
    return [value]
  head, rest = parts[0], parts[1:]
  if isinstance(value, dict):
    if head in value:
      return path_values(value[head], rest)
    return []
  if isinstance(value, list):
    out = []
    if head.isdigit() and int(head) < len(value):
      out.extend(path_values(value[int(head)], rest))
    for el in value:
      if isinstance(el, dict):
        out.extend(path_values(el, parts))
    return out
  return []


def get_one(doc, parts):
  """The single value at a path (no array fan-out), or MISSING."""
  v = doc
  for p in parts:
    if isinstance(v, dict) and p in v:
      v = v[p]
    elif isinstance(v, list) and p.isdigit() and int(p) < len(v):
      v = v[int(p)]
    else:
      return MISSING
  return v


def set_path(doc, parts, value):
  cur = doc
  for i, p in enumerate(parts[:-1]):
    if isinstance(cur, list):
      if not p.isdigit():
        raise CmdError(28, "Cannot create field '%s' in element {%s: %s}"
                       % (p, parts[i - 1] if i else '', show(cur)),
                       'PathNotViable')
      idx = int(p)
      while len(cur) <= idx:
        cur.append(None)
      if not isinstance(cur[idx], (dict, list)):
        cur[idx] = {}
      cur = cur[idx]
    elif isinstance(cur, dict):
      nxt = cur.get(p, MISSING)
      if nxt is MISSING:
        cur[p] = {}
        nxt = cur[p]
      elif not isinstance(nxt, (dict, list)):
        raise CmdError(28, "Cannot create field '%s' in element {%s: %s}"
                       % (parts[i + 1], p, show(nxt)), 'PathNotViable')
      cur = nxt
  last = parts[-1]
  if isinstance(cur, list):
    if not last.isdigit():
      raise CmdError(28, "Cannot create field '%s' in an array" % last,
                     'PathNotViable')
    idx = int(last)
    while len(cur) <= idx:
      cur.append(None)
    cur[idx] = value
  else:
    cur[last] = value


def unset_path(doc, parts):
  parent = get_one(doc, parts[:-1]) if len(parts) > 1 else doc
  last = parts[-1]
  if isinstance(parent, dict):
    parent.pop(last, None)
  elif isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
    parent[int(last)] = None  # $unset of an array element leaves null


# --------------------------------------------------------------------------
# Query matching
# --------------------------------------------------------------------------

def is_operator_doc(v):
  if not isinstance(v, dict) or not v:
    return False
  return next(iter(v)).startswith('$')


def _is_regex(v):
  return isinstance(v, (Regex, re.Pattern))


def _regex_of(v, options=''):
  if isinstance(v, re.Pattern):
    return v
  if isinstance(v, Regex):
    flags = v.flags if isinstance(v.flags, int) else 0
    if isinstance(v.flags, str):
      options = options + v.flags
    v = v.pattern
  else:
    flags = 0
  for ch in options:
    flags |= {'i': re.I, 'm': re.M, 's': re.S, 'x': re.X}.get(ch, 0)
  return re.compile(v, flags)


def _expand(cands):
  """Candidates plus the elements of candidate arrays."""
  for c in cands:
    yield c
    if isinstance(c, list):
      for e in c:
        yield e


def eq_match(cands, v):
  if _is_regex(v):
    rx = _regex_of(v)
    return any(isinstance(c, str) and rx.search(c) for c in _expand(cands))
  if v is None:
    if not cands:
      return True
    return any(c is None for c in _expand(cands))
  return any(bson_eq(c, v) for c in _expand(cands))


_CMP_OPS = {
    '$gt': lambda c: c > 0, '$gte': lambda c: c >= 0,
    '$lt': lambda c: c < 0, '$lte': lambda c: c <= 0,
}

TYPE_ALIASES = {
    'double': 1, 'string': 2, 'object': 3, 'array': 4, 'binData': 5,
    'objectId': 7, 'bool': 8, 'date': 9, 'null': 10, 'regex': 11,
    'int': 16, 'timestamp': 17, 'long': 18, 'decimal': 19, 'minKey': -1,
    'maxKey': 127,
}


def bson_type_number(v):
  if v is None:
    return 10
  if isinstance(v, bool):
    return 8
  if isinstance(v, Int64):
    return 18
  if isinstance(v, int):
    return 16 if INT32_MIN <= v <= INT32_MAX else 18
  if isinstance(v, float):
    return 1
  if isinstance(v, str):
    return 2
  if isinstance(v, dict):
    return 3
  if isinstance(v, list):
    return 4
  if isinstance(v, (bytes, Binary)):
    return 5
  if isinstance(v, ObjectId):
    return 7
  if isinstance(v, datetime.datetime):
    return 9
  if _is_regex(v):
    return 11
  if isinstance(v, Timestamp):
    return 17
  if Decimal128 and isinstance(v, Decimal128):
    return 19
  if isinstance(v, MinKey):
    return -1
  if isinstance(v, MaxKey):
    return 127
  return 0


def op_match(cands, op, arg, spec):
  if op == '$eq':
    return eq_match(cands, arg)
  if op == '$ne':
    return not eq_match(cands, arg)
  if op in _CMP_OPS:
    test = _CMP_OPS[op]
    ra = type_rank(arg)
    for c in _expand(cands):
      if type_rank(c) == ra and test(bson_cmp(c, arg)):
        return True
    return False
  if op == '$in':
    if not isinstance(arg, list):
      raise CmdError(2, '$in needs an array')
    return any(eq_match(cands, v) for v in arg)
  if op == '$nin':
    if not isinstance(arg, list):
      raise CmdError(2, '$nin needs an array')
    return not any(eq_match(cands, v) for v in arg)
  if op == '$exists':
    return bool(cands) == bool(arg)
  if op == '$not':
    if isinstance(arg, dict):
      return not all(op_match(cands, o, a, arg) for o, a in arg.items())
    if _is_regex(arg):
      return not eq_match(cands, arg)
    raise CmdError(2, '$not needs a regex or a document')
  if op == '$regex':
    rx = _regex_of(arg, spec.get('$options', ''))
    return any(isinstance(c, str) and rx.search(c) for c in _expand(cands))
  if op == '$options':
    if '$regex' not in spec:
      raise CmdError(2, '$options needs a $regex')
    return True
  if op == '$size':
    return any(isinstance(c, list) and len(c) == arg for c in cands)
  if op == '$all':
    if not arg:
      return False
    return all(op_match(cands, next(iter(v)), v[next(iter(v))], v)
               if isinstance(v, dict) and '$elemMatch' in v
               else eq_match(cands, v) for v in arg)
  if op == '$elemMatch':
    for c in cands:
      if not isinstance(c, list):
        continue
      for e in c:
        if is_operator_doc(arg):
          if all(op_match([e], o, a, arg) for o, a in arg.items()):
            return True
        elif isinstance(e, dict) and matches(e, arg):
          return True
    return False
  if op == '$type':
    wanted = arg if isinstance(arg, list) else [arg]
    nums = set()
    for w in wanted:
      if w == 'number':
        nums.update((1, 16, 18, 19))
      else:
        nums.add(TYPE_ALIASES.get(w, w))
    if 4 in nums and any(isinstance(c, list) for c in cands):
      return True
    return any(bson_type_number(c) in nums for c in _expand(cands))
  if op == '$mod':
    d, r = arg
    return any(type_rank(c) == 3 and not isinstance(c, bool)
               and int(c) % int(d) == r for c in _expand(cands))
  if op == '$comment':
    return True
  raise CmdError(2, 'unknown operator: %s' % op)


def matches(doc, filt):
  """Does doc match the query filter (mongod semantics, order-sensitive
  equality for sub-documents)?"""
  for key, v in filt.items():
    if key.startswith('$'):
      if key == '$and':
        if not isinstance(v, list) or not v:
          raise CmdError(2, '$and/$or/$nor must be a nonempty array')
        if not all(matches(doc, f) for f in v):
          return False
      elif key == '$or':
        if not isinstance(v, list) or not v:
          raise CmdError(2, '$and/$or/$nor must be a nonempty array')
        if not any(matches(doc, f) for f in v):
          return False
      elif key == '$nor':
        if not isinstance(v, list) or not v:
          raise CmdError(2, '$and/$or/$nor must be a nonempty array')
        if any(matches(doc, f) for f in v):
          return False
      elif key == '$comment':
        continue
      elif key == '$expr':
        if not truthy(eval_expr(v, doc)):
          return False
      else:
        raise CmdError(2, 'unknown top level operator: %s' % key)
      continue
    cands = path_values(doc, key.split('.')) if '.' in key else (
        [doc[key]] if key in doc else [])
    if is_operator_doc(v):
      for op, arg in v.items():
        if not op_match(cands, op, arg, v):
          return False
    elif not eq_match(cands, v):
      return False
  return True


# --------------------------------------------------------------------------
# Aggregation expressions (the common subset)
# --------------------------------------------------------------------------

def truthy(v):
  if v is None or v is MISSING or v is False:
    return False
  if type_rank(v) == 3 and _num(v) == 0:
    return False
  return True


def expr_path(v, parts):
  if not parts:
    return v
  if isinstance(v, dict):
    return expr_path(v.get(parts[0], MISSING), parts[1:]) \
        if parts[0] in v else MISSING
  if isinstance(v, list):
    out = []
    for el in v:
      r = expr_path(el, parts) if isinstance(el, (dict, list)) else MISSING
      if r is not MISSING:
        out.append(r)
    return out
  return MISSING


def add_numbers(a, b):
  """a + b with mongod's type promotion: int32 -> int64 -> double."""
  if isinstance(a, float) or isinstance(b, float):
    return float(_num(a)) + float(_num(b))
  if Decimal128 and (isinstance(a, Decimal128) or isinstance(b, Decimal128)):
    return Decimal128(_dec(a) + _dec(b))
  r = int(a) + int(b)
  if isinstance(a, Int64) or isinstance(b, Int64) or not (
      INT32_MIN <= r <= INT32_MAX):
    if not (INT64_MIN <= r <= INT64_MAX):
      return float(r)
    return Int64(r)
  return r


def mul_numbers(a, b):
  if isinstance(a, float) or isinstance(b, float):
    return float(_num(a)) * float(_num(b))
  r = int(a) * int(b)
  if isinstance(a, Int64) or isinstance(b, Int64) or not (
      INT32_MIN <= r <= INT32_MAX):
    if not (INT64_MIN <= r <= INT64_MAX):
      return float(r)
    return Int64(r)
  return r


def _dec(v):
  import decimal
  if isinstance(v, Decimal128):
    return v.to_decimal()
  return decimal.Decimal(v)


def is_number(v):
  return type_rank(v) == 3


def eval_expr(e, doc):
  if isinstance(e, str):
    if e.startswith('$$'):
      if e == '$$ROOT' or e == '$$CURRENT':
        return doc
      if e.startswith('$$ROOT.') or e.startswith('$$CURRENT.'):
        return expr_path(doc, e.split('.')[1:])
      if e == '$$NOW':
        return utcnow()
      raise CmdError(17276, 'Use of undefined variable: %s' % e[2:])
    if e.startswith('$'):
      return expr_path(doc, e[1:].split('.'))
    return e
  if isinstance(e, list):
    return [eval_expr(x, doc) for x in e]
  if isinstance(e, dict):
    if len(e) == 1 and next(iter(e)).startswith('$'):
      op, arg = next(iter(e.items()))
      return eval_operator(op, arg, doc)
    out = {}
    for k, x in e.items():
      r = eval_expr(x, doc)
      if r is not MISSING:
        out[k] = r
    return out
  return e


def _args(arg, doc):
  if isinstance(arg, list):
    return [eval_expr(x, doc) for x in arg]
  return [eval_expr(arg, doc)]


def eval_operator(op, arg, doc):
  if op == '$literal':
    return arg
  a = None if op in ('$cond', '$ifNull', '$and', '$or') else _args(arg, doc)
  if op == '$add':
    r = 0
    for x in a:
      if x is None or x is MISSING:
        return None
      if isinstance(x, datetime.datetime):
        return x
      r = add_numbers(r, x)
    return r
  if op == '$subtract':
    x, y = a
    if x is None or y is None or x is MISSING or y is MISSING:
      return None
    if isinstance(x, datetime.datetime) and isinstance(y, datetime.datetime):
      return Int64(to_millis(x) - to_millis(y))
    if isinstance(x, datetime.datetime):
      return x - datetime.timedelta(milliseconds=float(y))
    return add_numbers(x, -y if not isinstance(y, Int64) else Int64(-y))
  if op == '$multiply':
    r = 1
    for x in a:
      if x is None or x is MISSING:
        return None
      r = mul_numbers(r, x)
    return r
  if op == '$divide':
    return float(_num(a[0])) / float(_num(a[1]))
  if op == '$concat':
    if any(x is None or x is MISSING for x in a):
      return None
    return ''.join(a)
  if op == '$toString':
    x = a[0]
    return None if x is None or x is MISSING else (
        str(x) if not isinstance(x, bool) else ('true' if x else 'false'))
  if op in ('$eq', '$ne', '$gt', '$gte', '$lt', '$lte', '$cmp'):
    x, y = [None if v is MISSING else v for v in a]
    c = bson_cmp(x, y)
    return {'$eq': c == 0, '$ne': c != 0, '$gt': c > 0, '$gte': c >= 0,
            '$lt': c < 0, '$lte': c <= 0, '$cmp': c}[op]
  if op == '$and':
    return all(truthy(eval_expr(x, doc)) for x in (
        arg if isinstance(arg, list) else [arg]))
  if op == '$or':
    return any(truthy(eval_expr(x, doc)) for x in (
        arg if isinstance(arg, list) else [arg]))
  if op == '$not':
    return not truthy(a[0])
  if op == '$ifNull':
    vals = arg if isinstance(arg, list) else [arg]
    for x in vals[:-1]:
      r = eval_expr(x, doc)
      if r is not None and r is not MISSING:
        return r
    return eval_expr(vals[-1], doc)
  if op == '$cond':
    if isinstance(arg, dict):
      c, t, f = arg['if'], arg['then'], arg['else']
    else:
      c, t, f = arg
    return eval_expr(t if truthy(eval_expr(c, doc)) else f, doc)
  if op == '$size':
    if not isinstance(a[0], list):
      raise CmdError(17124, 'The argument to $size must be an array')
    return len(a[0])
  if op == '$arrayElemAt':
    arr, idx = a
    if not isinstance(arr, list):
      return None
    try:
      return arr[int(idx)]
    except IndexError:
      return MISSING
  if op in ('$sum', '$max', '$min', '$avg'):
    vals = a[0] if len(a) == 1 and isinstance(a[0], list) else a
    nums = [x for x in vals if is_number(x) and not isinstance(x, bool)]
    if op == '$sum':
      r = 0
      for x in nums:
        r = add_numbers(r, x)
      return r
    if op == '$avg':
      return (sum(float(_num(x)) for x in nums) / len(nums)) if nums else None
    vals = [x for x in vals if x is not None and x is not MISSING]
    if not vals:
      return None
    best = vals[0]
    for x in vals[1:]:
      c = bson_cmp(x, best)
      if (op == '$max' and c > 0) or (op == '$min' and c < 0):
        best = x
    return best
  if op == '$toLower':
    return (a[0] or '').lower()
  if op == '$toUpper':
    return (a[0] or '').upper()
  if op == '$type':
    x = a[0]
    if x is MISSING:
      return 'missing'
    n = bson_type_number(x)
    for k, v in TYPE_ALIASES.items():
      if v == n:
        return k
    return 'unknown'
  raise CmdError(168, "Unrecognized expression '%s'" % op, 'InvalidPipelineOperator')


# --------------------------------------------------------------------------
# Projection and sort
# --------------------------------------------------------------------------

def _path_tree(paths):
  tree = {}
  for p, val in paths:
    node = tree
    parts = p.split('.')
    for q in parts[:-1]:
      nxt = node.get(q)
      if not isinstance(nxt, dict):
        nxt = node[q] = {}
      node = nxt
    node[parts[-1]] = val
  return tree


def _include(value, tree):
  if isinstance(value, list):
    return [_include(e, tree) for e in value if isinstance(e, (dict, list))]
  out = {}
  for k, v in value.items():
    if k not in tree:
      continue
    t = tree[k]
    if isinstance(t, dict):
      if isinstance(v, (dict, list)):
        out[k] = _include(v, t)
    else:
      out[k] = v
  return out


def _exclude(value, tree):
  if isinstance(value, list):
    return [_exclude(e, tree) if isinstance(e, (dict, list)) else e
            for e in value]
  out = {}
  for k, v in value.items():
    if k in tree:
      t = tree[k]
      if not isinstance(t, dict):
        continue
      if isinstance(v, (dict, list)):
        v = _exclude(v, t)
    out[k] = v
  return out


def project(doc, spec, allow_exprs=False):
  """A find/$project projection: inclusion or exclusion; in aggregation
  also computed fields. Field order follows the document (mongod)."""
  if not spec:
    return doc
  include_id = True
  incl, excl, computed = [], [], []
  for k, v in spec.items():
    if k == '_id' and (v is False or (is_number(v) and not isinstance(v, bool)
                                      and _num(v) == 0)):
      include_id = False
      continue
    if isinstance(v, bool) or (is_number(v) and not isinstance(v, bool)):
      if truthy(v):
        incl.append((k, True))
      else:
        excl.append((k, True))
    elif isinstance(v, dict) and is_operator_doc(v) and not allow_exprs and \
        next(iter(v)) in ('$slice', '$elemMatch', '$meta'):
      raise CmdError(2, 'projection operator %s is not supported by the '
                     'test server' % next(iter(v)))
    else:
      computed.append((k, v))
  if incl and excl:
    raise CmdError(31254, 'Cannot do exclusion on field %s in inclusion '
                   'projection' % excl[0][0], 'Location31254')
  if incl or computed:
    tree = _path_tree(incl)
    if include_id and '_id' in doc:
      tree.setdefault('_id', True)
    out = _include(doc, tree)
    if '_id' in out:  # _id leads, as in mongod's output
      out = dict([('_id', out.pop('_id'))] + list(out.items()))
    if any('.' in k for k, _ in computed):
      out = copy.deepcopy(out)  # set_path below must not reach shared data
    for k, e in computed:
      r = eval_expr(e, doc)
      if r is not MISSING:
        set_path(out, k.split('.'), r)
    return out
  tree = _path_tree(excl)
  if not include_id:
    tree['_id'] = True
  return _exclude(doc, tree)


def sort_docs(docs, spec):
  keys = []
  for k, d in spec.items():
    if isinstance(d, dict):
      raise CmdError(2, 'sort by $meta is not supported by the test server')
    if k == '$natural':
      if _num(d) < 0:
        docs = list(reversed(docs))
      continue
    keys.append((k.split('.'), -1 if _num(d) < 0 else 1))
  if not keys:
    return list(docs)

  def sort_value(doc, parts, direction):
    cands = list(path_values(doc, parts))
    vals = []
    for c in cands:
      if isinstance(c, list):
        vals.extend(c if c else [MISSING])
      else:
        vals.append(c)
    if not vals:
      return None
    best = vals[0]
    for v in vals[1:]:
      c = bson_cmp(v, best)
      if (direction > 0 and c < 0) or (direction < 0 and c > 0):
        best = v
    return best

  def compare(a, b):
    for parts, direction in keys:
      c = bson_cmp(sort_value(a, parts, direction),
                   sort_value(b, parts, direction))
      if c:
        return c * direction
    return 0

  return sorted(docs, key=functools.cmp_to_key(compare))


# --------------------------------------------------------------------------
# Updates
# --------------------------------------------------------------------------

UPDATE_OPS = ('$set', '$unset', '$setOnInsert', '$inc', '$mul', '$min',
              '$max', '$rename', '$push', '$addToSet', '$pull', '$pullAll',
              '$pop', '$currentDate')


def is_update_ops(u):
  if not isinstance(u, dict):
    raise CmdError(9, 'Update document must be a document', 'FailedToParse')
  keys = list(u.keys())
  if not keys:
    return False
  dollar = [k.startswith('$') for k in keys]
  if all(dollar):
    return True
  if any(dollar):
    raise CmdError(9, "Unknown modifier: %s. Expected a valid update modifier "
                   "or pipeline-style update specified as an array"
                   % [k for k in keys if k.startswith('$')][0], 'FailedToParse')
  return False


def apply_update(old, u, is_insert=False):
  """A new document: old with the update operators applied (old itself is
  never changed: cursors may still hold it)."""
  doc = copy.deepcopy(old)
  for op, fields in u.items():
    if op not in UPDATE_OPS:
      raise CmdError(9, 'Unknown modifier: %s. Expected a valid update '
                     'modifier or pipeline-style update specified as an array'
                     % op, 'FailedToParse')
    if not isinstance(fields, dict):
      raise CmdError(9, 'Modifiers operate on fields but we found type %s '
                     'instead' % type(fields).__name__, 'FailedToParse')
    if op == '$setOnInsert' and not is_insert:
      continue
    for path, arg in fields.items():
      parts = path.split('.')
      if parts[0] == '_id' and op != '$setOnInsert' and not is_insert:
        cur = get_one(doc, parts)
        if op != '$set' or not bson_eq(cur, arg):
          raise CmdError(66, "Performing an update on the path '_id' would "
                         "modify the immutable field '_id'")
      cur = get_one(doc, parts)
      if op in ('$set', '$setOnInsert'):
        set_path(doc, parts, copy.deepcopy(arg))
      elif op == '$unset':
        if cur is not MISSING:
          unset_path(doc, parts)
      elif op in ('$inc', '$mul'):
        if not is_number(arg) or isinstance(arg, bool):
          raise CmdError(14, 'Cannot %s with non-numeric argument: {%s: %s}'
                         % ('increment' if op == '$inc' else 'multiply',
                            path, show(arg)))
        if cur is MISSING:
          set_path(doc, parts, arg if op == '$inc' else mul_numbers(0, arg))
        elif not is_number(cur) or isinstance(cur, bool):
          raise CmdError(14, 'Cannot apply %s to a value of non-numeric type. '
                         "{_id: %s} has the field '%s' of non-numeric type %s"
                         % (op, show(doc.get('_id')), parts[-1],
                            type(cur).__name__))
        else:
          set_path(doc, parts, add_numbers(cur, arg) if op == '$inc'
                   else mul_numbers(cur, arg))
      elif op in ('$min', '$max'):
        if cur is MISSING:
          set_path(doc, parts, arg)
        else:
          c = bson_cmp(arg, cur)
          if (op == '$min' and c < 0) or (op == '$max' and c > 0):
            set_path(doc, parts, arg)
      elif op == '$rename':
        if cur is not MISSING:
          unset_path(doc, parts)
          set_path(doc, arg.split('.'), cur)
      elif op == '$currentDate':
        if isinstance(arg, dict) and arg.get('$type') == 'timestamp':
          set_path(doc, parts, Timestamp(int(time.time()), 1))
        else:
          set_path(doc, parts, utcnow())
      elif op in ('$push', '$addToSet'):
        if cur is MISSING:
          cur = []
          set_path(doc, parts, cur)
        elif not isinstance(cur, list):
          raise CmdError(2, "The field '%s' must be an array but is of type %s"
                         % (path, type(cur).__name__))
        each = arg['$each'] if isinstance(arg, dict) and '$each' in arg else [arg]
        for x in each:
          if op == '$addToSet' and any(bson_eq(x, e) for e in cur):
            continue
          cur.append(copy.deepcopy(x))
        if op == '$push' and isinstance(arg, dict) and '$slice' in arg:
          n = int(arg['$slice'])
          cur[:] = cur[:n] if n >= 0 else cur[n:]
      elif op in ('$pull', '$pullAll'):
        if isinstance(cur, list):
          if op == '$pullAll':
            keep = [e for e in cur if not any(bson_eq(e, x) for x in arg)]
          elif is_operator_doc(arg):
            keep = [e for e in cur
                    if not all(op_match([e], o, a, arg) for o, a in arg.items())]
          elif isinstance(arg, dict):
            keep = [e for e in cur if not (isinstance(e, dict) and matches(e, arg))]
          else:
            keep = [e for e in cur if not eq_match([e], arg)]
          cur[:] = keep
      elif op == '$pop':
        if isinstance(cur, list) and cur:
          if _num(arg) < 0:
            cur.pop(0)
          else:
            cur.pop()
  return doc


def upsert_seed(filt):
  """The fields of a new upserted document that come from the filter's
  equality conditions."""
  doc = {}

  def walk(f):
    for k, v in f.items():
      if k == '$and':
        for sub in v:
          walk(sub)
        continue
      if k.startswith('$'):
        continue
      if is_operator_doc(v):
        if '$eq' in v:
          set_path(doc, k.split('.'), copy.deepcopy(v['$eq']))
        continue
      if _is_regex(v):
        continue
      set_path(doc, k.split('.'), copy.deepcopy(v))

  walk(filt)
  return doc


def id_first(doc):
  if '_id' not in doc:
    return dict([('_id', ObjectId())] + list(doc.items()))
  if next(iter(doc)) == '_id':
    return doc
  return dict([('_id', doc['_id'])] + [(k, v) for k, v in doc.items()
                                       if k != '_id'])


# --------------------------------------------------------------------------
# Storage
# --------------------------------------------------------------------------

class Collection(object):
  def __init__(self, name):
    self.name = name
    self.docs = {}  # hash_key(_id) -> document, in insertion order
    self.indexes = [{'v': 2, 'key': {'_id': 1}, 'name': '_id_'}]
    self.options = {}

  def unique_indexes(self):
    return [ix for ix in self.indexes[1:] if ix.get('unique')]

  def candidates(self, filt):
    """Documents that may match: a dictionary lookup when the filter names
    _id exactly (the session stores' every read and write), else all."""
    if filt and '_id' in filt:
      v = filt['_id']
      ids = None
      if not isinstance(v, dict) and not _is_regex(v) and not isinstance(v, list):
        ids = [v]
      elif isinstance(v, dict) and len(v) == 1 and '$eq' in v:
        ids = [v['$eq']]
      elif isinstance(v, dict) and len(v) == 1 and '$in' in v and \
          isinstance(v['$in'], list) and not any(
              _is_regex(x) or isinstance(x, (list, dict)) for x in v['$in']):
        ids = v['$in']
      if ids is not None:
        out, seen = [], set()
        for i in ids:
          k = hash_key(i)
          d = self.docs.get(k)
          if d is not None and k not in seen:
            seen.add(k)
            out.append(d)
        return out
    return list(self.docs.values())

  def find(self, filt):
    return [d for d in self.candidates(filt) if matches(d, filt)]

  def check_unique(self, doc, ns, ignore_key=None):
    for ix in self.unique_indexes():
      fields = list(ix['key'].keys())
      vals = []
      for f in fields:
        v = get_one(doc, f.split('.'))
        vals.append(None if v is MISSING else v)
      if ix.get('sparse') and all(get_one(doc, f.split('.')) is MISSING
                                  for f in fields):
        continue
      if 'partialFilterExpression' in ix and not matches(
          doc, ix['partialFilterExpression']):
        continue
      key = tuple(hash_key(v) for v in vals)
      for k, other in self.docs.items():
        if k == ignore_key:
          continue
        ovals = [get_one(other, f.split('.')) for f in fields]
        if ix.get('sparse') and all(v is MISSING for v in ovals):
          continue
        if 'partialFilterExpression' in ix and not matches(
            other, ix['partialFilterExpression']):
          continue
        okey = tuple(hash_key(None if v is MISSING else v) for v in ovals)
        if okey == key:
          raise dup_key_error(ns, ix, dict(zip(fields, vals)))

  def insert(self, doc, ns):
    doc = id_first(doc)
    if isinstance(doc['_id'], list):
      raise CmdError(53, "The '_id' value cannot be of type array",
                     'InvalidIdField')
    k = hash_key(doc['_id'])
    if k in self.docs:
      raise dup_key_error(ns, self.indexes[0], {'_id': doc['_id']})
    self.check_unique(doc, ns)
    self.docs[k] = doc
    return doc

  def replace_doc(self, old, new, ns):
    k = hash_key(old['_id'])
    self.check_unique(new, ns, ignore_key=k)
    self.docs[k] = new

  def delete_doc(self, doc):
    self.docs.pop(hash_key(doc['_id']), None)


def dup_key_error(ns, ix, kv):
  err = CmdError(11000, 'E11000 duplicate key error collection: %s index: %s '
                 'dup key: %s' % (ns, ix['name'], show(kv)))
  err.key_pattern = dict(ix['key'])
  err.key_value = kv
  return err


class Engine(object):
  """Every database, behind one lock: commands run one at a time."""

  def __init__(self):
    self.lock = threading.Lock()
    self.dbs = {}  # name -> {collection name -> Collection}
    self.cursors = {}  # id -> Cursor

  def coll(self, db, name, create=False):
    d = self.dbs.get(db)
    if d is None:
      if not create:
        return None
      d = self.dbs[db] = {}
    c = d.get(name)
    if c is None and create:
      c = d[name] = Collection(name)
    return c


class Cursor(object):
  def __init__(self, cid, ns, docs, limit=0):
    self.id = cid
    self.ns = ns
    self.docs = docs
    self.pos = 0
    self.limit = limit  # 0: none; otherwise total docs to return
    self.returned = 0
    self.touched = time.monotonic()


# --------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------

CONNECTION_IDS = iter(range(1, 1 << 62))
CONNECTION_IDS_LOCK = threading.Lock()


class Server(object):
  def __init__(self):
    self.engine = Engine()
    self.started = time.time()

  # -- helpers -------------------------------------------------------------

  def _coll_name(self, cmd, name):
    c = cmd[name]
    if not isinstance(c, str) or not c:
      raise CmdError(73, 'Invalid namespace specified', 'InvalidNamespace')
    return c

  def _raw(self, doc):
    return RawBSONDocument(bson.encode(doc, codec_options=CODEC))

  def _batch(self, cur, batch_size):
    """The next batch of a cursor, as raw BSON (each document encoded once,
    outside the documents' later changes)."""
    out, size = [], 0
    limit_left = cur.limit - cur.returned if cur.limit else None
    while cur.pos < len(cur.docs):
      if batch_size and len(out) >= batch_size:
        break
      if limit_left is not None and len(out) >= limit_left:
        break
      raw = self._raw(cur.docs[cur.pos])
      if out and size + len(raw.raw) > MAX_BSON_SIZE - 1024 * 1024:
        break
      out.append(raw)
      size += len(raw.raw)
      cur.pos += 1
    cur.returned += len(out)
    cur.touched = time.monotonic()
    return out

  def _cursor_reply(self, db, coll_name, docs, batch_size, limit=0,
                    single=False, first=True):
    eng = self.engine
    ns = '%s.%s' % (db, coll_name)
    cur = Cursor(0, ns, docs, limit)
    batch = self._batch(cur, batch_size)
    done = cur.pos >= len(docs) or (limit and cur.returned >= limit) or single
    cid = 0
    if not done:
      cid = random.randint(1, INT64_MAX)
      while cid in eng.cursors:
        cid = random.randint(1, INT64_MAX)
      cur.id = cid
      eng.cursors[cid] = cur
    return {'cursor': {'firstBatch': batch, 'id': Int64(cid), 'ns': ns},
            'ok': 1.0}

  def _int(self, cmd, key, default=0):
    v = cmd.get(key, default)
    if v is None:
      return default
    if not is_number(v) or isinstance(v, bool):
      raise CmdError(14, "BSON field '%s' is the wrong type '%s', expected "
                     "types '[long, int, decimal, double']" %
                     (key, type(v).__name__))
    return int(_num(v))

  # -- handshake and server info ------------------------------------------

  def cmd_hello(self, cmd, db, conn):
    name = next(iter(cmd))
    r = {}
    if name == 'hello':
      r['isWritablePrimary'] = True
    else:
      r['ismaster'] = True
    if cmd.get('helloOk'):
      r['helloOk'] = True
    r.update({
        'topologyVersion': None,
        'maxBsonObjectSize': MAX_BSON_SIZE,
        'maxMessageSizeBytes': MAX_MESSAGE_SIZE,
        'maxWriteBatchSize': MAX_WRITE_BATCH,
        'localTime': utcnow(),
        'logicalSessionTimeoutMinutes': 30,
        'connectionId': conn.conn_id,
        'minWireVersion': 0,
        'maxWireVersion': MAX_WIRE_VERSION,
        'readOnly': False,
        'ok': 1.0,
    })
    del r['topologyVersion']  # no streaming monitor: drivers poll instead
    return r

  def cmd_ping(self, cmd, db, conn):
    return {'ok': 1.0}

  def cmd_buildInfo(self, cmd, db, conn):
    return {'version': '6.0.0', 'gitVersion': 'csession-test-server',
            'versionArray': [6, 0, 0, 0], 'bits': 64, 'debug': False,
            'maxBsonObjectSize': MAX_BSON_SIZE, 'storageEngines': ['memory'],
            'modules': [], 'javascriptEngine': 'none', 'ok': 1.0}

  def cmd_getParameter(self, cmd, db, conn):
    r = {}
    if cmd.get('featureCompatibilityVersion') or cmd.get('getParameter') == '*':
      r['featureCompatibilityVersion'] = {'version': '6.0'}
    r['ok'] = 1.0
    return r

  def cmd_getCmdLineOpts(self, cmd, db, conn):
    return {'argv': ['mongo_server.py'], 'parsed': {}, 'ok': 1.0}

  def cmd_connectionStatus(self, cmd, db, conn):
    return {'authInfo': {'authenticatedUsers': [],
                         'authenticatedUserRoles': []}, 'ok': 1.0}

  def cmd_serverStatus(self, cmd, db, conn):
    return {'host': '127.0.0.1', 'version': '6.0.0', 'process': 'mongod',
            'uptime': float(time.time() - self.started),
            'localTime': utcnow(), 'ok': 1.0}

  def cmd_hostInfo(self, cmd, db, conn):
    return {'system': {'hostname': '127.0.0.1'}, 'ok': 1.0}

  def cmd_whatsmyuri(self, cmd, db, conn):
    return {'you': '%s:%d' % conn.client_address, 'ok': 1.0}

  def cmd_endSessions(self, cmd, db, conn):
    return {'ok': 1.0}

  cmd_killSessions = cmd_refreshSessions = cmd_endSessions

  def cmd_getLastError(self, cmd, db, conn):
    return {'n': 0, 'err': None, 'ok': 1.0}

  def cmd_listCommands(self, cmd, db, conn):
    return {'commands': {n: {} for n in COMMANDS}, 'ok': 1.0}

  def cmd_dbStats(self, cmd, db, conn):
    colls = self.engine.dbs.get(db, {})
    return {'db': db, 'collections': len(colls),
            'objects': sum(len(c.docs) for c in colls.values()), 'ok': 1.0}

  def cmd_collStats(self, cmd, db, conn):
    name = self._coll_name(cmd, 'collStats')
    c = self.engine.coll(db, name)
    return {'ns': '%s.%s' % (db, name), 'count': len(c.docs) if c else 0,
            'nindexes': len(c.indexes) if c else 0, 'ok': 1.0}

  # -- CRUD ---------------------------------------------------------------

  def cmd_insert(self, cmd, db, conn):
    name = self._coll_name(cmd, 'insert')
    ns = '%s.%s' % (db, name)
    docs = cmd.get('documents') or []
    ordered = cmd.get('ordered', True)
    coll = self.engine.coll(db, name, create=True)
    n, errors = 0, []
    for i, d in enumerate(docs):
      try:
        if not isinstance(d, dict):
          raise CmdError(2, 'document must be an object')
        coll.insert(d, ns)
        n += 1
      except CmdError as e:
        errors.append(write_error(i, e))
        if ordered:
          break
    r = {'n': n}
    if errors:
      r['writeErrors'] = errors
    r['ok'] = 1.0
    return r

  def cmd_find(self, cmd, db, conn):
    name = self._coll_name(cmd, 'find')
    filt = cmd.get('filter') or {}
    if not isinstance(filt, dict):
      raise CmdError(14, "BSON field 'FindCommandRequest.filter' is the wrong "
                     "type, expected type 'object'")
    coll = self.engine.coll(db, name)
    docs = coll.find(filt) if coll else []
    if cmd.get('sort'):
      docs = sort_docs(docs, cmd['sort'])
    skip = self._int(cmd, 'skip')
    limit = self._int(cmd, 'limit')
    single = bool(cmd.get('singleBatch'))
    if limit < 0:  # legacy: a negative limit means one batch
      limit, single = -limit, True
    if skip < 0:
      raise CmdError(51024, 'skip value must be non-negative', 'Location51024')
    docs = docs[skip:]
    if limit:
      docs = docs[:limit]
    if cmd.get('projection'):
      docs = [project(d, cmd['projection']) for d in docs]
    batch = self._int(cmd, 'batchSize', DEFAULT_BATCH)
    if batch < 0:
      raise CmdError(51024, 'batchSize value must be non-negative',
                     'Location51024')
    if 'batchSize' in cmd and batch == 0:
      # batchSize 0: an empty first batch and an open cursor.
      r = self._cursor_reply(db, name, docs, -1, limit, single)
      return r
    return self._cursor_reply(db, name, docs, batch, limit, single)

  def cmd_getMore(self, cmd, db, conn):
    cid = int(cmd['getMore'])
    name = cmd.get('collection')
    cur = self.engine.cursors.get(cid)
    ns = '%s.%s' % (db, name)
    if cur is None:
      raise CmdError(43, 'cursor id %d not found' % cid)
    if cur.ns != ns:
      raise CmdError(13, 'Requested getMore on namespace \'%s\', but cursor '
                     'belongs to a different namespace %s' % (ns, cur.ns),
                     'Unauthorized')
    batch = self._batch(cur, self._int(cmd, 'batchSize', 0))
    if cur.pos >= len(cur.docs) or (cur.limit and cur.returned >= cur.limit):
      del self.engine.cursors[cid]
      cid = 0
    return {'cursor': {'nextBatch': batch, 'id': Int64(cid), 'ns': ns},
            'ok': 1.0}

  def cmd_killCursors(self, cmd, db, conn):
    killed, missing = [], []
    for c in cmd.get('cursors') or []:
      if self.engine.cursors.pop(int(c), None) is not None:
        killed.append(Int64(c))
      else:
        missing.append(Int64(c))
    return {'cursorsKilled': killed, 'cursorsNotFound': missing,
            'cursorsAlive': [], 'cursorsUnknown': [], 'ok': 1.0}

  def _update_one_spec(self, coll_getter, ns, spec, stats):
    q = spec.get('q') or {}
    u = spec.get('u')
    if isinstance(u, list):
      raise CmdError(115, 'pipeline-style updates are not supported by the '
                     'test server')
    if spec.get('arrayFilters'):
      raise CmdError(115, 'arrayFilters are not supported by the test server')
    ops = is_update_ops(u)
    multi = bool(spec.get('multi'))
    if multi and not ops:
      raise CmdError(9, 'multi update is not supported for replacement-style '
                     'update', 'FailedToParse')
    coll = coll_getter(False)
    docs = coll.find(q) if coll else []
    if docs and not multi:
      if spec.get('sort'):
        docs = sort_docs(docs, spec['sort'])
      docs = docs[:1]
    if docs:
      for old in docs:
        if ops:
          new = apply_update(old, u)
        else:
          new = replacement(old, u)
        stats['n'] += 1
        if not bson_eq(old, new) or not same_types(old, new):
          coll.replace_doc(old, new, ns)
          stats['nModified'] += 1
      return None
    if not spec.get('upsert'):
      return None
    seed = upsert_seed(q)
    if ops:
      new = apply_update(seed, u, is_insert=True)
    else:
      new = copy.deepcopy(u)
      if '_id' not in new and '_id' in seed:
        new['_id'] = seed['_id']
    new = id_first(new)
    coll_getter(True).insert(new, ns)
    stats['n'] += 1
    return new['_id']

  def cmd_update(self, cmd, db, conn):
    name = self._coll_name(cmd, 'update')
    ns = '%s.%s' % (db, name)
    ordered = cmd.get('ordered', True)
    stats = {'n': 0, 'nModified': 0}
    upserted, errors = [], []

    def getter(create):
      return self.engine.coll(db, name, create=create)

    for i, spec in enumerate(cmd.get('updates') or []):
      try:
        uid = self._update_one_spec(getter, ns, spec, stats)
        if uid is not None:
          upserted.append({'index': i, '_id': uid})
      except CmdError as e:
        errors.append(write_error(i, e))
        if ordered:
          break
    r = {'n': stats['n'], 'nModified': stats['nModified']}
    if upserted:
      r['upserted'] = upserted
    if errors:
      r['writeErrors'] = errors
    r['ok'] = 1.0
    return r

  def cmd_delete(self, cmd, db, conn):
    name = self._coll_name(cmd, 'delete')
    ordered = cmd.get('ordered', True)
    coll = self.engine.coll(db, name)
    n, errors = 0, []
    for i, spec in enumerate(cmd.get('deletes') or []):
      try:
        q = spec.get('q') or {}
        limit = int(_num(spec.get('limit', 0)))
        if limit not in (0, 1):
          raise CmdError(9, 'The limit field in delete objects must be 0 or 1. '
                         'Got %d' % limit, 'FailedToParse')
        docs = coll.find(q) if coll else []
        if limit == 1:
          docs = docs[:1]
        for d in docs:
          coll.delete_doc(d)
          n += 1
      except CmdError as e:
        errors.append(write_error(i, e))
        if ordered:
          break
    r = {'n': n}
    if errors:
      r['writeErrors'] = errors
    r['ok'] = 1.0
    return r

  def cmd_findAndModify(self, cmd, db, conn):
    name = self._coll_name(cmd, next(iter(cmd)))
    ns = '%s.%s' % (db, name)
    q = cmd.get('query') or {}
    fields = cmd.get('fields') or cmd.get('projection')
    remove = bool(cmd.get('remove'))
    u = cmd.get('update')
    if remove and u is not None:
      raise CmdError(9, 'Cannot specify both an update and remove=true',
                     'FailedToParse')
    if not remove and u is None:
      raise CmdError(9, 'Either an update or remove=true must be specified',
                     'FailedToParse')
    if isinstance(u, list):
      raise CmdError(115, 'pipeline-style updates are not supported by the '
                     'test server')
    coll = self.engine.coll(db, name)
    docs = coll.find(q) if coll else []
    if cmd.get('sort'):
      docs = sort_docs(docs, cmd['sort'])
    old = docs[0] if docs else None
    leo = {'n': 0}
    value = None
    if remove:
      if old is not None:
        coll.delete_doc(old)
        leo['n'] = 1
        value = old
    else:
      ops = is_update_ops(u)
      if old is not None:
        new = apply_update(old, u) if ops else replacement(old, u)
        if not bson_eq(old, new) or not same_types(old, new):
          coll.replace_doc(old, new, ns)
        leo = {'n': 1, 'updatedExisting': True}
        value = new if cmd.get('new') else old
      elif cmd.get('upsert'):
        seed = upsert_seed(q)
        if ops:
          new = apply_update(seed, u, is_insert=True)
        else:
          new = copy.deepcopy(u)
          if '_id' not in new and '_id' in seed:
            new['_id'] = seed['_id']
        new = id_first(new)
        self.engine.coll(db, name, create=True).insert(new, ns)
        leo = {'n': 1, 'updatedExisting': False, 'upserted': new['_id']}
        value = new if cmd.get('new') else None
      else:
        leo = {'n': 0, 'updatedExisting': False}
    if value is not None and fields:
      value = project(value, fields)
    return {'lastErrorObject': leo, 'value': value, 'ok': 1.0}

  def cmd_count(self, cmd, db, conn):
    name = self._coll_name(cmd, 'count')
    coll = self.engine.coll(db, name)
    q = cmd.get('query') or {}
    if not coll:
      n = 0
    elif not q:
      n = len(coll.docs)
    else:
      n = len(coll.find(q))
    skip = self._int(cmd, 'skip')
    limit = abs(self._int(cmd, 'limit'))
    n = max(0, n - skip)
    if limit:
      n = min(n, limit)
    return {'n': n, 'ok': 1.0}

  def cmd_distinct(self, cmd, db, conn):
    name = self._coll_name(cmd, 'distinct')
    key = cmd.get('key')
    coll = self.engine.coll(db, name)
    docs = coll.find(cmd.get('query') or {}) if coll else []
    values, seen = [], set()
    for d in docs:
      for v in path_values(d, key.split('.')):
        for x in (v if isinstance(v, list) else [v]):
          k = hash_key(x)
          if k not in seen:
            seen.add(k)
            values.append(x)
    return {'values': values, 'ok': 1.0}

  def cmd_aggregate(self, cmd, db, conn):
    target = cmd['aggregate']
    pipeline = cmd.get('pipeline')
    if not isinstance(pipeline, list):
      raise CmdError(14, "'pipeline' option must be specified as an array")
    if 'cursor' not in cmd and not cmd.get('explain'):
      raise CmdError(9, "The 'cursor' option is required, except for "
                     "aggregate with the explain argument", 'FailedToParse')
    if not isinstance(target, str):
      raise CmdError(115, 'collection-less aggregate is not supported by the '
                     'test server')
    coll = self.engine.coll(db, target)
    docs = list(coll.docs.values()) if coll else []
    for stage in pipeline:
      if pipeline and stage is pipeline[0] and '$match' in stage and coll:
        docs = coll.find(stage['$match'])
        continue
      docs = run_stage(stage, docs)
    batch = self._int(cmd.get('cursor') or {}, 'batchSize', DEFAULT_BATCH)
    if 'batchSize' in (cmd.get('cursor') or {}) and batch == 0:
      batch = -1
    return self._cursor_reply(db, target, docs, batch)

  # -- collections, databases, indexes ------------------------------------

  def cmd_create(self, cmd, db, conn):
    name = self._coll_name(cmd, 'create')
    if self.engine.coll(db, name) is not None:
      raise CmdError(48, 'Collection %s.%s already exists.' % (db, name))
    c = self.engine.coll(db, name, create=True)
    c.options = {k: v for k, v in cmd.items()
                 if k not in ('create', '$db', 'lsid', '$clusterTime',
                              '$readPreference', 'writeConcern', 'apiVersion')}
    return {'ok': 1.0}

  def cmd_drop(self, cmd, db, conn):
    name = self._coll_name(cmd, 'drop')
    d = self.engine.dbs.get(db, {})
    c = d.pop(name, None)
    if c is None:
      raise CmdError(26, 'ns not found')
    self._kill_ns('%s.%s' % (db, name))
    return {'nIndexesWas': len(c.indexes), 'ns': '%s.%s' % (db, name),
            'ok': 1.0}

  def _kill_ns(self, ns):
    for cid in [cid for cid, c in self.engine.cursors.items() if c.ns == ns]:
      del self.engine.cursors[cid]

  def cmd_dropDatabase(self, cmd, db, conn):
    if db in self.engine.dbs:
      for name in self.engine.dbs.pop(db):
        self._kill_ns('%s.%s' % (db, name))
    return {'dropped': db, 'ok': 1.0}

  def cmd_listCollections(self, cmd, db, conn):
    filt = cmd.get('filter') or {}
    out = []
    for name, c in self.engine.dbs.get(db, {}).items():
      info = {'name': name, 'type': 'collection', 'options': c.options,
              'info': {'readOnly': False},
              'idIndex': {'v': 2, 'key': {'_id': 1}, 'name': '_id_'}}
      if not matches(info, filt):
        continue
      if cmd.get('nameOnly'):
        info = {'name': name, 'type': 'collection'}
      out.append(info)
    batch = self._int(cmd.get('cursor') or {}, 'batchSize', 0)
    return self._cursor_reply(db, '$cmd.listCollections', out, batch)

  def cmd_listDatabases(self, cmd, db, conn):
    out = []
    for name, colls in self.engine.dbs.items():
      info = {'name': name, 'sizeOnDisk': 0, 'empty': not colls}
      if cmd.get('filter') and not matches(info, cmd['filter']):
        continue
      out.append({'name': name} if cmd.get('nameOnly') else info)
    r = {'databases': out}
    if not cmd.get('nameOnly'):
      r['totalSize'] = 0
    r['ok'] = 1.0
    return r

  def cmd_createIndexes(self, cmd, db, conn):
    name = self._coll_name(cmd, 'createIndexes')
    specs = cmd.get('indexes')
    if not isinstance(specs, list) or not specs:
      raise CmdError(2, 'Must specify at least one index to create')
    created_coll = self.engine.coll(db, name) is None
    coll = self.engine.coll(db, name, create=True)
    before = len(coll.indexes)
    ns = '%s.%s' % (db, name)
    new = []
    for spec in specs:
      key = spec.get('key')
      if not isinstance(key, dict) or not key:
        raise CmdError(67, 'Index keys cannot be empty.')
      iname = spec.get('name')
      if not isinstance(iname, str) or not iname:
        raise CmdError(9, 'The index name must be a non-empty string',
                       'FailedToParse')
      if 'expireAfterSeconds' in spec:
        e = spec['expireAfterSeconds']
        if not is_number(e) or isinstance(e, bool) or _num(e) < 0:
          raise CmdError(2, "TTL index 'expireAfterSeconds' option must be "
                         "numeric and non-negative, but received: %s"
                         % show(e), 'InvalidIndexSpecificationOption')
        if len(key) != 1:
          raise CmdError(2, 'TTL indexes are single-field indexes, compound '
                         'indexes do not support TTL.',
                         'InvalidIndexSpecificationOption')
      ix = {'v': 2, 'key': key, 'name': iname}
      for k, v in spec.items():
        if k not in ('key', 'name', 'v', 'ns', 'background'):
          ix[k] = v
      same_name = [x for x in coll.indexes if x['name'] == iname]
      same_key = [x for x in coll.indexes if bson_eq(x['key'], key)]
      if same_name:
        old = same_name[0]
        if not bson_eq(old['key'], key):
          raise CmdError(86, 'An existing index has the same name as the '
                         'requested index. When index names are not specified, '
                         'they are auto generated and can cause conflicts. '
                         'Please refer to our documentation. Requested index: '
                         '%s, existing index: %s' % (show(ix), show(old)))
        if not same_options(old, ix):
          raise CmdError(85, 'An equivalent index already exists with the same '
                         'name but different options. Requested index: %s, '
                         'existing index: %s' % (show(ix), show(old)))
        continue
      if same_key:
        old = same_key[0]
        if same_options(old, ix):
          raise CmdError(85, 'Index already exists with a different name: %s'
                         % old['name'])
        raise CmdError(85, 'An equivalent index already exists with a '
                       'different name and options. Requested index: %s, '
                       'existing index: %s' % (show(ix), show(old)))
      if ix.get('unique'):
        # Existing documents must already be unique on the new key.
        probe = Collection(name)
        probe.indexes.append(ix)
        for d in coll.docs.values():
          probe.check_unique(d, ns)
          probe.docs[hash_key(d['_id'])] = d
      coll.indexes.append(ix)
      new.append(ix)
    r = {'numIndexesBefore': before, 'numIndexesAfter': len(coll.indexes),
         'createdCollectionAutomatically': created_coll}
    if not new:
      r['note'] = 'all indexes already exist'
    r['ok'] = 1.0
    return r

  def cmd_listIndexes(self, cmd, db, conn):
    name = self._coll_name(cmd, 'listIndexes')
    coll = self.engine.coll(db, name)
    if coll is None:
      raise CmdError(26, 'ns does not exist: %s.%s' % (db, name))
    batch = self._int(cmd.get('cursor') or {}, 'batchSize', 0)
    return self._cursor_reply(db, name, list(coll.indexes), batch)

  def cmd_dropIndexes(self, cmd, db, conn):
    name = self._coll_name(cmd, next(iter(cmd)))
    coll = self.engine.coll(db, name)
    if coll is None:
      raise CmdError(26, 'ns not found %s.%s' % (db, name))
    which = cmd.get('index')
    before = len(coll.indexes)
    names = which if isinstance(which, list) else [which]
    for w in names:
      if w == '*':
        coll.indexes = coll.indexes[:1]
        continue
      if isinstance(w, dict):
        hit = [x for x in coll.indexes if bson_eq(x['key'], w)]
        if not hit:
          raise CmdError(27, "can't find index with key: %s" % show(w))
      else:
        hit = [x for x in coll.indexes if x['name'] == w]
        if not hit:
          raise CmdError(27, 'index not found with name [%s]' % w)
      if hit[0]['name'] == '_id_':
        raise CmdError(72, 'cannot drop _id index')
      coll.indexes.remove(hit[0])
    return {'nIndexesWas': before, 'ok': 1.0}

  cmd_deleteIndexes = cmd_dropIndexes

  def cmd_collMod(self, cmd, db, conn):
    name = self._coll_name(cmd, 'collMod')
    coll = self.engine.coll(db, name)
    if coll is None:
      raise CmdError(26, 'ns does not exist')
    r = {'ok': 1.0}
    spec = cmd.get('index')
    if spec:
      hit = [x for x in coll.indexes
             if ('name' in spec and x['name'] == spec['name']) or
             ('keyPattern' in spec and bson_eq(x['key'], spec['keyPattern']))]
      if not hit:
        raise CmdError(27, 'cannot find index %s' % show(spec))
      if 'expireAfterSeconds' in spec:
        r['expireAfterSeconds_old'] = hit[0].get('expireAfterSeconds')
        hit[0]['expireAfterSeconds'] = spec['expireAfterSeconds']
        r['expireAfterSeconds_new'] = spec['expireAfterSeconds']
    return r

  # -- transactions and auth: absent ---------------------------------------

  def cmd_saslStart(self, cmd, db, conn):
    raise CmdError(59, 'no such command: \'saslStart\'')

  # -- dispatch -----------------------------------------------------------

  def run(self, cmd, conn):
    """Run one command document; the reply document (never raises)."""
    if not cmd:
      return error_reply(CmdError(59, 'no such command: \'\''))
    name = next(iter(cmd))
    db = cmd.get('$db') or 'admin'
    handler = COMMANDS.get(name)
    if LOG_VERBOSE:
      log('conn%d %s.%s' % (conn.conn_id, db, name))
    if handler is None:
      return error_reply(CmdError(59, "no such command: '%s'" % name))
    if 'txnNumber' in cmd and name not in ('insert', 'update', 'delete',
                                           'findAndModify'):
      pass
    if cmd.get('startTransaction') or cmd.get('autocommit') is False:
      return error_reply(CmdError(20, 'Transaction numbers are only allowed on '
                                  'a replica set member or mongos',
                                  'IllegalOperation'))
    try:
      if name in ('hello', 'isMaster', 'ismaster', 'ping'):
        return handler(self, cmd, db, conn)  # no lock: never touches data
      with self.engine.lock:
        return handler(self, cmd, db, conn)
    except CmdError as e:
      return error_reply(e)
    except Exception as e:  # a bug here: say so, keep the connection
      log('internal error in %s: %r' % (name, e))
      import traceback
      traceback.print_exc(file=sys.stderr)
      return error_reply(CmdError(8, 'test server internal error: %r' % e))


def replacement(old, u):
  if '_id' in u and not bson_eq(u['_id'], old['_id']):
    raise CmdError(66, "After applying the update, the (immutable) field '_id' "
                   "was found to have been altered to _id: %s" % show(u['_id']))
  new = {'_id': old['_id']}
  for k, v in u.items():
    if k != '_id':
      new[k] = copy.deepcopy(v)
  return new


def same_types(a, b):
  """bson_eq says 1 == 1.0 == Int64(1); a $set that changes only the type
  still modifies the document (mongod compares bytes)."""
  return bson.encode(a, codec_options=CODEC) == bson.encode(
      b, codec_options=CODEC)


def same_options(a, b):
  skip = ('v', 'key', 'name', 'ns', 'background')
  oa = {k: v for k, v in a.items() if k not in skip}
  ob = {k: v for k, v in b.items() if k not in skip}
  if set(oa) != set(ob):
    return False
  return all(bson_eq(oa[k], ob[k]) for k in oa)


def write_error(index, e):
  we = {'index': index, 'code': e.code}
  if hasattr(e, 'key_pattern'):
    we['keyPattern'] = e.key_pattern
    we['keyValue'] = e.key_value
  we['errmsg'] = e.msg
  return we


def error_reply(e):
  return {'ok': 0.0, 'errmsg': e.msg, 'code': e.code, 'codeName': e.name}


def run_stage(stage, docs):
  if not isinstance(stage, dict) or len(stage) != 1:
    raise CmdError(40323, 'A pipeline stage specification object must contain '
                   'exactly one field.', 'Location40323')
  name, arg = next(iter(stage.items()))
  if name == '$match':
    return [d for d in docs if matches(d, arg)]
  if name == '$skip':
    return docs[int(_num(arg)):]
  if name == '$limit':
    return docs[:int(_num(arg))]
  if name == '$sort':
    return sort_docs(docs, arg)
  if name == '$project':
    return [project(d, arg, allow_exprs=True) for d in docs]
  if name in ('$addFields', '$set'):
    out = []
    dotted = any('.' in k for k in arg)
    for d in docs:
      # Stored documents are shared with cursors: never change them.
      n = copy.deepcopy(d) if dotted else dict(d)
      for k, e in arg.items():
        r = eval_expr(e, d)
        if r is not MISSING:
          set_path(n, k.split('.'), r)
      out.append(n)
    return out
  if name == '$unset':
    fields = arg if isinstance(arg, list) else [arg]
    return [project(d, {f: 0 for f in fields}) for d in docs]
  if name == '$count':
    return [{arg: len(docs)}] if docs else []
  if name == '$unwind':
    spec = arg if isinstance(arg, dict) else {'path': arg}
    path = spec['path'][1:].split('.')
    keep = spec.get('preserveNullAndEmptyArrays')
    idx_field = spec.get('includeArrayIndex')
    out = []
    for d in docs:
      v = get_one(d, path)
      if isinstance(v, list) and v:
        for i, e in enumerate(v):
          n = copy.deepcopy(d)
          set_path(n, path, e)
          if idx_field:
            n[idx_field] = Int64(i)
          out.append(n)
      elif isinstance(v, list) or v is None or v is MISSING:
        if keep:
          n = copy.deepcopy(d)
          if isinstance(v, list):
            unset_path(n, path)
          if idx_field:
            n[idx_field] = None
          out.append(n)
      else:
        n = dict(d)
        if idx_field:
          n[idx_field] = None
        out.append(n)
    return out
  if name in ('$replaceRoot', '$replaceWith'):
    e = arg['newRoot'] if name == '$replaceRoot' else arg
    out = []
    for d in docs:
      r = eval_expr(e, d)
      if not isinstance(r, dict):
        raise CmdError(40228, "'newRoot' expression must evaluate to an object",
                       'Location40228')
      out.append(r)
    return out
  if name == '$group':
    return group(docs, arg)
  raise CmdError(40324, "Unrecognized pipeline stage name: '%s'" % name)


def group(docs, spec):
  if '_id' not in spec:
    raise CmdError(15955, "a group specification must include an _id",
                   'Location15955')
  groups = {}
  order = []
  accs = [(k, v) for k, v in spec.items() if k != '_id']
  for d in docs:
    gid = eval_expr(spec['_id'], d)
    if gid is MISSING:
      gid = None
    k = hash_key(gid)
    g = groups.get(k)
    if g is None:
      g = groups[k] = {'_id': gid, 'vals': {f: [] for f, _ in accs}}
      order.append(k)
    for f, acc in accs:
      if not isinstance(acc, dict) or len(acc) != 1:
        raise CmdError(40234, "The field '%s' must be an accumulator object"
                       % f, 'Location40234')
      op, e = next(iter(acc.items()))
      g['vals'][f].append(eval_expr(e, d) if op != '$count' else 1)
  out = []
  for k in order:
    g = groups[k]
    res = {'_id': g['_id']}
    for f, acc in accs:
      op = next(iter(acc))
      vals = g['vals'][f]
      res[f] = accumulate(op, vals)
    out.append(res)
  return out


def accumulate(op, vals):
  if op in ('$sum', '$count'):
    r = 0
    for v in vals:
      if is_number(v) and not isinstance(v, bool):
        r = add_numbers(r, v)
    return r
  if op == '$avg':
    nums = [float(_num(v)) for v in vals if is_number(v) and not isinstance(v, bool)]
    return sum(nums) / len(nums) if nums else None
  if op in ('$min', '$max'):
    vals = [v for v in vals if v is not None and v is not MISSING]
    if not vals:
      return None
    best = vals[0]
    for v in vals[1:]:
      c = bson_cmp(v, best)
      if (op == '$max' and c > 0) or (op == '$min' and c < 0):
        best = v
    return best
  if op == '$first':
    return None if not vals or vals[0] is MISSING else vals[0]
  if op == '$last':
    return None if not vals or vals[-1] is MISSING else vals[-1]
  if op == '$push':
    return [v for v in vals if v is not MISSING]
  if op == '$addToSet':
    out, seen = [], set()
    for v in vals:
      if v is MISSING:
        continue
      k = hash_key(v)
      if k not in seen:
        seen.add(k)
        out.append(v)
    return out
  raise CmdError(15952, "unknown group operator '%s'" % op, 'Location15952')


COMMANDS = {}
for _n in dir(Server):
  if _n.startswith('cmd_'):
    COMMANDS[_n[4:]] = getattr(Server, _n)
COMMANDS['isMaster'] = COMMANDS['ismaster'] = COMMANDS['hello']
COMMANDS['findandmodify'] = COMMANDS['findAndModify']
COMMANDS['buildinfo'] = COMMANDS['buildInfo']
del COMMANDS['saslStart']  # absent: no authentication here


# --------------------------------------------------------------------------
# TTL monitor and cursor reaper
# --------------------------------------------------------------------------

def ttl_pass(engine):
  """Delete documents whose TTL-indexed date is older than now minus
  expireAfterSeconds; documents without the field, or with a value that is
  not a date (or an array of dates), stay, as in mongod."""
  now = utcnow()
  removed = 0
  with engine.lock:
    for dbname, colls in engine.dbs.items():
      for coll in colls.values():
        for ix in coll.indexes:
          if 'expireAfterSeconds' not in ix:
            continue
          field = next(iter(ix['key'])).split('.')
          limit = now - datetime.timedelta(
              seconds=float(_num(ix['expireAfterSeconds'])))
          dead = []
          for k, d in coll.docs.items():
            v = get_one(d, field)
            dates = [x for x in (v if isinstance(v, list) else [v])
                     if isinstance(x, datetime.datetime)]
            if dates and min(dates) < limit:
              dead.append(k)
          for k in dead:
            del coll.docs[k]
          removed += len(dead)
    idle = time.monotonic() - 600
    for cid in [c for c, cur in engine.cursors.items() if cur.touched < idle]:
      del engine.cursors[cid]
  return removed


def ttl_loop(engine, interval, stop):
  while not stop.wait(interval):
    try:
      n = ttl_pass(engine)
      if n and LOG_VERBOSE:
        log('TTL monitor removed %d document(s)' % n)
    except Exception as e:  # keep monitoring whatever happened
      log('TTL monitor error: %r' % e)


# --------------------------------------------------------------------------
# Wire protocol
# --------------------------------------------------------------------------

HEADER = struct.Struct('<iiii')


class Handler(socketserver.BaseRequestHandler):
  def setup(self):
    with CONNECTION_IDS_LOCK:
      self.conn_id = next(CONNECTION_IDS)
    self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    self.buf = bytearray()
    if LOG_VERBOSE:
      log('conn%d open from %s:%d' % ((self.conn_id,) + self.client_address))

  def _read(self, n):
    while len(self.buf) < n:
      chunk = self.request.recv(max(65536, n - len(self.buf)))
      if not chunk:
        return None
      self.buf += chunk
    out = bytes(self.buf[:n])
    del self.buf[:n]
    return out

  def handle(self):
    server = self.server.app
    try:
      while True:
        head = self._read(16)
        if head is None:
          return
        length, req_id, _resp_to, opcode = HEADER.unpack(head)
        if length < 16 or length > MAX_MESSAGE_SIZE:
          log('conn%d: bad message length %d, closing' % (self.conn_id, length))
          return
        body = self._read(length - 16)
        if body is None:
          return
        if opcode == OP_MSG:
          self._op_msg(server, req_id, body)
        elif opcode == OP_QUERY:
          self._op_query(server, req_id, body)
        else:
          log('conn%d: unsupported opcode %d, closing' % (self.conn_id, opcode))
          return
    except (ConnectionError, OSError):
      return
    except Exception as e:  # a malformed message: drop this connection only
      log('conn%d: closing after error: %r' % (self.conn_id, e))
      return
    finally:
      if LOG_VERBOSE:
        log('conn%d closed' % self.conn_id)

  def _send(self, opcode, resp_to, payload):
    self.request.sendall(HEADER.pack(16 + len(payload), 0, resp_to, opcode)
                         + payload)

  def _parse_op_msg(self, flags, body):
    end = len(body) - (4 if flags & MSG_CHECKSUM else 0)
    pos = 4
    cmd = None
    seqs = []
    while pos < end:
      kind = body[pos]
      pos += 1
      if kind == 0:
        size, = struct.unpack_from('<i', body, pos)
        cmd = bson.decode(body[pos:pos + size], codec_options=CODEC)
        pos += size
      elif kind == 1:
        size, = struct.unpack_from('<i', body, pos)
        section = body[pos + 4:pos + size]
        nul = section.index(b'\0')
        ident = section[:nul].decode('utf-8')
        docs = bson.decode_all(section[nul + 1:], codec_options=CODEC)
        seqs.append((ident, docs))
        pos += size
      else:
        raise ConnectionError('bad OP_MSG section kind %d' % kind)
    if cmd is None:
      raise ConnectionError('OP_MSG without a body')
    for ident, docs in seqs:
      cmd[ident] = docs
    return cmd

  def _op_msg(self, server, req_id, body):
    flags, = struct.unpack_from('<I', body, 0)
    try:
      cmd = self._parse_op_msg(flags, body)
      reply = server.run(cmd, self)
    except (bson.errors.InvalidBSON, UnicodeDecodeError, ValueError,
            IndexError, struct.error) as e:
      # mongod refuses a malformed message and keeps the connection.
      log('conn%d: malformed OP_MSG: %r' % (self.conn_id, e))
      reply = error_reply(CmdError(22, 'invalid BSON in OP_MSG: %s' % e,
                                   'InvalidBSON'))
    if flags & MSG_MORE_TO_COME:
      return  # unacknowledged write (w: 0): no reply at all
    payload = struct.pack('<I', 0) + b'\0' + bson.encode(
        reply, codec_options=CODEC)
    self._send(OP_MSG, req_id, payload)

  def _op_query(self, server, req_id, body):
    # Only commands (the legacy hello of the first handshake, mostly).
    _flags, = struct.unpack_from('<i', body, 0)
    nul = body.index(b'\0', 4)
    ns = body[4:nul].decode('utf-8')
    pos = nul + 1 + 8  # numberToSkip, numberToReturn
    size, = struct.unpack_from('<i', body, pos)
    query = bson.decode(body[pos:pos + size], codec_options=CODEC)
    if not ns.endswith('.$cmd'):
      reply = {'$err': 'OP_QUERY is no longer supported', 'code': 5739101,
               'ok': 0.0}
      flags = 2  # QueryFailure
    else:
      if '$query' in query:
        query = query['$query']
      query = dict(query)
      query.setdefault('$db', ns[:-5])
      name = next(iter(query), '')
      if name not in ('hello', 'isMaster', 'ismaster'):
        reply = error_reply(CmdError(
            352, 'Unsupported OP_QUERY command: %s. The client driver may '
            'require an upgrade.' % name, 'UnsupportedOpQueryCommand'))
      else:
        reply = server.run(query, self)
      flags = 0
    doc = bson.encode(reply, codec_options=CODEC)
    payload = struct.pack('<iqii', flags, 0, 0, 1) + doc
    self._send(OP_REPLY, req_id, payload)


class TCPServer(socketserver.ThreadingTCPServer):
  daemon_threads = True
  allow_reuse_address = True  # restart on the same port after a kill -9
  request_queue_size = 128


def main(argv=None):
  global LOG_VERBOSE
  ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  ap.add_argument('--port', type=int, default=27017,
                  help='TCP port on 127.0.0.1 (0: any free port)')
  ap.add_argument('--ttl-interval', type=float, default=1.0,
                  help='seconds between TTL monitor passes (mongod: 60)')
  ap.add_argument('--port-file', default=None,
                  help='write the bound port to this file once listening')
  ap.add_argument('--verbose', action='store_true',
                  help='log every connection and command to stderr')
  args = ap.parse_args(argv)
  LOG_VERBOSE = args.verbose

  app = Server()
  srv = TCPServer(('127.0.0.1', args.port), Handler)
  srv.app = app
  port = srv.server_address[1]
  stop = threading.Event()

  def on_signal(signum, _frame):
    stop.set()

  signal.signal(signal.SIGTERM, on_signal)
  signal.signal(signal.SIGINT, on_signal)

  ttl = threading.Thread(target=ttl_loop, args=(app.engine, args.ttl_interval,
                                                stop), daemon=True)
  ttl.start()
  serve = threading.Thread(target=srv.serve_forever, kwargs={
      'poll_interval': 0.2}, daemon=True)
  serve.start()
  if args.port_file:
    tmp = args.port_file + '.tmp'
    with open(tmp, 'w') as f:
      f.write('%d\n' % port)
    os.rename(tmp, args.port_file)
  log('listening on 127.0.0.1:%d (pid %d, MongoDB 6.0 wire protocol, '
      'in memory)' % (port, os.getpid()))
  while not stop.wait(0.5):
    pass
  log('signal received, shutting down')
  srv.shutdown()
  srv.server_close()
  return 0


if __name__ == '__main__':
  sys.exit(main())
