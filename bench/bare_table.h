/* bare_table.h - the least a server that keeps its sessions in memory
 * does per new visitor, for csn-bench-bare --table (bare_server.c).
 *
 * A table of the last N records, each a block of csession's size for the
 * demo's record (id, text, the table's own fields): a new visitor's save
 * inserts one, and once N are held, the oldest goes (first in, first out, as the
 * MemoryStore's probation queue evicts a table of one-time visitors). No
 * signing, no JSON, no cookie: what is left is the memory traffic of the
 * table itself, which is what a new visitor into a full MemoryStore of
 * 100,000 sessions costs over a bare server (docs/BENCHMARKS.md). A
 * returning visitor's save finds its record and writes it over in place.
 *
 * Thread-safe: one mutex, held for pointer work only. */
#ifndef CSN_BENCH_BARE_TABLE_H
#define CSN_BENCH_BARE_TABLE_H

#include <stddef.h>

/* Make a table of at most n records (n >= 1). 0, or -1 without memory. */
int bare_table_init(size_t n);
#define BARE_TABLE_ID_LEN 32

/* Save a record: over the one named by id (BARE_TABLE_ID_LEN characters)
 * in place when it is held (a returning visitor), else a new one, evicting
 * the oldest when full (a new visitor; id may be NULL). The record's id goes
 * to id_out, NUL-terminated. 0, or -1 without memory (nothing changed). */
int bare_table_save(const char *id, char id_out[BARE_TABLE_ID_LEN + 1]);
void bare_table_free(void);

#endif /* CSN_BENCH_BARE_TABLE_H */
