#!/usr/bin/python3
"""smoke.py - check a MongoDB server (the test server, or a real mongod)
with pymongo: CRUD, upsert, types, cursors, indexes, TTL, errors.

    /usr/bin/python3 tests/mongo/smoke.py mongodb://127.0.0.1:PORT/csn_smoke

Without an argument it starts tests/mongo/mongo_server.py on a free port
itself and stops it afterwards. The TTL check waits for the monitor: a
few seconds here, up to about 70 s against a real mongod (--skip-ttl to
leave it out). Exit status 0 when every check passed.
"""

import datetime
import os
import socket
import subprocess
import sys
import time

import pymongo
from bson.int64 import Int64
from bson.son import SON
from pymongo.errors import BulkWriteError, DuplicateKeyError, OperationFailure

FAILED = []


def check(cond, what):
  if not cond:
    FAILED.append(what)
    sys.stderr.write('FAIL: %s\n' % what)


def start_server():
  s = socket.socket()
  s.bind(('127.0.0.1', 0))
  port = s.getsockname()[1]
  s.close()
  here = os.path.dirname(os.path.abspath(__file__))
  proc = subprocess.Popen(['/usr/bin/python3',
                           os.path.join(here, 'mongo_server.py'),
                           '--port', str(port)])
  for _ in range(100):
    try:
      socket.create_connection(('127.0.0.1', port), 0.2).close()
      return proc, 'mongodb://127.0.0.1:%d/csn_smoke' % port
    except OSError:
      time.sleep(0.05)
  proc.kill()
  raise SystemExit('test server did not start')


