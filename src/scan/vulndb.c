/*
 * vulndb.c: the vulnerability database, one SQLite file. Imports each
 * publisher's own format: the Debian Security Tracker JSON
 * (source package -> CVE -> releases), Alpine secdb JSON (and the
 * one-package-per-file form of the same keys), OSV records (files,
 * directories, .zip) and NVD CVE API 2.0 JSON for CVSS and descriptions.
 * Distro data becomes (platform, source package, id, fixed version, status)
 * rows; OSV rows keep their ranges for evaluation at match time. An import
 * copies the current file, applies everything in one transaction and renames
 * the result over the old file. Downloads (update) use libcurl.
 */
#include "scan/scan_int.h"

#include "fetch/curl_lib.h"

#include <archive.h>
#include <archive_entry.h>
#include <ctype.h>
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define DOC_MAX (1ull << 30)     /* one feed document (the full Debian tracker is ~70 MiB) */
#define ZIP_ENTRY_MAX (16u << 20) /* one OSV record inside a zip */
#define DIR_DEPTH_MAX 16
#define SCHEMA_VERSION 1

struct wh_vulndb {
    sqlite3 *db;
};

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS source(name TEXT PRIMARY KEY, files INTEGER NOT NULL,"
    "  advisories INTEGER NOT NULL, imported_at TEXT NOT NULL);"
    /* platform: debian:12, alpine:3.18, ubuntu:22.04, npm, pypi, go, maven, ... */
    "CREATE TABLE IF NOT EXISTS advisory(platform TEXT NOT NULL, pkg TEXT NOT NULL,"
    "  vuln_id TEXT NOT NULL, origin TEXT NOT NULL, ecosystem TEXT, fixed TEXT,"
    "  status TEXT NOT NULL, severity TEXT, ranges TEXT);"
    "CREATE INDEX IF NOT EXISTS advisory_pkg ON advisory(platform, pkg);"
    "CREATE INDEX IF NOT EXISTS advisory_vuln ON advisory(vuln_id);"
    "CREATE TABLE IF NOT EXISTS vuln(id TEXT PRIMARY KEY, title TEXT, description TEXT,"
    "  aliases TEXT, links TEXT, cwes TEXT, cvss3_vector TEXT, cvss3_score REAL, severity TEXT,"
    "  origin TEXT);"
    "CREATE TABLE IF NOT EXISTS nvd(id TEXT PRIMARY KEY, description TEXT, links TEXT, cwes TEXT,"
    "  cvss3_vector TEXT, cvss3_score REAL, published TEXT);";

/* ---- open / close ---- */

int wh_vulndb_open(wh_vulndb **out, const char *path)
{
    sqlite3 *db = NULL;
    struct stat st;
    if (stat(path, &st) < 0)
        return wh_error_set(WH_ENOTFOUND, "vulnerability database %s does not exist", path);
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        sqlite3_close(db);
        return wh_error_set(WH_EINVALID, "vulnerability database %s cannot be opened", path);
    }
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(db, "SELECT count(*) FROM advisory", -1, &s, NULL) != SQLITE_OK) {
        sqlite3_close(db);
        return wh_error_set(WH_EINVALID, "%s is not a wharf vulnerability database", path);
    }
    sqlite3_finalize(s);
    wh_vulndb *v = wh_calloc(1, sizeof(*v));
    v->db = db;
    *out = v;
    return 0;
}

void wh_vulndb_close(wh_vulndb *db)
{
    if (!db)
        return;
    sqlite3_close(db->db);
    free(db);
}

int64_t wh_vulndb_count(wh_vulndb *db)
{
    sqlite3_stmt *s = NULL;
    int64_t n = 0;
    if (sqlite3_prepare_v2(db->db, "SELECT count(*) FROM advisory", -1, &s, NULL) == SQLITE_OK &&
        sqlite3_step(s) == SQLITE_ROW)
        n = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return n;
}

/*
 * The tables that matching reads, in an order that depends on their content
 * only (not on the order of the imports that wrote them): the digest of two
 * databases holding the same advisories is the same, whatever their files'
 * bytes, names or import times.
 */
static const char *const digest_sql[] = {
    "SELECT platform, pkg, vuln_id, origin, ecosystem, fixed, status, severity, ranges"
    " FROM advisory ORDER BY platform, pkg, vuln_id, origin, ecosystem, fixed, status, severity,"
    " ranges",
    "SELECT id, title, description, aliases, links, cwes, cvss3_vector, cvss3_score, severity,"
    " origin FROM vuln ORDER BY id",
    "SELECT id, description, links, cwes, cvss3_vector, cvss3_score, published FROM nvd"
    " ORDER BY id",
};

int wh_vulndb_digest(wh_vulndb *db, struct wh_digest *out)
{
    wh_hasher *h = wh_hasher_new(WH_DIGEST_SHA256);
    int error = 0;
    for (size_t t = 0; t < sizeof(digest_sql) / sizeof(digest_sql[0]) && error == 0; t++) {
        sqlite3_stmt *s = NULL;
        char mark[32];
        if (sqlite3_prepare_v2(db->db, digest_sql[t], -1, &s, NULL) != SQLITE_OK) {
            error = wh_error_set(WH_ERROR, "vulnerability database: %s",
                                 sqlite3_errmsg(db->db));
            break;
        }
        int rc, ncol = sqlite3_column_count(s);
        snprintf(mark, sizeof(mark), "T%zu\n", t);
        wh_hasher_update(h, mark, strlen(mark));
        while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
            for (int i = 0; i < ncol; i++) {
                /* a type and a length before each value: no two rows hash alike */
                int type = sqlite3_column_type(s, i);
                const unsigned char *v = type == SQLITE_NULL ? NULL : sqlite3_column_text(s, i);
                size_t n = v ? (size_t)sqlite3_column_bytes(s, i) : 0;
                snprintf(mark, sizeof(mark), "%d:%zu:", type, n);
                wh_hasher_update(h, mark, strlen(mark));
                if (v)
                    wh_hasher_update(h, v, n);
            }
            wh_hasher_update(h, "\n", 1);
        }
        if (rc != SQLITE_DONE)
            error = wh_error_set(WH_ERROR, "vulnerability database: %s", sqlite3_errmsg(db->db));
        sqlite3_finalize(s);
    }
    if (error == 0)
        wh_hasher_final(out, h);
    wh_hasher_free(h);
    return error;
}

sqlite3 *wh_vulndb_handle(wh_vulndb *db)
{
    return db->db;
}

/* ---- import machinery ---- */

struct importer {
    sqlite3 *db;
    sqlite3_stmt *adv, *vuln_ins, *vuln_keep, *nvd, *del_origin, *del_alpine, *del_vuln;
    struct wh_vulndb_stats *st;
    uint64_t files[4], rows[4]; /* per source: debian, alpine, osv, nvd */
    bool debian_cleared;
};

