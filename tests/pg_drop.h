/* pg_drop.h - drop a test's own table on the shared test server
 * ($CSN_TEST_PG_URL), which no store method does. Tests that make a table
 * of their own there (a name with their pid) drop it at the end, so runs
 * leave nothing behind. Needs libpq (link csn_store_pg_static, which
 * carries it). Header-only test code: include it in one file. */
#ifndef CSN_TEST_PG_DROP_H
#define CSN_TEST_PG_DROP_H

#include <stdio.h>

#include <libpq-fe.h>

/* DROP TABLE IF EXISTS "table" on the database of url (10 s to connect).
 * 0, or -1 with a message on stderr. */
static int test_pg_drop_table(const char *url, const char *table) {
  const char *keys[] = {"dbname", "connect_timeout", NULL};
  const char *vals[] = {url, "10", NULL};
  PGconn *c = PQconnectdbParams(keys, vals, 1);
  char sql[160];
  PGresult *r;
  int ok;
  if (PQstatus(c) != CONNECTION_OK) {
    fprintf(stderr, "could not connect to drop %s: %s", table,
            PQerrorMessage(c));
    PQfinish(c);
    return -1;
  }
  snprintf(sql, sizeof sql, "DROP TABLE IF EXISTS \"%s\"", table);
  r = PQexec(c, sql);
  ok = PQresultStatus(r) == PGRES_COMMAND_OK;
  if (!ok)
    fprintf(stderr, "drop %s: %s", table, PQerrorMessage(c));
  PQclear(r);
  PQfinish(c);
  return ok ? 0 : -1;
}

#endif /* CSN_TEST_PG_DROP_H */
