/*
 * Private to db/: the PostgreSQL driver's pieces (db_pg.c, db_pg_schema.c).
 */
#ifndef WH_DB_PG_H
#define WH_DB_PG_H

/* The schema scripts, one per schema version (version i + 1 is [i]); "" for a
 * version with nothing to do on PostgreSQL. */
#define DB_PG_SCHEMA_VERSION 11 /* how many: db_pg_schema.c checks it */
extern const char *const db_pg_migrations[];

/* Server connections per pool from the next pool made on (db.pool_size, > 0). */
void db_pg_pool_size_set(int n);

#endif