enum { SRC_DEBIAN, SRC_ALPINE, SRC_OSV, SRC_NVD };
static const char *const src_names[] = {"debian-tracker", "alpine-secdb", "osv", "nvd"};

static int exec(sqlite3 *db, const char *sql)
{
    char *err = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) {
        int rc = wh_error_set(WH_ERROR, "vulndb: %s", err ? err : sqlite3_errmsg(db));
        sqlite3_free(err);
        return rc;
    }
    return 0;
}

static int prep(sqlite3 *db, sqlite3_stmt **st, const char *sql)
{
    if (sqlite3_prepare_v2(db, sql, -1, st, NULL) != SQLITE_OK)
        return wh_error_set(WH_ERROR, "vulndb: %s", sqlite3_errmsg(db));
    return 0;
}

static void bind_text(sqlite3_stmt *s, int i, const char *v)
{
    if (v)
        sqlite3_bind_text(s, i, v, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(s, i);
}

static int step_reset(struct importer *im, sqlite3_stmt *s)
{
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    if (rc != SQLITE_DONE)
        return wh_error_set(WH_ERROR, "vulndb: %s", sqlite3_errmsg(im->db));
    return 0;
}

static int add_advisory(struct importer *im, int src, const char *platform, const char *pkg,
                        const char *id, const char *ecosystem, const char *fixed, const char *status,
                        const char *severity, const char *ranges)
{
    sqlite3_stmt *s = im->adv;
    bind_text(s, 1, platform);
    bind_text(s, 2, pkg);
    bind_text(s, 3, id);
    bind_text(s, 4, src_names[src]);
    bind_text(s, 5, ecosystem);
    bind_text(s, 6, fixed);
    bind_text(s, 7, status);
    bind_text(s, 8, severity);
    bind_text(s, 9, ranges);
    im->rows[src]++;
    if (im->st)
        im->st->advisories++;
    return step_reset(im, s);
}

/* Writes a vuln row; `replace` = this source's text wins over an earlier one. */
static int add_vuln(struct importer *im, bool replace, const char *id, const char *title,
                    const char *desc, const char *aliases, const char *links, const char *cwes,
                    const char *vector, double score, const char *severity, const char *origin)
{
    sqlite3_stmt *s = replace ? im->vuln_ins : im->vuln_keep;
    bind_text(s, 1, id);
    bind_text(s, 2, title);
    bind_text(s, 3, desc);
    bind_text(s, 4, aliases ? aliases : "[]");
    bind_text(s, 5, links ? links : "[]");
    bind_text(s, 6, cwes ? cwes : "[]");
    bind_text(s, 7, vector);
    if (score > 0)
        sqlite3_bind_double(s, 8, score);
    else
        sqlite3_bind_null(s, 8);
    bind_text(s, 9, severity);
    bind_text(s, 10, origin);
    if (im->st)
        im->st->vulns++;
    return step_reset(im, s);
}

static char *dump_compact(const json_t *j)
{
    return json_dumps(j, JSON_COMPACT);
}

/* ---- Debian Security Tracker JSON ---- */

const char *wh_debian_release_version(const char *codename)
{
    static const char *const map[][2] = {
        {"wheezy", "7"},    {"jessie", "8"},  {"stretch", "9"}, {"buster", "10"},
        {"bullseye", "11"}, {"bookworm", "12"}, {"trixie", "13"}, {"forky", "14"},
        {"sid", "sid"},
    };
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
        if (strcmp(codename, map[i][0]) == 0)
            return map[i][1];
    return NULL;
}

/* Debian urgency -> severity name, NULL when it says nothing (fall back to NVD). */
static const char *debian_severity(const char *urgency)
{
    char u[32];
    size_t n = 0;
    if (!urgency)
        return NULL;
    for (const char *p = urgency; *p && n + 1 < sizeof(u); p++)
        if (*p != '*')
            u[n++] = *p;
    u[n] = '\0';
    if (strcmp(u, "unimportant") == 0)
        return "Negligible";
    if (strcmp(u, "low") == 0)
        return "Low";
    if (strcmp(u, "medium") == 0)
        return "Medium";
    if (strcmp(u, "high") == 0)
        return "High";
    return NULL;
}

static int import_debian(struct importer *im, json_t *doc)
{
    const char *pkg, *id, *codename;
    json_t *cves, *rec, *rel;
    int error = 0;
    if (!im->debian_cleared) {
        /* The tracker document is the whole source: it replaces what an earlier import had. */
        sqlite3_bind_text(im->del_origin, 1, src_names[SRC_DEBIAN], -1, SQLITE_STATIC);
        if ((error = step_reset(im, im->del_origin)) < 0)
            return error;
        im->debian_cleared = true;
    }
    json_object_foreach(doc, pkg, cves) {
        if (!json_is_object(cves))
            continue;
        json_object_foreach(cves, id, rec) {
            json_t *rels = json_object_get(rec, "releases");
            const char *desc = json_string_value(json_object_get(rec, "description"));
            bool any = false;
            json_object_foreach(rels, codename, rel) {
                const char *ver = wh_debian_release_version(codename);
                const char *status = json_string_value(json_object_get(rel, "status"));
                const char *fixed = json_string_value(json_object_get(rel, "fixed_version"));
                const char *urgency = json_string_value(json_object_get(rel, "urgency"));
                const char *reason = json_string_value(json_object_get(rel, "nodsa_reason"));
                if (!ver || !status)
                    continue;
                char platform[32];
                snprintf(platform, sizeof(platform), "debian:%s", ver);
                const char *st;
                if (strcmp(status, "resolved") == 0) {
                    if (!fixed || strcmp(fixed, "0") == 0)
                        continue; /* never affected */
                    st = "fixed";
                } else if (strcmp(status, "open") == 0) {
                    fixed = NULL;
                    if (reason && strcmp(reason, "ignored") == 0)
                        st = "will_not_fix";
                    else if (reason && strcmp(reason, "postponed") == 0)
                        st = "fix_deferred";
                    else if (urgency && strcmp(urgency, "end-of-life") == 0)
                        st = "end_of_life";
                    else
                        st = "affected";
                } else {
                    continue; /* undetermined */
                }
                if ((error = add_advisory(im, SRC_DEBIAN, platform, pkg, id, NULL, fixed, st,
                                          debian_severity(urgency), NULL)) < 0)
                    return error;
                any = true;
            }
            if (any) {
                /* The tracker wraps its truncated summary in parentheses: "(Text ...)". */
                char *d = NULL;
                size_t dl = desc ? strlen(desc) : 0;
                if (dl >= 2 && desc[0] == '(' && desc[dl - 1] == ')')
                    desc = d = wh_strndup(desc + 1, dl - 2);
                char *links = wh_sprintf("[\"https://security-tracker.debian.org/tracker/%s\"]", id);
                error = add_vuln(im, false, id, desc, desc, NULL, links, NULL, NULL, 0, NULL,
                                 src_names[SRC_DEBIAN]);
                free(links);
                free(d);
                if (error < 0)
                    return error;
            }
        }
    }
    return 0;
}

/* ---- Alpine secdb ---- */

static int alpine_package(struct importer *im, const char *platform, json_t *pkgobj)
{
    const char *name = json_string_value(json_object_get(pkgobj, "name"));
    json_t *secfixes = json_object_get(pkgobj, "secfixes");
    const char *fixed;
    json_t *ids;
    int error;
    if (!name || !json_is_object(secfixes))
        return 0;
    sqlite3_bind_text(im->del_alpine, 1, platform, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(im->del_alpine, 2, name, -1, SQLITE_TRANSIENT);
    if ((error = step_reset(im, im->del_alpine)) < 0)
        return error;
    json_object_foreach(secfixes, fixed, ids) {
        size_t i;
        json_t *v;
        if (strcmp(fixed, "0") == 0)
            continue; /* "0": never affected in Alpine */
        json_array_foreach(ids, i, v) {
            const char *s = json_string_value(v);
            if (!s)
                continue;
            /* Entries may hold several ids: "CVE-2019-1 XSA-3". */
            char tok[128];
            while (*s) {
                while (*s && isspace((unsigned char)*s))
                    s++;
                size_t n = strcspn(s, " \t\r\n");
                if (n == 0)
                    break;
                if (n < sizeof(tok)) {
                    memcpy(tok, s, n);
                    tok[n] = '\0';
                    if ((error = add_advisory(im, SRC_ALPINE, platform, name, tok, NULL, fixed,
                                              "fixed", NULL, NULL)) < 0)
                        return error;
                }
                s += n;
            }
        }
    }
    return 0;
}

static int import_alpine(struct importer *im, json_t *doc)
{
    const char *dv = json_string_value(json_object_get(doc, "distroversion"));
    char platform[32];
    int error;
    if (!dv)
        return wh_error_set(WH_EINVALID, "Alpine secdb document has no distroversion");
    snprintf(platform, sizeof(platform), "alpine:%s", dv[0] == 'v' ? dv + 1 : dv);
    json_t *pkgs = json_object_get(doc, "packages");
    if (json_is_array(pkgs)) {
        size_t i;
        json_t *p;
        json_array_foreach(pkgs, i, p)
            if ((error = alpine_package(im, platform, json_object_get(p, "pkg"))) < 0)
                return error;
        return 0;
    }
    return alpine_package(im, platform, doc); /* one package per file */
}

/* ---- OSV ---- */

/* OSV ecosystem -> platform key: "Debian:12" -> "debian:12", "Alpine:v3.18" -> "alpine:3.18". */
void wh_osv_platform(char *out, size_t cap, const char *eco)
{
    size_t o = 0;
    const char *colon = strchr(eco, ':');
    size_t base = colon ? (size_t)(colon - eco) : strlen(eco);
    for (size_t i = 0; i < base && o + 1 < cap; i++)
        out[o++] = (char)tolower((unsigned char)eco[i]);
    out[o] = '\0';
    if (!colon)
        return;
    const char *rel = colon + 1;
    if (strncmp(rel, "Pro:", 4) == 0)
        rel += 4;
    if ((strcmp(out, "alpine") == 0) && rel[0] == 'v')
        rel++;
    size_t rl = strcspn(rel, ":"); /* drop ":LTS" */
    if (o + 1 + rl + 1 > cap)
        return;
    out[o++] = ':';
    for (size_t i = 0; i < rl; i++)
        out[o++] = (char)tolower((unsigned char)rel[i]);
    out[o] = '\0';
}

/* PEP 503 name normalisation: lower case, runs of -_. become one '-'. */
void wh_pypi_normalize(char *out, size_t cap, const char *name)
{
    size_t o = 0;
    bool sep = false;
    for (const char *p = name; *p && o + 1 < cap; p++) {
        if (*p == '-' || *p == '_' || *p == '.') {
            sep = true;
            continue;
        }
        if (sep && o > 0 && o + 2 < cap)
            out[o++] = '-';
        sep = false;
        out[o++] = (char)tolower((unsigned char)*p);
    }
    out[o] = '\0';
}

static const char *osv_severity_word(const char *s)
{
    if (!s)
        return NULL;
    if (strcasecmp(s, "CRITICAL") == 0)
        return "Critical";
    if (strcasecmp(s, "HIGH") == 0)
        return "High";
    if (strcasecmp(s, "MODERATE") == 0 || strcasecmp(s, "MEDIUM") == 0)
        return "Medium";
    if (strcasecmp(s, "LOW") == 0)
        return "Low";
    if (strcasecmp(s, "NEGLIGIBLE") == 0 || strcasecmp(s, "UNIMPORTANT") == 0)
        return "Negligible";
    return NULL;
}

static const char *cvss3_vector_of(json_t *sevs)
{
    size_t i;
    json_t *s;
    json_array_foreach(sevs, i, s) {
        const char *type = json_string_value(json_object_get(s, "type"));
        if (type && strcmp(type, "CVSS_V3") == 0)
            return json_string_value(json_object_get(s, "score"));
    }
    return NULL;
}

static int import_osv_record(struct importer *im, json_t *doc)
{
    const char *id = json_string_value(json_object_get(doc, "id"));
    int error;
    if (!id)
        return wh_error_set(WH_EINVALID, "OSV record without id");
    if (json_object_get(doc, "withdrawn") && json_string_value(json_object_get(doc, "withdrawn")))
        return 0;
    sqlite3_bind_text(im->del_vuln, 1, id, -1, SQLITE_TRANSIENT);
    if ((error = step_reset(im, im->del_vuln)) < 0)
        return error;

    json_t *dbs = json_object_get(doc, "database_specific");
    const char *rec_sev = osv_severity_word(json_string_value(json_object_get(dbs, "severity")));
    size_t si;
    json_t *sv;
    json_array_foreach(json_object_get(doc, "severity"), si, sv) {
        /* Ubuntu records rate with their own priority words: {"type": "Ubuntu", "score": "medium"} */
        const char *type = json_string_value(json_object_get(sv, "type"));
        if (!rec_sev && type && strcmp(type, "Ubuntu") == 0)
            rec_sev = osv_severity_word(json_string_value(json_object_get(sv, "score")));
    }
    const char *vector = cvss3_vector_of(json_object_get(doc, "severity"));
    double score = 0;
    if (vector && wh_cvss3_score(&score, vector) < 0)
        score = 0;

    size_t i;
    json_t *aff;
    json_array_foreach(json_object_get(doc, "affected"), i, aff) {
        json_t *pkg = json_object_get(aff, "package");
        const char *eco = json_string_value(json_object_get(pkg, "ecosystem"));
        const char *name = json_string_value(json_object_get(pkg, "name"));
        if (!eco || !name)
            continue;
        char platform[64], norm[256];
        wh_osv_platform(platform, sizeof(platform), eco);
        if (strcmp(platform, "pypi") == 0) {
            wh_pypi_normalize(norm, sizeof(norm), name);
            name = norm;
        }
        /* Per-package severity: distro urgency / priority, else the record's. */
        json_t *es = json_object_get(aff, "ecosystem_specific");
        const char *sev = rec_sev;
        const char *urg = json_string_value(json_object_get(es, "urgency"));
        if (urg)
            sev = debian_severity(urg);
        json_t *r = json_pack("{s:O?, s:O?}", "ranges", json_object_get(aff, "ranges"), "versions",
                              json_object_get(aff, "versions"));
        char *ranges = dump_compact(r);
        json_decref(r);
        error = add_advisory(im, SRC_OSV, platform, name, id, eco, NULL, "affected", sev, ranges);
        free(ranges);
        if (error < 0)
            return error;
    }
    /* aliases and upstream both name the same issue elsewhere (a CVE for a GHSA). */
    json_t *al = json_array();
    json_t *aliases = json_object_get(doc, "aliases"), *up = json_object_get(doc, "upstream");
    if (json_is_array(aliases))
        json_array_extend(al, aliases);
    if (json_is_array(up))
        json_array_extend(al, up);
    json_t *links = json_array();
    json_t *ref;
    json_array_foreach(json_object_get(doc, "references"), i, ref) {
        const char *u = json_string_value(json_object_get(ref, "url"));
        if (u)
            json_array_append_new(links, json_string(u));
    }
    json_t *cwes = json_object_get(dbs, "cwe_ids");
    char *a = dump_compact(al), *l = dump_compact(links),
         *c = json_is_array(cwes) ? dump_compact(cwes) : NULL;
    error = add_vuln(im, true, id, json_string_value(json_object_get(doc, "summary")),
                     json_string_value(json_object_get(doc, "details")), a, l, c, vector, score,
                     rec_sev, src_names[SRC_OSV]);
    free(a);
    free(l);
    free(c);
    json_decref(al);
    json_decref(links);
    return error;
}

/* ---- NVD CVE API 2.0 ---- */

static int import_nvd_cve(struct importer *im, json_t *cve)
{
    const char *id = json_string_value(json_object_get(cve, "id"));
    if (!id)
        return 0;
    const char *desc = NULL;
    size_t i;
    json_t *d;
    json_array_foreach(json_object_get(cve, "descriptions"), i, d) {
        const char *lang = json_string_value(json_object_get(d, "lang"));
        if (lang && strcmp(lang, "en") == 0) {
            desc = json_string_value(json_object_get(d, "value"));
            break;
        }
    }
    json_t *metrics = json_object_get(cve, "metrics");
    const char *vector = NULL;
    double score = 0;
    static const char *const keys[] = {"cvssMetricV31", "cvssMetricV30"};
    for (size_t k = 0; k < 2 && !vector; k++) {
        json_t *m, *pick = NULL;
        json_array_foreach(json_object_get(metrics, keys[k]), i, m) {
            const char *type = json_string_value(json_object_get(m, "type"));
            if (!pick || (type && strcmp(type, "Primary") == 0))
                pick = m;
        }
        if (pick) {
            json_t *cd = json_object_get(pick, "cvssData");
            vector = json_string_value(json_object_get(cd, "vectorString"));
            score = json_number_value(json_object_get(cd, "baseScore"));
        }
    }
    json_t *links = json_array(), *cwes = json_array(), *x;
    json_array_foreach(json_object_get(cve, "references"), i, x) {
        const char *u = json_string_value(json_object_get(x, "url"));
        if (u && json_array_size(links) < 32)
            json_array_append_new(links, json_string(u));
    }
    json_array_foreach(json_object_get(cve, "weaknesses"), i, x) {
        size_t k;
        json_t *dd;
        json_array_foreach(json_object_get(x, "description"), k, dd) {
            const char *v = json_string_value(json_object_get(dd, "value"));
            if (v && strncmp(v, "CWE-", 4) == 0)
                json_array_append_new(cwes, json_string(v));
        }
    }
    char *l = dump_compact(links), *c = dump_compact(cwes);
    sqlite3_stmt *s = im->nvd;
    bind_text(s, 1, id);
    bind_text(s, 2, desc);
    bind_text(s, 3, l);
    bind_text(s, 4, c);
    bind_text(s, 5, vector);
    if (score > 0)
        sqlite3_bind_double(s, 6, score);
    else
        sqlite3_bind_null(s, 6);
    bind_text(s, 7, json_string_value(json_object_get(cve, "published")));
    free(l);
    free(c);
    json_decref(links);
    json_decref(cwes);
    im->rows[SRC_NVD]++;
    if (im->st)
        im->st->vulns++;
    return step_reset(im, s);
}

static int import_nvd(struct importer *im, json_t *doc)
{
    json_t *vulns = json_object_get(doc, "vulnerabilities");
    int error;
    if (json_is_array(vulns)) {
        size_t i;
        json_t *v;
        json_array_foreach(vulns, i, v)
            if ((error = import_nvd_cve(im, json_object_get(v, "cve"))) < 0)
                return error;
        return 0;
    }
    if (json_is_object(json_object_get(doc, "cve")))
        return import_nvd_cve(im, json_object_get(doc, "cve"));
    return import_nvd_cve(im, doc);
}

/* ---- format detection ---- */

static bool looks_debian(json_t *doc)
{
    /* source package -> { id -> { "releases": {...} } }: look at the first of each */
    void *it = json_object_iter(doc);
    json_t *pkg = it ? json_object_iter_value(it) : NULL;
    void *it2 = json_is_object(pkg) ? json_object_iter(pkg) : NULL;
    json_t *rec = it2 ? json_object_iter_value(it2) : NULL;
    return json_is_object(json_object_get(rec, "releases"));
}

static int import_doc(struct importer *im, json_t *doc, const char *name)
{
    const char *id = json_string_value(json_object_get(doc, "id"));
    int src, error;
    if (json_is_array(doc)) {
        size_t i;
        json_t *v;
        json_array_foreach(doc, i, v)
            if (json_is_object(v) && json_object_get(v, "id") &&
                (error = import_osv_record(im, v)) < 0)
                return error;
        src = SRC_OSV;
    } else if (json_object_get(doc, "distroversion") &&
               (json_object_get(doc, "packages") || json_object_get(doc, "secfixes"))) {
        if ((error = import_alpine(im, doc)) < 0)
            return error;
        src = SRC_ALPINE;
    } else if (json_is_array(json_object_get(doc, "vulnerabilities")) ||
               json_is_object(json_object_get(doc, "cve")) ||
               (id && strncmp(id, "CVE-", 4) == 0 && json_object_get(doc, "metrics"))) {
        if ((error = import_nvd(im, doc)) < 0)
            return error;
        src = SRC_NVD;
    } else if (id && (json_object_get(doc, "affected") || json_object_get(doc, "modified"))) {
        if ((error = import_osv_record(im, doc)) < 0)
            return error;
        src = SRC_OSV;
    } else if (looks_debian(doc)) {
        if ((error = import_debian(im, doc)) < 0)
            return error;
        src = SRC_DEBIAN;
    } else {
        return wh_error_set(WH_EINVALID,
                            "%s is in no format wharf imports (Debian tracker JSON, Alpine secdb, "
                            "OSV, NVD CVE API 2.0)", name);
    }
    im->files[src]++;
    if (im->st)
        im->st->files++;
    return 0;
}

/* ---- large documents: the tracker, one top-level member at a time ---- */

#define STREAM_MIN (8u << 20) /* smaller documents are simply parsed whole */

static const char *skip_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

/* One past the closing quote of the JSON string that starts at p, or NULL. */
static const char *string_end(const char *p, const char *end)
{
    for (p++; p < end; p++) {
        if (*p == '\\')
            p++;
        else if (*p == '"')
            return p + 1;
    }
    return NULL;
}

/* One past the JSON value that starts at p (bracket depth, strings skipped), or NULL. */
static const char *value_end(const char *p, const char *end)
{
    int depth = 0;
    while (p < end) {
        char c = *p;
        if (c == '"') {
            if (!(p = string_end(p, end)))
                return NULL;
            if (depth == 0)
                return p;
            continue;
        }
        if (c == '{' || c == '[') {
            depth++;
        } else if (c == '}' || c == ']') {
            if (--depth < 0)
                return NULL;
            if (depth == 0)
                return p + 1;
        } else if (depth == 0 && (c == ',' || c == ' ' || c == '\n' || c == '\r' || c == '\t')) {
            return p;
        }
        p++;
    }
    return depth == 0 ? p : NULL;
}

/*
 * Imports a large Debian tracker document one source package at a time, so
 * memory holds the file's bytes and one package's tree instead of the whole
 * tree (the live tracker JSON is tens of MiB, its tree several times that).
 * Sets *handled when the document was a tracker document; otherwise the
 * caller parses it whole (and reports malformed JSON itself).
 */
static int import_debian_stream(struct importer *im, const char *data, size_t len, const char *name,
                                bool *handled)
{
    const char *end = data + len, *p = skip_ws(data, end);
    *handled = false;
    if (p >= end || *p != '{')
        return 0;
    p++;
    for (;;) {
        p = skip_ws(p, end);
        if (p < end && *p == '}')
            break;
        if (p >= end || *p != '"')
            goto malformed;
        const char *ks = p, *ke = string_end(p, end);
        if (!ke)
            goto malformed;
        p = skip_ws(ke, end);
        if (p >= end || *p != ':')
            goto malformed;
        const char *vs = skip_ws(p + 1, end), *ve = value_end(vs, end);
        if (!ve)
            goto malformed;
        json_error_t jerr;
        json_t *key = json_loadb(ks, (size_t)(ke - ks), JSON_DECODE_ANY, &jerr);
        json_t *val = json_loadb(vs, (size_t)(ve - vs), JSON_DECODE_ANY, &jerr);
        if (!json_is_string(key) || !val) {
            json_decref(key);
            json_decref(val);
            goto malformed;
        }
        json_t *doc = json_object();
        json_object_set_new(doc, json_string_value(key), val);
        json_decref(key);
        if (!*handled) {
            if (!looks_debian(doc)) {
                json_decref(doc);
                return 0;
            }
            *handled = true;
        }
        int error = import_debian(im, doc);
        json_decref(doc);
        if (error < 0)
            return error;
        p = skip_ws(ve, end);
        if (p < end && *p == ',') {
            p++;
            continue;
        }
        if (p < end && *p == '}')
            break;
        goto malformed;
    }
    if (*handled) {
        im->files[SRC_DEBIAN]++;
        if (im->st)
            im->st->files++;
    }
    return 0;
malformed:
    if (!*handled)
        return 0;
    return wh_error_set(WH_EINVALID, "%s: malformed JSON in the tracker document", name);
}

static int import_bytes(struct importer *im, const char *data, size_t len, const char *name)
{
    if (len >= STREAM_MIN) {
        bool handled = false;
        int error = import_debian_stream(im, data, len, name, &handled);
        if (handled || error < 0)
            return error;
    }
    json_error_t jerr;
    json_t *doc = json_loadb(data, len, 0, &jerr);
    if (!doc)
        return wh_error_set(WH_EINVALID, "%s: not JSON (line %d: %s)", name, jerr.line, jerr.text);
    int error = import_doc(im, doc, name);
    json_decref(doc);
    return error;
}

static int import_zip(struct importer *im, const char *path)
{
    struct archive *a = archive_read_new();
    struct archive_entry *e;
    int error = 0, r;
    archive_read_support_format_zip(a);
    if (archive_read_open_filename(a, path, 65536) != ARCHIVE_OK) {
        error = wh_error_set(WH_EINVALID, "%s: not a zip archive: %s", path, archive_error_string(a));
        goto out;
    }
    while ((r = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
        const char *name = archive_entry_pathname(e);
        size_t nl = name ? strlen(name) : 0;
        if (nl < 5 || strcmp(name + nl - 5, ".json") != 0 || archive_entry_filetype(e) != AE_IFREG)
            continue;
        struct wh_buf b;
        wh_buf_init(&b, ZIP_ENTRY_MAX);
        char block[65536];
        la_ssize_t n;
        while ((n = archive_read_data(a, block, sizeof(block))) > 0)
            if (wh_buf_put(&b, block, (size_t)n) < 0)
                break;
        if (n < 0 || b.len >= ZIP_ENTRY_MAX)
            error = wh_error_set(WH_EINVALID, "%s: entry %s unreadable or too large", path, name);
        else
            error = import_bytes(im, b.data ? b.data : "", b.len, name);
        wh_buf_dispose(&b);
        if (error < 0)
            goto out;
    }
    if (r != ARCHIVE_EOF)
        error = wh_error_set(WH_EINVALID, "%s: damaged zip: %s", path, archive_error_string(a));
out:
    archive_read_free(a);
    return error;
}

static int read_file(struct wh_buf *b, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return wh_error_set(errno == ENOENT ? WH_ENOTFOUND : WH_EINVALID, "%s: %s", path, strerror(errno));
    wh_buf_init(b, DOC_MAX);
    char block[1 << 16];
    size_t n;
    int error = 0;
    while ((n = fread(block, 1, sizeof(block), f)) > 0)
        if (wh_buf_put(b, block, n) < 0) {
            error = wh_error_set(WH_ETOOBIG, "%s is larger than %llu bytes", path, (unsigned long long)DOC_MAX);
            break;
        }
    if (!error && ferror(f))
        error = wh_error_set(WH_EINVALID, "%s: read error", path);
    fclose(f);
    return error;
}

static int import_path(struct importer *im, const char *path, int depth)
{
    struct stat st;
    int error = 0;
    if (stat(path, &st) < 0)
        return wh_error_set(WH_ENOTFOUND, "%s: %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode)) {
        if (depth > DIR_DEPTH_MAX)
            return 0;
        struct dirent **names = NULL;
        int n = scandir(path, &names, NULL, alphasort);
        if (n < 0)
            return wh_error_set(WH_EINVALID, "%s: %s", path, strerror(errno));
        for (int i = 0; i < n; i++) {
            const char *nm = names[i]->d_name;
            size_t nl = strlen(nm);
            if (!error && nm[0] != '.') {
                char *sub = wh_sprintf("%s/%s", path, nm);
                struct stat ss;
                if (stat(sub, &ss) == 0 &&
                    (S_ISDIR(ss.st_mode) || (nl > 5 && strcmp(nm + nl - 5, ".json") == 0) ||
                     (nl > 4 && strcmp(nm + nl - 4, ".zip") == 0)))
                    error = import_path(im, sub, depth + 1);
                free(sub);
            }
            free(names[i]);
        }
        free(names);
        return error;
    }
    size_t pl = strlen(path);
    if (pl > 4 && strcmp(path + pl - 4, ".zip") == 0)
        return import_zip(im, path);
    struct wh_buf b;
    if ((error = read_file(&b, path)) < 0)
        return error;
    error = import_bytes(im, b.data ? b.data : "", b.len, path);
    wh_buf_dispose(&b);
    return error;
}

static void iso_now(char *out, size_t cap)
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void importer_finish(struct importer *im)
{
    sqlite3_stmt **all[] = {&im->adv,        &im->vuln_ins,   &im->vuln_keep, &im->nvd,
                            &im->del_origin, &im->del_alpine, &im->del_vuln};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        sqlite3_finalize(*all[i]);
        *all[i] = NULL;
    }
}

int wh_vulndb_import(const char *dbpath, const char *const *paths, size_t npaths,
                     struct wh_vulndb_stats *stats)
{
    struct importer im = {0};
    struct stat st;
    char rnd[17];
    wh_random_hex(rnd, 8); /* unique per import, also between threads of one process */
    char *tmp = wh_sprintf("%s.new.%d.%s", dbpath, (int)getpid(), rnd);
    int error = 0;

    if (stats)
        memset(stats, 0, sizeof(*stats));
    im.st = stats;
    char *dir = wh_strdup(dbpath);
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = '\0';
        wh_mkdirs(dir, 0755);
    }
    free(dir);
    unlink(tmp);
    /* Start from a copy of the current database so earlier sources are kept. */
    if (stat(dbpath, &st) == 0) {
        sqlite3 *old = NULL;
        if (sqlite3_open_v2(dbpath, &old, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
            sqlite3_close(old);
            error = wh_error_set(WH_ERROR, "cannot open %s", dbpath);
            goto out;
        }
        char *sql = sqlite3_mprintf("VACUUM INTO %Q", tmp);
        error = exec(old, sql);
        sqlite3_free(sql);
        sqlite3_close(old);
        if (error < 0)
            goto out;
    }
    if (sqlite3_open_v2(tmp, &im.db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK) {
        error = wh_error_set(WH_ERROR, "cannot create %s: %s", tmp, sqlite3_errmsg(im.db));
        goto out;
    }
    if ((error = exec(im.db, "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;")) < 0 ||
        (error = exec(im.db, schema)) < 0 || (error = exec(im.db, "BEGIN")) < 0)
        goto out;
    if ((error = prep(im.db, &im.adv,
                      "INSERT INTO advisory(platform,pkg,vuln_id,origin,ecosystem,fixed,status,severity,ranges)"
                      " VALUES(?,?,?,?,?,?,?,?,?)")) < 0 ||
        (error = prep(im.db, &im.vuln_ins,
                      "INSERT OR REPLACE INTO vuln VALUES(?,?,?,?,?,?,?,?,?,?)")) < 0 ||
        (error = prep(im.db, &im.vuln_keep, "INSERT OR IGNORE INTO vuln VALUES(?,?,?,?,?,?,?,?,?,?)")) < 0 ||
        (error = prep(im.db, &im.nvd, "INSERT OR REPLACE INTO nvd VALUES(?,?,?,?,?,?,?)")) < 0 ||
        (error = prep(im.db, &im.del_origin, "DELETE FROM advisory WHERE origin=?")) < 0 ||
        (error = prep(im.db, &im.del_alpine,
                      "DELETE FROM advisory WHERE origin='alpine-secdb' AND platform=? AND pkg=?")) < 0 ||
        (error = prep(im.db, &im.del_vuln, "DELETE FROM advisory WHERE origin='osv' AND vuln_id=?")) < 0)
        goto out;
    for (size_t i = 0; i < npaths; i++)
        if ((error = import_path(&im, paths[i], 0)) < 0)
            goto out;
    char now[32];
    iso_now(now, sizeof(now));
    for (int s = 0; s < 4; s++) {
        if (!im.files[s])
            continue;
        char *sql = sqlite3_mprintf(
            "INSERT OR REPLACE INTO source VALUES(%Q, %llu, (SELECT count(*) FROM advisory WHERE origin=%Q) + %llu, %Q)",
            src_names[s], (unsigned long long)im.files[s], src_names[s],
            s == SRC_NVD ? (unsigned long long)im.rows[s] : 0ull, now);
        error = exec(im.db, sql);
        sqlite3_free(sql);
        if (error < 0)
            goto out;
    }
    char *sql = sqlite3_mprintf("INSERT OR REPLACE INTO meta VALUES('updated_at', %Q);"
                                "INSERT OR REPLACE INTO meta VALUES('schema', '%d');",
                                now, SCHEMA_VERSION);
    error = exec(im.db, sql);
    sqlite3_free(sql);
    if (error < 0 || (error = exec(im.db, "COMMIT")) < 0)
        goto out;
    importer_finish(&im);
    if (sqlite3_close(im.db) != SQLITE_OK) {
        im.db = NULL;
        error = wh_error_set(WH_ERROR, "closing %s failed", tmp);
        goto out;
    }
    im.db = NULL;
    /*
     * The copy was written without a journal or syncs (it is not visible to
     * anyone until the rename): it reaches the disk now, before it replaces
     * the database, and the rename itself is made durable by syncing the
     * directory. A failure at any step leaves the old database in place.
     */
    int fd = open(tmp, O_RDONLY | O_CLOEXEC);
    int fp = wh_failpoint("vulndb.fsync");
    if (fp > 0)
        errno = fp;
    if (fd < 0 || fp > 0 || fsync(fd) != 0) {
        error = wh_error_set(WH_ERROR, "cannot flush %s to disk: %s", tmp, strerror(errno));
        if (fd >= 0)
            close(fd);
        goto out;
    }
    close(fd);
    if ((fp = wh_failpoint("vulndb.rename")) > 0)
        errno = fp;
    if (fp > 0 || rename(tmp, dbpath) < 0) {
        error = wh_error_set(WH_ERROR, "rename %s -> %s: %s", tmp, dbpath, strerror(errno));
        goto out;
    }
    char *parent = wh_strdup(dbpath);
    char *sep = strrchr(parent, '/');
    if (sep == parent)
        sep[1] = '\0';
    else if (sep)
        *sep = '\0';
    else
        snprintf(parent, strlen(parent) + 1, ".");
    if (wh_fsync_dir(parent) < 0) {
        /* the new database is in place and complete; only its name may not survive a crash */
        error = wh_error_set(WH_ERROR, "the database was replaced but %s could not be synced: %s",
                             parent, wh_error_msg());
    }
    free(parent);
out:
    if (im.db) {
        importer_finish(&im);
        sqlite3_close(im.db);
    }
    if (error < 0)
        unlink(tmp);
    free(tmp);
    return error;
}

int wh_vulndb_status(const char *dbpath, FILE *f)
{
    wh_vulndb *db = NULL;
    sqlite3_stmt *s = NULL;
    int error;
    if ((error = wh_vulndb_open(&db, dbpath)) < 0)
        return error;
    fprintf(f, "database:   %s\n", dbpath);
    if (sqlite3_prepare_v2(db->db, "SELECT value FROM meta WHERE key='updated_at'", -1, &s, NULL) == SQLITE_OK &&
        sqlite3_step(s) == SQLITE_ROW)
        fprintf(f, "updated:    %s\n", (const char *)sqlite3_column_text(s, 0));
    sqlite3_finalize(s);
    s = NULL;
    fprintf(f, "advisories: %lld\n", (long long)wh_vulndb_count(db));
    if (sqlite3_prepare_v2(db->db, "SELECT count(*) FROM nvd", -1, &s, NULL) == SQLITE_OK &&
        sqlite3_step(s) == SQLITE_ROW)
        fprintf(f, "nvd cves:   %lld\n", (long long)sqlite3_column_int64(s, 0));
    sqlite3_finalize(s);
    s = NULL;
    fprintf(f, "sources:\n");
    if (sqlite3_prepare_v2(db->db, "SELECT name, files, advisories, imported_at FROM source ORDER BY name",
                           -1, &s, NULL) == SQLITE_OK)
        while (sqlite3_step(s) == SQLITE_ROW)
            fprintf(f, "  %-15s %6lld files %9lld records  imported %s\n",
                    (const char *)sqlite3_column_text(s, 0), (long long)sqlite3_column_int64(s, 1),
                    (long long)sqlite3_column_int64(s, 2), (const char *)sqlite3_column_text(s, 3));
    sqlite3_finalize(s);
    s = NULL;
    fprintf(f, "platforms:\n");
    if (sqlite3_prepare_v2(db->db,
                           "SELECT platform, count(*) FROM advisory GROUP BY platform ORDER BY platform",
                           -1, &s, NULL) == SQLITE_OK)
        while (sqlite3_step(s) == SQLITE_ROW)
            fprintf(f, "  %-15s %9lld advisories\n", (const char *)sqlite3_column_text(s, 0),
                    (long long)sqlite3_column_int64(s, 1));
    sqlite3_finalize(s);
    wh_vulndb_close(db);
    return 0;
}

static void column_copy(sqlite3_stmt *s, int col, char *out, size_t cap)
{
    const unsigned char *v = sqlite3_column_text(s, col);
    snprintf(out, cap, "%s", v ? (const char *)v : "");
}

int wh_vulndb_info(const char *dbpath, struct wh_vulndb_info *out)
{
    wh_vulndb *db = NULL;
    sqlite3_stmt *s = NULL;
    int error;
    memset(out, 0, sizeof(*out));
    if ((error = wh_vulndb_open(&db, dbpath)) < 0)
        return error;
    /* as wh_vulndb_status: a table an older database lacks counts as empty */
    if (sqlite3_prepare_v2(db->db, "SELECT value FROM meta WHERE key='updated_at'", -1, &s,
                           NULL) == SQLITE_OK &&
        sqlite3_step(s) == SQLITE_ROW)
        column_copy(s, 0, out->updated_at, sizeof(out->updated_at));
    sqlite3_finalize(s);
    s = NULL;
    out->advisories = wh_vulndb_count(db);
    if (sqlite3_prepare_v2(db->db, "SELECT count(*) FROM nvd", -1, &s, NULL) == SQLITE_OK &&
        sqlite3_step(s) == SQLITE_ROW)
        out->nvd_records = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    s = NULL;
    if (sqlite3_prepare_v2(db->db,
                           "SELECT name, files, advisories, imported_at FROM source ORDER BY name",
                           -1, &s, NULL) == SQLITE_OK) {
        while (out->nsources < WH_VULNDB_SOURCES_MAX && sqlite3_step(s) == SQLITE_ROW) {
            struct wh_vulndb_source *src = &out->sources[out->nsources++];
            column_copy(s, 0, src->name, sizeof(src->name));
            src->files = sqlite3_column_int64(s, 1);
            src->records = sqlite3_column_int64(s, 2);
            column_copy(s, 3, src->imported_at, sizeof(src->imported_at));
        }
    }
    sqlite3_finalize(s);
    wh_vulndb_close(db);
    return 0;
}

/* ---- update: download public feeds ---- */

static const char *const default_feeds[] = {
    "https://security-tracker.debian.org/tracker/data/json",
    "https://secdb.alpinelinux.org/v3.18/main.json",
    "https://secdb.alpinelinux.org/v3.18/community.json",
    "https://secdb.alpinelinux.org/v3.19/main.json",
    "https://secdb.alpinelinux.org/v3.19/community.json",
    "https://secdb.alpinelinux.org/v3.20/main.json",
    "https://secdb.alpinelinux.org/v3.20/community.json",
    "https://secdb.alpinelinux.org/v3.21/main.json",
    "https://secdb.alpinelinux.org/v3.21/community.json",
    "https://osv-vulnerabilities.storage.googleapis.com/Go/all.zip",
    "https://osv-vulnerabilities.storage.googleapis.com/PyPI/all.zip",
    "https://osv-vulnerabilities.storage.googleapis.com/npm/all.zip",
    "https://osv-vulnerabilities.storage.googleapis.com/Maven/all.zip",
    "https://osv-vulnerabilities.storage.googleapis.com/crates.io/all.zip",
    "https://osv-vulnerabilities.storage.googleapis.com/Ubuntu/all.zip",
    "https://osv-vulnerabilities.storage.googleapis.com/AlmaLinux/all.zip",
    "https://osv-vulnerabilities.storage.googleapis.com/Rocky%20Linux/all.zip",
    "https://osv-vulnerabilities.storage.googleapis.com/Wolfi/all.zip",
    "https://osv-vulnerabilities.storage.googleapis.com/Chainguard/all.zip",
};

const char *const *wh_vulndb_default_feeds(size_t *n)
{
    *n = sizeof(default_feeds) / sizeof(default_feeds[0]);
    return default_feeds;
}

static int download(const struct wh_curl_lib *curl, const char *url, const char *dest)
{
    FILE *f = fopen(dest, "wb");
    if (!f)
        return wh_error_set(WH_ERROR, "%s: %s", dest, strerror(errno));
    CURL *c = curl->easy_init();
    char errbuf[CURL_ERROR_SIZE] = "";
    curl->easy_setopt(c, CURLOPT_URL, url);
    curl->easy_setopt(c, CURLOPT_WRITEDATA, f);
    curl->easy_setopt(c, CURLOPT_FAILONERROR, 1L);
    curl->easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl->easy_setopt(c, CURLOPT_MAXREDIRS, 5L);
    curl->easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 15L);
    curl->easy_setopt(c, CURLOPT_TIMEOUT, 900L);
    curl->easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)DOC_MAX);
    curl->easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl->easy_setopt(c, CURLOPT_USERAGENT, "wharf-vulndb/" WH_SCANNER_VERSION);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl->easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https,http");
#endif
    CURLcode rc = curl->easy_perform(c);
    curl->easy_cleanup(c);
    int closed = fclose(f);
    if (rc != CURLE_OK) {
        const char *hint = (rc == CURLE_COULDNT_RESOLVE_HOST || rc == CURLE_COULDNT_CONNECT ||
                            rc == CURLE_OPERATION_TIMEDOUT || rc == CURLE_COULDNT_RESOLVE_PROXY)
                               ? " (no network, or the feed is unreachable)"
                               : "";
        return wh_error_set(WH_ERROR, "%s: %s%s", url, errbuf[0] ? errbuf : curl->easy_strerror(rc), hint);
    }
    if (closed != 0)
        return wh_error_set(WH_ERROR, "%s: write failed", dest);
    return 0;
}

