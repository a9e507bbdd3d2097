/*
 * db_blob.c: where a blob is held — the repositories linking a digest, with
 * their projects, for OCI 1.1's automatic cross-mount (a mount without a
 * usable `from`: acl/ picks the first holder the caller may read). Whether
 * a caller may read a holder is not decided here.
 */
#include "db/db_int.h"

#include <string.h>

struct holders_ctx {
    int (*fn)(const struct wh_blob_holder *h, void *payload);
    void *payload;
};

static int holder_row(db_stmt *s, void *payload)
{
    struct holders_ctx *c = payload;
    struct wh_blob_holder h;
    memset(&h, 0, sizeof(h));
    h.project.id = db_col_i64(s, 0);
    db_copy_col(h.project.name, sizeof(h.project.name), s, 1);
    h.project.public = db_col_int(s, 2) != 0;
    h.project.created_ms = db_col_i64(s, 3);
    h.repo = db_col_text(s, 4);
    h.size = (uint64_t)db_col_i64(s, 5);
    if (!h.repo)
        return 0;
    return c->fn(&h, c->payload);
}

int wh_db_blob_holders(wh_db *db, const char *digest, int64_t first_project, int64_t limit,
                       int (*fn)(const struct wh_blob_holder *h, void *payload), void *payload)
{
    /*
     * Found through repo_blob's digest index; the sort is over the holders of
     * one digest only. Rows of one project are adjacent, so a caller who
     * finds a project unreadable can pass over the rest of it cheaply.
     */
    static const char sql[] =
        "SELECT p.id, p.name, p.public, p.created_ms, r.name, b.size"
        " FROM repo_blob rb JOIN repository r ON r.id = rb.repo_id"
        " JOIN project p ON p.id = r.project_id JOIN blob b ON b.digest = rb.digest"
        " WHERE rb.digest = ?1"
        " ORDER BY p.id <> ?2, p.public = 0, p.id, r.name LIMIT ?3";
    CONN_OR_FAIL(c, db);
    db_stmt *s = db_stmt(c, sql);
    db_bind_text(s, 1, digest);
    db_bind_i64(s, 2, first_project);
    db_bind_i64(s, 3, limit);
    struct holders_ctx ctx = {fn, payload};
    return db_rows(c, s, holder_row, &ctx);
}
