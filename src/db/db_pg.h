/*
 * Private to db/: the PostgreSQL driver's pieces (db_pg.c, db_pg_schema.c).
 */
#ifndef WH_DB_PG_H
#define WH_DB_PG_H

/* The schema scripts, one per schema version (version i + 1 is [i]); "" for a
 * version with nothing to do on PostgreSQL. */
#define DB_PG_SCHEMA_VERSION 18 /* how many: db_pg_schema.c checks it */
extern const char *const db_pg_migrations[];


#endif