int wh_vulndb_update(const char *dbpath, const char *const *urls, size_t nurls,
                     struct wh_vulndb_stats *stats)
{
    /* Downloads go next to the database (same filesystem, room for it), not to /tmp. */
    char *dir = wh_strdup(dbpath);
    char *slash = strrchr(dir, '/');
    if (slash) {
        *slash = '\0';
        wh_mkdirs(dir, 0755);
    }
    char *tmpl = wh_sprintf("%s/.vulndb-download-XXXXXX", slash ? dir : ".");
    free(dir);
    char **files = NULL;
    size_t nfiles = 0, failed = 0;
    struct wh_buf errs;
    int error = 0;

    if (!urls || nurls == 0) {
        urls = default_feeds;
        nurls = sizeof(default_feeds) / sizeof(default_feeds[0]);
    }
    if (!mkdtemp(tmpl)) {
        error = wh_error_set(WH_ERROR, "cannot create %s: %s", tmpl, strerror(errno));
        free(tmpl);
        return error;
    }
    /* loaded on first use, not linked (curl_lib.h) */
    const struct wh_curl_lib *curl = wh_curl_lib();
    if (!curl) {
        char why[256];
        snprintf(why, sizeof(why), "%s", wh_error_msg());
        error = wh_error_set(WH_ERROR, "cannot download feeds: %s", why);
        rmdir(tmpl);
        free(tmpl);
        return error;
    }
    wh_buf_init(&errs, 4096);
    files = wh_calloc(nurls, sizeof(*files));
    for (size_t i = 0; i < nurls; i++) {
        const char *u = urls[i];
        size_t ul = strlen(u);
        const char *ext = ul > 4 && strcmp(u + ul - 4, ".zip") == 0 ? ".zip" : ".json";
        char *dest = wh_sprintf("%s/feed-%03zu%s", tmpl, i, ext);
        wh_log_info("vulndb: downloading %s", u);
        if (download(curl, u, dest) < 0) {
            failed++;
            wh_buf_printf(&errs, "%s%s", errs.len ? "; " : "", wh_error_msg());
            unlink(dest);
            free(dest);
            continue;
        }
        files[nfiles++] = dest;
    }
    if (nfiles > 0) {
        if ((error = wh_vulndb_import(dbpath, (const char *const *)files, nfiles, stats)) < 0)
            goto out;
    }
    if (failed)
        error = wh_error_set(WH_ERROR, "%zu of %zu feeds failed, %s: %s", failed, nurls,
                             nfiles ? "the others were imported" : "the database was not changed",
                             errs.data ? errs.data : "");
out:
    for (size_t i = 0; i < nfiles; i++) {
        unlink(files[i]);
        free(files[i]);
    }
    free(files);
    rmdir(tmpl);
    free(tmpl);
    wh_buf_dispose(&errs);
    return error;
}

