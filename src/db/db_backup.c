/*
 * db_backup.c: copies of a database file for `wharf backup` and `wharf
 * restore` (cli/backup_cmd.c). The copy is made with SQLite's online backup
 * API in one step, so it is one read transaction: in WAL mode a consistent
 * snapshot that never blocks the server's writers. These functions work on
 * database files by path, with their own connection, and never migrate.
 */
#include "db/db_int.h"

#include <sqlite3.h>

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

/* Sets the error from `h` (or `what` when there is none): WH_ENOSPC for a full disk. */
static int file_fail(sqlite3 *h, const char *what, const char *path)
{
    int rc = h ? sqlite3_extended_errcode(h) & 0xff : SQLITE_ERROR;
    int sys = h ? sqlite3_system_errno(h) : 0;
    const char *msg = h ? sqlite3_errmsg(h) : "error";
    if (rc == SQLITE_FULL || (rc == SQLITE_IOERR && (sys == ENOSPC || sys == EDQUOT)))
        return wh_error_set(WH_ENOSPC, "%s %s: no space left on the device", what, path);
    return wh_error_set(WH_ERROR, "%s %s: %s", what, path, msg);
}

static int file_exec(sqlite3 *h, const char *sql, const char *path)
{
    char *msg = NULL;
    if (sqlite3_exec(h, sql, NULL, NULL, &msg) == SQLITE_OK)
        return 0;
    sqlite3_free(msg);
    return file_fail(h, "database", path);
}

/* Opens an existing database file without creating it. */
static int file_open(sqlite3 **out, const char *path, bool write)
{
    int flags = (write ? SQLITE_OPEN_READWRITE : SQLITE_OPEN_READONLY) | SQLITE_OPEN_NOMUTEX;
    if (access(path, F_OK) != 0)
        return wh_error_set(WH_ENOTFOUND, "%s: %s", path, strerror(errno));
    if (sqlite3_open_v2(path, out, flags, NULL) != SQLITE_OK) {
        int rc = file_fail(*out, "open", path);
        sqlite3_close(*out);
        *out = NULL;
        return rc;
    }
    sqlite3_busy_timeout(*out, 10000);
    return 0;
}

static int user_version(sqlite3 *h, const char *path, int *out)
{
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(h, "PRAGMA user_version", -1, &s, NULL) != SQLITE_OK)
        return file_fail(h, "database", path);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        *out = sqlite3_column_int(s, 0);
    sqlite3_finalize(s);
    return rc == SQLITE_ROW ? 0 : file_fail(h, "database", path);
}

static int fsync_path(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return wh_error_set(WH_ERROR, "%s: %s", path, strerror(errno));
    int rc = fsync(fd) == 0 ? 0
                            : wh_error_set(errno == ENOSPC || errno == EDQUOT ? WH_ENOSPC : WH_ERROR,
                                           "fsync %s: %s", path, strerror(errno));
    close(fd);
    return rc;
}

