/*
 * db_gate.c: what the pull gate reads (schema 8): system settings by name
 * (the system CVE allowlist) and the facts about an artifact that decide
 * whether the vulnerability policy applies to it.
 */
#include "db/db_int.h"

#include <stdio.h>
#include <string.h>

int wh_db_setting_get(wh_db *db, const char *name, char *out, size_t cap)
{
    static const char sql[] = "SELECT value FROM setting WHERE name = ?1";
    CONN_OR_FAIL(c, db);
    db_stmt *s = db_stmt(c, sql);
    db_bind_text(s, 1, name);
    int error = db_one_row(c, s, "setting");
    if (error < 0)
        return error;
    db_copy_col(out, cap, s, 0);
    db_done(s);
    return 0;
}

int wh_db_setting_set(wh_db *db, const char *name, const char *value, int64_t now_ms)
{
    static const char sql[] = "INSERT INTO setting(name, value, updated_ms) VALUES(?1, ?2, ?3)"
                              " ON CONFLICT(name) DO UPDATE SET value = ?2, updated_ms = ?3";
    CONN_WRITE_OR_FAIL(c, db);
    db_stmt *s = db_stmt(c, sql);
    db_bind_text(s, 1, name);
    db_bind_text(s, 2, value);
    db_bind_i64(s, 3, now_ms);
    return db_run(c, s);
}

/* An image manifest whose config is an image configuration: what a scan reads. */
#define IMAGE_SQL(a)                                                                               \
    "(" a ".media_type IN ('application/vnd.oci.image.manifest.v1+json',"                         \
    " 'application/vnd.docker.distribution.manifest.v2+json') AND " a ".artifact_type IN"         \
    " ('application/vnd.oci.image.config.v1+json',"                                               \
    " 'application/vnd.docker.container.image.v1+json'))"

int wh_db_gate_artifact(wh_db *db, int64_t artifact_id, struct wh_gate_artifact *out)
{
    /*
     * A signature is an artifact of a signature type (notation, cosign's OCI
     * 1.1 form) or one tagged as cosign tags its signatures
     * ("sha256-<hex>.sig"). Children are an index's manifests, found in the
     * index's repository.
     */
    static const char sql[] =
        "SELECT " IMAGE_SQL("a") ","
        " coalesce(a.artifact_type, '') IN ('application/vnd.cncf.notary.signature',"
        "  'application/vnd.dev.cosign.artifact.sig.v1+json')"
        "  OR EXISTS(SELECT 1 FROM tag t WHERE t.artifact_id = a.id"
        "   AND" DB_COSIGN_TAG("t.name") "),"
        " (SELECT count(*) FROM artifact_child ac JOIN artifact ch"
        "   ON ch.repo_id = ac.repo_id AND ch.digest = ac.child_digest"
        "   WHERE ac.artifact_id = a.id AND " IMAGE_SQL("ch") "),"
        " (SELECT count(*) FROM artifact_child ac JOIN artifact ch"
        "   ON ch.repo_id = ac.repo_id AND ch.digest = ac.child_digest"
        "   JOIN scan_job j ON j.artifact_id = ch.id WHERE ac.artifact_id = a.id),"
        " EXISTS(SELECT 1 FROM artifact_child ac WHERE ac.artifact_id = a.id)"
        " FROM artifact a WHERE a.id = ?1";
    CONN_OR_FAIL(c, db);
    db_stmt *s = db_stmt(c, sql);
    db_bind_i64(s, 1, artifact_id);
    int error = db_one_row(c, s, "artifact");
    if (error < 0)
        return error;
    memset(out, 0, sizeof(*out));
    out->image = db_col_int(s, 0) != 0;
    out->signature = db_col_int(s, 1) != 0;
    out->image_children = db_col_i64(s, 2);
    out->scanned_children = db_col_i64(s, 3);
    out->index = db_col_int(s, 4) != 0;
    db_done(s);
    return 0;
}