char *wh_vulndb_feed_list(const char *data_dir)
{
    const char *env = getenv("WHARF_VULNDB_FEEDS");
    if (env && *env)
        return wh_strdup(env);
    char *listpath = wh_sprintf("%s/vulndb-feeds.txt", data_dir);
    FILE *lf = fopen(listpath, "r");
    free(listpath);
    if (!lf)
        return NULL;
    struct wh_buf lb;
    char line[4096];
    wh_buf_init(&lb, 1u << 20);
    while (fgets(line, sizeof(line), lf)) {
        char *hash = strchr(line, '#');
        if (hash)
            *hash = '\0';
        wh_buf_printf(&lb, "%s\n", line);
    }
    fclose(lf);
    return wh_buf_detach(&lb, NULL);
}

#define FEED_URLS_MAX 256

int wh_vulndb_update_configured(const char *dbpath, const char *data_dir,
                                struct wh_vulndb_stats *stats)
{
    char *list = wh_vulndb_feed_list(data_dir), *save = NULL;
    const char *urls[FEED_URLS_MAX];
    size_t n = 0;
    for (char *t = list ? strtok_r(list, " \t\r\n", &save) : NULL; t && n < FEED_URLS_MAX;
         t = strtok_r(NULL, " \t\r\n", &save))
        urls[n++] = t;
    int error = wh_vulndb_update(dbpath, n ? urls : NULL, n, stats);
    free(list);
    return error;
}