int wh_db_backup_file(const char *src, const char *dst, bool registry, int *schema_out)
{
    sqlite3 *from = NULL, *to = NULL;
    sqlite3_backup *b = NULL;
    int error;

    /* read-write (nothing is written): a read-only connection cannot always join a WAL */
    if ((error = file_open(&from, src, true)) < 0)
        goto out;
    if (access(dst, F_OK) == 0) {
        error = wh_error_set(WH_EEXISTS, "%s already exists", dst);
        goto out;
    }
    if (sqlite3_open_v2(dst, &to, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK) {
        error = file_fail(to, "create", dst);
        goto out;
    }
    b = sqlite3_backup_init(to, "main", from, "main");
    if (!b) {
        error = file_fail(to, "backup into", dst);
        goto out;
    }
    /*
     * All pages in one step: one read transaction on the source, so the copy
     * is the database as of one commit, whatever the server writes meanwhile.
     */
    int rc = sqlite3_backup_step(b, -1);
    if (rc != SQLITE_DONE) {
        sqlite3_backup_finish(b);
        b = NULL;
        error = file_fail(rc == SQLITE_BUSY || rc == SQLITE_LOCKED ? from : to, "backup into",
                          dst);
        goto out;
    }
    rc = sqlite3_backup_finish(b);
    b = NULL;
    if (rc != SQLITE_OK) {
        error = file_fail(to, "backup into", dst);
        goto out;
    }
    /*
     * The copy is one self-contained file (no WAL next to it). In a copy of
     * the registry, what cannot be restored goes: upload sessions (their
     * staged bytes are not part of a backup; clients start over) and blob
     * rows no repository links (their files may be gone).
     */
    if ((error = file_exec(to, "PRAGMA journal_mode=DELETE", dst)) < 0)
        goto out;
    if (registry &&
        (error = file_exec(to,
                           "BEGIN IMMEDIATE;"
                           "DELETE FROM upload;"
                           "DELETE FROM blob WHERE digest NOT IN (SELECT digest FROM repo_blob);"
                           "COMMIT;",
                           dst)) < 0)
        goto out;
    if ((error = user_version(to, dst, schema_out)) < 0)
        goto out;
    if (sqlite3_close(to) != SQLITE_OK) {
        error = file_fail(to, "close", dst);
        goto out;
    }
    to = NULL;
    error = fsync_path(dst);
out:
    if (b)
        sqlite3_backup_finish(b);
    sqlite3_close(to);
    sqlite3_close(from);
    return error;
}

int wh_db_file_check(const char *path, int *schema_out)
{
    sqlite3 *h = NULL;
    sqlite3_stmt *s = NULL;
    int error;
    if ((error = file_open(&h, path, false)) < 0)
        goto out;
    if ((error = user_version(h, path, schema_out)) < 0)
        goto out;
    if (sqlite3_prepare_v2(h, "PRAGMA integrity_check", -1, &s, NULL) != SQLITE_OK) {
        error = file_fail(h, "database", path);
        goto out;
    }
    int rc = sqlite3_step(s);
    const unsigned char *t = rc == SQLITE_ROW ? sqlite3_column_text(s, 0) : NULL;
    if (rc != SQLITE_ROW)
        error = file_fail(h, "database", path);
    else if (!t || strcmp((const char *)t, "ok") != 0)
        error = wh_error_set(WH_EINVALID, "database %s is damaged: %s", path,
                             t ? (const char *)t : "?");
out:
    sqlite3_finalize(s);
    sqlite3_close(h);
    return error;
}

int wh_db_file_blobs(const char *path, int (*fn)(const char *digest, uint64_t size, void *payload),
                     void *payload)
{
    /* what pulls need: blobs linked to a repository, and the manifests themselves */
    static const char sql[] = "SELECT digest, max(size) FROM ("
                              " SELECT rb.digest, b.size FROM repo_blob rb"
                              "  JOIN blob b ON b.digest = rb.digest"
                              " UNION ALL SELECT digest, size FROM artifact)"
                              " GROUP BY digest ORDER BY digest";
    sqlite3 *h = NULL;
    sqlite3_stmt *s = NULL;
    int error, rc;
    if ((error = file_open(&h, path, false)) < 0)
        goto out;
    if (sqlite3_prepare_v2(h, sql, -1, &s, NULL) != SQLITE_OK) {
        error = file_fail(h, "database", path);
        goto out;
    }
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        const unsigned char *d = sqlite3_column_text(s, 0);
        sqlite3_int64 size = sqlite3_column_int64(s, 1);
        if (!d || size < 0) {
            error = wh_error_set(WH_EINVALID, "database %s: a blob row without digest or size",
                                 path);
            goto out;
        }
        if ((error = fn((const char *)d, (uint64_t)size, payload)) != 0)
            goto out;
    }
    if (rc != SQLITE_DONE)
        error = file_fail(h, "database", path);
out:
    sqlite3_finalize(s);
    sqlite3_close(h);
    return error;
}