def run(url, skip_ttl):
  client = pymongo.MongoClient(url, serverSelectionTimeoutMS=5000)
  db = client.get_database('csn_smoke')
  db.command('dropDatabase')
  c = db.things
  check(db.command('ping')['ok'] == 1, 'ping')
  hello = client.admin.command('isMaster')
  check(hello['maxWireVersion'] >= 17, 'wire version')

  # Insert and types.
  now = datetime.datetime.utcnow().replace(microsecond=123000)
  doc = SON([('_id', 'a'), ('i32', 7), ('i64', Int64(7)), ('dbl', 7.0),
             ('s', 'héllo ✓ 𝄞'), ('n', None), ('t', True),
             ('sub', SON([('z', 1), ('a', 2)])), ('arr', [1, 'x', [2]]),
             ('when', now)])
  c.insert_one(doc)
  got = c.find_one({'_id': 'a'})
  check(type(got['i32']) is int, 'int32 reads back as int32')
  check(type(got['i64']) is Int64, 'int64 reads back as int64')
  check(type(got['dbl']) is float, 'double reads back as double')
  check(got['s'] == 'héllo ✓ 𝄞', 'unicode string')
  check(got['when'] == now, 'date round trip at ms precision')
  check(list(got['sub'].keys()) == ['z', 'a'], 'sub-document field order')
  check(list(got.keys())[0] == '_id', '_id first')
  check(c.count_documents({'sub': {'z': 1, 'a': 2}}) == 1, 'subdoc equality')
  check(c.count_documents({'sub': {'a': 2, 'z': 1}}) == 0,
        'subdoc equality is order-sensitive')
  check(c.count_documents({'t': 1}) == 0, 'true does not match 1')
  check(c.count_documents({'i32': 7.0}) == 1, '7 matches 7.0')
  check(c.count_documents({'when': {'$gt': now - datetime.timedelta(
      seconds=1)}}) == 1, 'date $gt')
  check(c.count_documents({'$or': [{'when': {'$exists': False}},
                                   {'when': {'$gt': now}}]}) == 0,
        '$or/$exists/$gt on dates')
  check(c.count_documents({'nope': None}) == 1, 'missing matches null')
  c.update_one({'_id': 'a'}, {'$inc': {'i64': 1, 'i32': 1}})
  got = c.find_one({'_id': 'a'})
  check(type(got['i64']) is Int64 and got['i64'] == 8, '$inc keeps int64')
  check(type(got['i32']) is int and got['i32'] == 8, '$inc keeps int32')

  # Duplicate key.
  try:
    c.insert_one({'_id': 'a'})
    check(False, 'duplicate _id refused')
  except DuplicateKeyError as e:
    check(e.code == 11000, 'duplicate key code 11000')
  try:
    c.insert_many([{'_id': 'b'}, {'_id': 'a'}, {'_id': 'c'}])
    check(False, 'duplicate in insert_many refused')
  except BulkWriteError as e:
    d = e.details
    check(d['nInserted'] == 1 and d['writeErrors'][0]['index'] == 1 and
          d['writeErrors'][0]['code'] == 11000, 'ordered insert_many stops')

  # Compare-and-set on a string field.
  c.insert_one({'_id': 's1', 'session': '{"n":1}'})
  r = c.update_one({'_id': 's1', 'session': '{"n":2}'},
                   {'$set': {'session': '{"n":3}'}})
  check(r.matched_count == 0 and r.modified_count == 0, 'CAS mismatch n=0')
  r = c.update_one({'_id': 's1', 'session': '{"n":1}'},
                   {'$set': {'session': '{"n":3}'}})
  check(r.matched_count == 1 and r.modified_count == 1, 'CAS match n=1')
  r = c.update_one({'_id': 's1'}, {'$set': {'session': '{"n":3}'}})
  check(r.matched_count == 1 and r.modified_count == 0, 'no-op nModified 0')

  # Upsert.
  r = c.update_one({'_id': 'u1'}, {'$set': {'v': 1},
                                   '$setOnInsert': {'created': 1}},
                   upsert=True)
  check(r.upserted_id == 'u1', 'upsert reports _id')
  r = c.update_one({'_id': 'u1'}, {'$set': {'v': 2},
                                   '$setOnInsert': {'created': 2}},
                   upsert=True)
  check(r.upserted_id is None and r.modified_count == 1, 'upsert updates')
  check(c.find_one({'_id': 'u1'}) == {'_id': 'u1', 'v': 2, 'created': 1},
        '$setOnInsert only on insert')
  r = c.replace_one({'_id': 'u2'}, {'x': 1}, upsert=True)
  check(r.upserted_id == 'u2', 'replacement upsert takes _id from filter')
  c.update_one({'_id': 'u2'}, {'$unset': {'x': ''}})
  check(c.find_one({'_id': 'u2'}) == {'_id': 'u2'}, '$unset')

  # findAndModify.
  d = c.find_one_and_update({'_id': 'u1'}, {'$inc': {'v': 1}},
                            return_document=pymongo.ReturnDocument.AFTER,
                            projection={'v': 1, '_id': 0})
  check(d == {'v': 3}, 'findAndModify new + projection')
  d = c.find_one_and_delete({'_id': 'u1'})
  check(d['v'] == 3 and c.find_one({'_id': 'u1'}) is None,
        'findAndModify remove')

  # Deletes.
  c.insert_many([{'_id': 'd%d' % i, 'k': 'del'} for i in range(5)])
  check(c.delete_one({'k': 'del'}).deleted_count == 1, 'delete limit 1')
  check(c.delete_many({'k': 'del'}).deleted_count == 4, 'delete limit 0')

  # Cursors over 1203 documents.
  big = db.big
  big.insert_many([{'_id': i, 'v': i % 7, 'pad': 'x' * 50}
                   for i in range(1203)])
  ids = [d['_id'] for d in big.find()]
  check(ids == list(range(1203)), 'find returns all 1203 in order')
  ids = [d['_id'] for d in big.find().sort('_id', -1).skip(3).limit(500)
         .batch_size(50)]
  check(ids == list(range(1199, 699, -1)), 'sort/skip/limit/batchSize')
  cur = big.find(batch_size=10)
  next(cur)
  cur.close()  # killCursors
  check(big.count_documents({}) == 1203, 'countDocuments all')
  check(big.count_documents({'v': 3}) == 172, 'countDocuments filter')
  check(big.count_documents({'v': 3}, skip=2, limit=100) == 100,
        'countDocuments skip/limit')
  check(big.estimated_document_count() == 1203, 'estimatedDocumentCount')
  check(sorted(big.distinct('v')) == list(range(7)), 'distinct')
  agg = list(big.aggregate([{'$match': {'_id': {'$lt': 100}}},
                            {'$group': {'_id': '$v', 'n': {'$sum': 1}}},
                            {'$sort': {'_id': 1}}, {'$skip': 1},
                            {'$limit': 2},
                            {'$project': {'n': 1, 'twice': {
                                '$multiply': ['$n', 2]}}}]))
  check(agg == [{'_id': 1, 'n': 15, 'twice': 30},
                {'_id': 2, 'n': 14, 'twice': 28}], 'aggregate pipeline')
  proj = big.find_one({'_id': 5}, {'pad': 0})
  check(proj == {'_id': 5, 'v': 5}, 'exclusion projection')

  # Indexes.
  sess = db.sessions
  name = sess.create_index('expires', expireAfterSeconds=0)
  check(name == 'expires_1', 'TTL index name')
  sess.create_index('expires', expireAfterSeconds=0)  # same: no-op
  try:
    sess.create_index('expires', expireAfterSeconds=10)
    check(False, 'conflicting TTL index refused')
  except OperationFailure as e:
    check(e.code in (85, 86), 'index conflict code 85/86 (got %s)' % e.code)
  names = [ix['name'] for ix in sess.list_indexes()]
  check(names == ['_id_', 'expires_1'], 'listIndexes')
  sess.create_index([('u', 1)], unique=True)
  sess.insert_one({'_id': 1, 'u': 'x'})
  try:
    sess.insert_one({'_id': 2, 'u': 'x'})
    check(False, 'unique index enforced')
  except DuplicateKeyError:
    pass
  sess.drop_index('u_1')
  check(len(list(sess.list_indexes())) == 2, 'dropIndexes')
  check('sessions' in db.list_collection_names(), 'listCollections')
  check('csn_smoke' in client.list_database_names(), 'listDatabases')

  # Unknown command.
  try:
    db.command('noSuchCommandAtAll')
    check(False, 'unknown command refused')
  except OperationFailure as e:
    check(e.code == 59, 'unknown command code 59')

  # Unacknowledged write, then a read on the same client sees it.
  db.get_collection('things', write_concern=pymongo.WriteConcern(w=0)) \
    .insert_one({'_id': 'w0'})
  check(c.find_one({'_id': 'w0'}) is not None, 'w:0 insert applied')

  # TTL monitor.
  if not skip_ttl:
    past = datetime.datetime.utcnow() - datetime.timedelta(seconds=5)
    future = datetime.datetime.utcnow() + datetime.timedelta(hours=1)
    sess.insert_many([{'_id': 'old', 'expires': past},
                      {'_id': 'new', 'expires': future},
                      {'_id': 'none'}, {'_id': 'str', 'expires': 'soon'}])
    deadline = time.time() + 75
    while sess.find_one({'_id': 'old'}) and time.time() < deadline:
      time.sleep(0.2)
    left = sorted(d['_id'] for d in sess.find({'_id': {'$type': 'string'}}))
    check(left == ['new', 'none', 'str'], 'TTL removes only expired dates')

  c.drop()
  check('things' not in db.list_collection_names(), 'drop')
  db.command('dropDatabase')
  client.close()


def main():
  args = [a for a in sys.argv[1:] if not a.startswith('--')]
  proc = None
  if args:
    url = args[0]
  else:
    proc, url = start_server()
  try:
    run(url, '--skip-ttl' in sys.argv)
  finally:
    if proc:
      proc.terminate()
      rc = proc.wait(10)
      check(rc == 0, 'server exits 0 on SIGTERM (got %s)' % rc)
  if FAILED:
    print('%d check(s) failed' % len(FAILED))
    return 1
  print('all checks passed')
  return 0


if __name__ == '__main__':
  sys.exit(main())
