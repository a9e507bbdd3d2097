/*
 * match.c: inventory x vulnerability database -> findings (the
 * rules in docs/scanning.md). OS packages are looked up by the
 * platform of the detected OS ("debian:12", "alpine:3.18", "ubuntu:22.04")
 * and their *source* package, compared with the source version; language
 * packages by ecosystem and name. Distro rows carry a fixed version or none
 * (open); for several fixed versions of one id the highest counts. OSV rows
 * are evaluated from their ranges (introduced/fixed/last_affected events in
 * version order) and explicit versions. One finding per installed binary
 * package; an id already reported for the package (or an alias of it) is not
 * reported twice. Severity: vendor first, then NVD CVSS v3, then the
 * record's own CVSS vector, else Unknown.
 */
#include "scan/scan_int.h"
#include "scan/version.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EVENTS_MAX 256

void wh_findings_free(struct wh_findings *f)
{
    if (!f)
        return;
    free(f->items);
    wh_pool_free(f->pool);
    free(f);
}

/* Platform key of the detected OS, "" when the OS is unknown. */
static void os_platform(char *out, size_t cap, const struct wh_os *os)
{
    char major[64], mm[64];
    size_t n = strcspn(os->version, ".");
    snprintf(major, sizeof(major), "%.*s", (int)n, os->version);
    const char *dot = strchr(os->version, '.');
    if (dot) {
        size_t n2 = strcspn(dot + 1, ".");
        snprintf(mm, sizeof(mm), "%.*s.%.*s", (int)n, os->version, (int)n2, dot + 1);
    } else {
        snprintf(mm, sizeof(mm), "%s", os->version);
    }
    out[0] = '\0';
    if (strcmp(os->family, "debian") == 0) {
        const char *rel = os->codename[0] ? wh_debian_release_version(os->codename) : NULL;
        if (strchr(os->version, '/'))
            /* testing/unstable carry a codename, not a number: "trixie/sid" -> debian:13 */
            snprintf(out, cap, "debian:%s", rel ? rel : os->codename);
        else
            snprintf(out, cap, "debian:%s", major);
    } else if (strcmp(os->family, "ubuntu") == 0) {
        snprintf(out, cap, "ubuntu:%s", mm);
    } else if (strcmp(os->family, "alpine") == 0) {
        snprintf(out, cap, "alpine:%s", mm);
    } else if (strcmp(os->family, "rocky") == 0) {
        snprintf(out, cap, "rocky linux:%s", major);
    } else if (strcmp(os->family, "almalinux") == 0) {
        snprintf(out, cap, "almalinux:%s", major);
    } else if (strcmp(os->family, "photon") == 0) {
        snprintf(out, cap, "photon os:%s", mm);
    } else if (strcmp(os->family, "wolfi") == 0 || strcmp(os->family, "chainguard") == 0) {
        snprintf(out, cap, "%s", os->family); /* rolling: OSV's "Wolfi" has no release */
    } else if (os->family[0]) {
        snprintf(out, cap, "%s:%s", os->family, major);
    }
}

static enum wh_eco kind_eco(enum wh_pkg_kind k)
{
    switch (k) {
    case WH_PKG_DPKG:
        return WH_ECO_DPKG;
    case WH_PKG_APK:
        return WH_ECO_APK;
    case WH_PKG_RPM:
        return WH_ECO_RPM;
    case WH_PKG_NPM:
        return WH_ECO_NPM;
    case WH_PKG_PYPI:
        return WH_ECO_PEP440;
    case WH_PKG_GO:
        return WH_ECO_GO;
    case WH_PKG_MAVEN:
        return WH_ECO_MAVEN;
    case WH_PKG_KIND_COUNT:
        break;
    }
    return WH_ECO_SEMVER;
}

static const char *const lang_platform[] = {
    [WH_PKG_NPM] = "npm", [WH_PKG_PYPI] = "pypi", [WH_PKG_GO] = "go", [WH_PKG_MAVEN] = "maven",
};

/* Compares versions; Go module versions are compared with their "v" on both sides. */
static int vcmp(enum wh_eco eco, const char *a, const char *b)
{
    if (eco == WH_ECO_GO) {
        char x[256], y[256];
        snprintf(x, sizeof(x), "%s%s", a[0] == 'v' ? "" : "v", a);
        snprintf(y, sizeof(y), "%s%s", b[0] == 'v' ? "" : "v", b);
        return wh_version_cmp(eco, x, y);
    }
    return wh_version_cmp(eco, a, b);
}

struct event {
    int kind; /* 0 introduced, 1 fixed, 2 last_affected, 3 limit */
    const char *v;
};

/* Event order: introduced "0" first, then by version, introduced before fixed at equal versions. */
static int event_cmp(enum wh_eco eco, const struct event *x, const struct event *y)
{
    bool x0 = x->kind == 0 && strcmp(x->v, "0") == 0, y0 = y->kind == 0 && strcmp(y->v, "0") == 0;
    if (x0 || y0)
        return x0 && y0 ? 0 : x0 ? -1 : 1;
    int c = vcmp(eco, x->v, y->v);
    return c ? c : x->kind - y->kind;
}

/* Insertion sort: ranges hold a handful of events, and qsort has no context argument. */
static void sort_events(struct event *ev, size_t n, enum wh_eco eco)
{
    for (size_t i = 1; i < n; i++) {
        struct event t = ev[i];
        size_t j = i;
        while (j > 0 && event_cmp(eco, &ev[j - 1], &t) > 0) {
            ev[j] = ev[j - 1];
            j--;
        }
        ev[j] = t;
    }
}

/* OSV affected evaluation (osv-schema docs, "Evaluation"); sets *fixed when known. */
static bool osv_affected(enum wh_eco eco, const char *v, json_t *spec, const char **fixed)
{
    size_t i;
    json_t *x;
    *fixed = NULL;
    json_array_foreach(json_object_get(spec, "versions"), i, x) {
        const char *s = json_string_value(x);
        if (s && strcmp(s, v) == 0)
            return true;
    }
    json_t *r;
    json_array_foreach(json_object_get(spec, "ranges"), i, r) {
        const char *type = json_string_value(json_object_get(r, "type"));
        if (!type || strcmp(type, "GIT") == 0)
            continue;
        struct event ev[EVENTS_MAX];
        size_t n = 0, k;
        json_t *e;
        json_array_foreach(json_object_get(r, "events"), k, e) {
            static const char *const names[] = {"introduced", "fixed", "last_affected", "limit"};
            for (int t = 0; t < 4 && n < EVENTS_MAX; t++) {
                const char *s = json_string_value(json_object_get(e, names[t]));
                if (s) {
                    ev[n].kind = t;
                    ev[n].v = s;
                    n++;
                }
            }
        }
        /* SEMVER ranges use semver ordering whatever the ecosystem. */
        enum wh_eco reco = strcmp(type, "SEMVER") == 0 && eco != WH_ECO_GO ? WH_ECO_SEMVER : eco;
        sort_events(ev, n, reco);
        bool vuln = false, limited = false;
        for (size_t j = 0; j < n; j++) {
            if (ev[j].kind == 3 && strcmp(ev[j].v, "*") != 0 && vcmp(reco, v, ev[j].v) >= 0)
                limited = true;
        }
        if (limited)
            continue;
        for (size_t j = 0; j < n; j++) {
            if (ev[j].kind == 0 && (strcmp(ev[j].v, "0") == 0 || vcmp(reco, v, ev[j].v) >= 0))
                vuln = true;
            else if (ev[j].kind == 1 && vcmp(reco, v, ev[j].v) >= 0)
                vuln = false;
            else if (ev[j].kind == 2 && vcmp(reco, v, ev[j].v) > 0)
                vuln = false;
        }
        if (vuln) {
            for (size_t j = 0; j < n; j++)
                if (ev[j].kind == 1 && vcmp(reco, v, ev[j].v) < 0) {
                    *fixed = ev[j].v;
                    break;
                }
            return true;
        }
    }
    return false;
}

struct matcher {
    sqlite3 *db;
    sqlite3_stmt *adv, *vuln, *nvd;
    struct wh_findings *out;
};

static const char *pstr(wh_pool *p, const unsigned char *s)
{
    return s ? wh_pool_strdup(p, (const char *)s) : NULL;
}

/* True when `id` or one of `aliases` (JSON array) was already reported for this package. */
static bool seen(const json_t *ids, const char *id, json_t *aliases)
{
    size_t i;
    json_t *v;
    if (json_object_get(ids, id))
        return true;
    json_array_foreach(aliases, i, v)
        if (json_is_string(v) && json_object_get(ids, json_string_value(v)))
            return true;
    return false;
}

static void remember(json_t *ids, const char *id, json_t *aliases)
{
    size_t i;
    json_t *v;
    json_object_set_new(ids, id, json_true());
    json_array_foreach(aliases, i, v)
        if (json_is_string(v))
            json_object_set_new(ids, json_string_value(v), json_true());
}

static void add_finding(struct matcher *m, const struct wh_pkg *pkg, const char *id,
                        const char *fixed, const char *status, const char *vendor_sev,
                        const char *origin, json_t *ids)
{
    wh_pool *pool = m->out->pool;
    struct wh_finding f = {0};
    json_t *aliases = NULL;
    const char *vsev = NULL;
    bool short_desc = false;

    f.id = wh_pool_strdup(pool, id);
    f.pkg = pkg;
    f.fixed = wh_pool_strdup(pool, fixed ? fixed : "");
    f.status = wh_pool_strdup(pool, status);
    f.source = wh_pool_strdup(pool, origin);
    f.aliases = "[]";
    f.links = "[]";
    f.cwes = "[]";
    f.cvss_vector = "";
    f.cvss_source = "";
    f.title = "";
    f.description = "";
    sqlite3_bind_text(m->vuln, 1, id, -1, SQLITE_TRANSIENT);
    if (sqlite3_step(m->vuln) == SQLITE_ROW) {
        f.title = pstr(pool, sqlite3_column_text(m->vuln, 0));
        f.description = pstr(pool, sqlite3_column_text(m->vuln, 1));
        const char *al = (const char *)sqlite3_column_text(m->vuln, 2);
        if (al) {
            f.aliases = wh_pool_strdup(pool, al);
            aliases = json_loads(al, 0, NULL);
        }
        if (sqlite3_column_text(m->vuln, 3))
            f.links = pstr(pool, sqlite3_column_text(m->vuln, 3));
        if (sqlite3_column_text(m->vuln, 4))
            f.cwes = pstr(pool, sqlite3_column_text(m->vuln, 4));
        if (sqlite3_column_text(m->vuln, 5)) {
            f.cvss_vector = pstr(pool, sqlite3_column_text(m->vuln, 5));
            f.cvss_score = sqlite3_column_double(m->vuln, 6);
            f.cvss_source = strncmp(id, "GHSA-", 5) == 0 ? "ghsa" : "osv";
        }
        vsev = pstr(pool, sqlite3_column_text(m->vuln, 7));
        const unsigned char *vorigin = sqlite3_column_text(m->vuln, 8);
        /* The tracker's text is a one-line summary: NVD's description is preferred over it. */
        short_desc = vorigin && strcmp((const char *)vorigin, "debian-tracker") == 0;
    }
    sqlite3_reset(m->vuln);
    if (seen(ids, id, aliases)) {
        json_decref(aliases);
        return;
    }
    remember(ids, id, aliases);

    /* NVD: by the id if it is a CVE, else by its first CVE alias. */
    const char *cve = strncmp(id, "CVE-", 4) == 0 ? id : NULL;
    size_t i;
    json_t *a;
    json_array_foreach(aliases, i, a) {
        const char *s = json_string_value(a);
        if (!cve && s && strncmp(s, "CVE-", 4) == 0)
            cve = s;
    }
    double nvd_score = 0;
    if (cve) {
        sqlite3_bind_text(m->nvd, 1, cve, -1, SQLITE_TRANSIENT);
        if (sqlite3_step(m->nvd) == SQLITE_ROW) {
            if (sqlite3_column_text(m->nvd, 3)) {
                nvd_score = sqlite3_column_double(m->nvd, 4);
                /* NVD's vector is the preferred CVSS when the record has none of its own. */
                if (!f.cvss_vector[0]) {
                    f.cvss_vector = pstr(pool, sqlite3_column_text(m->nvd, 3));
                    f.cvss_score = nvd_score;
                    f.cvss_source = "nvd";
                }
            }
            if ((short_desc || !f.description || !f.description[0]) && sqlite3_column_text(m->nvd, 0))
                f.description = pstr(pool, sqlite3_column_text(m->nvd, 0));
            if (strcmp(f.links, "[]") == 0 && sqlite3_column_text(m->nvd, 1))
                f.links = pstr(pool, sqlite3_column_text(m->nvd, 1));
            if (strcmp(f.cwes, "[]") == 0 && sqlite3_column_text(m->nvd, 2))
                f.cwes = pstr(pool, sqlite3_column_text(m->nvd, 2));
        }
        sqlite3_reset(m->nvd);
    }
    json_decref(aliases);
    if (!f.title || !f.title[0]) {
        const char *d = f.description ? f.description : "";
        f.title = wh_pool_strndup(pool, d, strcspn(d, "\n") < 120 ? strcspn(d, "\n") : 120);
    }
    if (!f.description)
        f.description = "";

    enum wh_severity sev = WH_SEV_UNKNOWN;
    if (vendor_sev && wh_severity_parse(&sev, vendor_sev) == 0) {
        /* vendor's word */
    } else if (nvd_score > 0) {
        sev = wh_severity_from_score(nvd_score);
    } else if (vsev && wh_severity_parse(&sev, vsev) == 0) {
        /* the record's own rating */
    } else if (f.cvss_score > 0) {
        sev = wh_severity_from_score(f.cvss_score);
    } else {
        sev = WH_SEV_UNKNOWN;
    }
    f.severity = sev;
    if (m->out->n == m->out->cap) {
        m->out->cap = m->out->cap ? m->out->cap * 2 : 64;
        m->out->items = wh_realloc(m->out->items, m->out->cap * sizeof(*m->out->items));
    }
    m->out->items[m->out->n++] = f;
}

struct group {
    char id[160];
    char origin[32];
    bool osv;
    bool open;                /* a distro row with no fixed version */
    char status[32];
    char *best_fixed;         /* highest fixed version (distro) */
    char *sev;
    bool osv_hit;
    char *osv_fixed;
};

static void group_reset(struct group *g)
{
    free(g->best_fixed);
    free(g->sev);
    free(g->osv_fixed);
    memset(g, 0, sizeof(*g));
}

static void group_flush(struct matcher *m, const struct wh_pkg *pkg, const char *ver, enum wh_eco eco,
                        struct group *g, json_t *ids)
{
    if (!g->id[0])
        return;
    if (g->osv) {
        if (g->osv_hit)
            add_finding(m, pkg, g->id, g->osv_fixed, g->osv_fixed ? "fixed" : "affected", g->sev,
                        g->origin, ids);
    } else if (g->open) {
        add_finding(m, pkg, g->id, NULL, g->status, g->sev, g->origin, ids);
    } else if (g->best_fixed && vcmp(eco, ver, g->best_fixed) < 0) {
        add_finding(m, pkg, g->id, g->best_fixed, "fixed", g->sev, g->origin, ids);
    }
    group_reset(g);
}

/* Matches the advisories filed under (platform, name) against version `ver`. */
static void match_name(struct matcher *m, const struct wh_pkg *pkg, const char *platform, const char *name,
                       const char *ver, json_t *ids)
{
    char norm[256];
    enum wh_eco eco = kind_eco(pkg->kind);
    struct group g = {0};

    if (pkg->kind == WH_PKG_PYPI) {
        wh_pypi_normalize(norm, sizeof(norm), name);
        name = norm;
    }
    sqlite3_bind_text(m->adv, 1, platform, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(m->adv, 2, name, -1, SQLITE_TRANSIENT);
    while (sqlite3_step(m->adv) == SQLITE_ROW) {
        const char *id = (const char *)sqlite3_column_text(m->adv, 0);
        const char *origin = (const char *)sqlite3_column_text(m->adv, 1);
        const char *ecosys = (const char *)sqlite3_column_text(m->adv, 2);
        const char *fixed = (const char *)sqlite3_column_text(m->adv, 3);
        const char *status = (const char *)sqlite3_column_text(m->adv, 4);
        const char *sev = (const char *)sqlite3_column_text(m->adv, 5);
        const char *ranges = (const char *)sqlite3_column_text(m->adv, 6);
        if (!id || !origin || !status)
            continue;
        if (strcmp(g.id, id) != 0 || strcmp(g.origin, origin) != 0) {
            group_flush(m, pkg, ver, eco, &g, ids);
            snprintf(g.id, sizeof(g.id), "%s", id);
            snprintf(g.origin, sizeof(g.origin), "%s", origin);
            g.osv = ranges != NULL;
        }
        if (sev && !g.sev)
            g.sev = wh_strdup(sev);
        if (ranges) {
            enum wh_eco reco = eco;
            if (ecosys)
                wh_version_eco_from_osv(&reco, ecosys);
            json_t *spec = json_loads(ranges, 0, NULL);
            const char *fx = NULL;
            if (spec && !g.osv_hit && osv_affected(reco, ver, spec, &fx)) {
                g.osv_hit = true;
                g.osv_fixed = fx ? wh_strdup(fx) : NULL;
            }
            json_decref(spec);
        } else if (!fixed) {
            if (!g.open)
                snprintf(g.status, sizeof(g.status), "%s", status);
            g.open = true;
        } else if (!g.best_fixed || vcmp(eco, fixed, g.best_fixed) > 0) {
            free(g.best_fixed);
            g.best_fixed = wh_strdup(fixed);
        }
    }
    group_flush(m, pkg, ver, eco, &g, ids);
    sqlite3_reset(m->adv);
}

static int match_pkg(struct matcher *m, const struct wh_pkg *pkg, const char *platform)
{
    bool os = pkg->kind <= WH_PKG_RPM;
    json_t *ids = json_object(); /* ids (and aliases) reported for this package */
    match_name(m, pkg, platform, os ? pkg->src_name : pkg->name, os ? pkg->src_version : pkg->version, ids);
    /* RPM distributions' OSV records (AlmaLinux, Rocky Linux) name binary packages. */
    if (pkg->kind == WH_PKG_RPM && strcmp(pkg->src_name, pkg->name) != 0)
        match_name(m, pkg, platform, pkg->name, pkg->version, ids);
    json_decref(ids);
    return 0;
}

static int finding_cmp(const void *a, const void *b)
{
    const struct wh_finding *x = a, *y = b;
    int c;
    if (x->severity != y->severity)
        return x->severity > y->severity ? -1 : 1;
    if ((c = strcmp(x->pkg->name, y->pkg->name)) != 0)
        return c;
    if ((c = strcmp(x->id, y->id)) != 0)
        return c;
    return strcmp(x->pkg->version, y->pkg->version);
}

/* ---- matching many inventories: per-package results remembered ---- */

/*
 * A package's findings depend on the package and the platform only, so a
 * re-match of thousands of images, which share most of their packages, looks
 * each distinct one up once. An entry keeps the findings without their
 * package; its strings live in the memo's pool.
 */
struct memo_entry {
    struct memo_entry *next;
    uint64_t hash;
    const char *key; /* platform, kind, name, version, source name and version */
    size_t keylen;
    struct wh_finding *items;
    size_t n;
};

struct wh_match_memo {
    sqlite3 *db;
    sqlite3_stmt *adv, *vuln, *nvd;
    wh_pool *pool;
    struct memo_entry **slots;
    size_t nslots, n;
};

static int prepare(struct matcher *m)
{
    /* Distro rows first so their ids win over OSV copies of the same issue. */
    if (sqlite3_prepare_v2(m->db,
                           "SELECT vuln_id, origin, ecosystem, fixed, status, severity, ranges"
                           " FROM advisory WHERE platform=? AND pkg=?"
                           " ORDER BY ranges IS NOT NULL, vuln_id, origin",
                           -1, &m->adv, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(m->db,
                           "SELECT title, description, aliases, links, cwes, cvss3_vector,"
                           " cvss3_score, severity, origin FROM vuln WHERE id=?",
                           -1, &m->vuln, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(m->db,
                           "SELECT description, links, cwes, cvss3_vector, cvss3_score FROM nvd WHERE id=?",
                           -1, &m->nvd, NULL) != SQLITE_OK)
        return wh_error_set(WH_ERROR, "vulnerability database query failed: %s", sqlite3_errmsg(m->db));
    return 0;
}

int wh_match_memo_new(wh_match_memo **out, wh_vulndb *db)
{
    struct matcher m = {.db = wh_vulndb_handle(db)};
    int error = prepare(&m);
    if (error < 0) {
        sqlite3_finalize(m.adv);
        sqlite3_finalize(m.vuln);
        sqlite3_finalize(m.nvd);
        return error;
    }
    wh_match_memo *mm = wh_calloc(1, sizeof(*mm));
    mm->db = m.db;
    mm->adv = m.adv;
    mm->vuln = m.vuln;
    mm->nvd = m.nvd;
    mm->pool = wh_pool_new();
    mm->nslots = 4096;
    mm->slots = wh_calloc(mm->nslots, sizeof(*mm->slots));
    *out = mm;
    return 0;
}

void wh_match_memo_free(wh_match_memo *mm)
{
    if (!mm)
        return;
    sqlite3_finalize(mm->adv);
    sqlite3_finalize(mm->vuln);
    sqlite3_finalize(mm->nvd);
    for (size_t i = 0; i < mm->nslots; i++)
        for (struct memo_entry *e = mm->slots[i], *nx; e; e = nx) {
            nx = e->next;
            free(e->items);
            free(e);
        }
    free(mm->slots);
    wh_pool_free(mm->pool);
    free(mm);
}

static void memo_key(struct wh_buf *b, const char *platform, const struct wh_pkg *p)
{
    const char *parts[] = {platform, p->name, p->version, p->src_name, p->src_version};
    char kind = (char)('a' + p->kind);
    b->len = 0;
    wh_buf_put(b, &kind, 1);
    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++)
        wh_buf_put(b, parts[i], strlen(parts[i]) + 1); /* with its NUL: a separator */
}

static uint64_t fnv(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

static void memo_grow(wh_match_memo *mm)
{
    size_t ns = mm->nslots * 2;
    struct memo_entry **slots = wh_calloc(ns, sizeof(*slots));
    for (size_t i = 0; i < mm->nslots; i++)
        for (struct memo_entry *e = mm->slots[i], *nx; e; e = nx) {
            nx = e->next;
            e->next = slots[e->hash % ns];
            slots[e->hash % ns] = e;
        }
    free(mm->slots);
    mm->slots = slots;
    mm->nslots = ns;
}

static const char *keep(wh_pool *pool, const char *s)
{
    return s ? wh_pool_strdup(pool, s) : NULL;
}

/* The findings of `pkg` in `out`, from the memo or looked up (and remembered). */
static int memo_match(wh_match_memo *mm, struct matcher *m, const struct wh_pkg *pkg,
                      const char *platform, struct wh_buf *key)
{
    memo_key(key, platform, pkg);
    uint64_t h = fnv(key->data, key->len);
    struct memo_entry *e = mm->slots[h % mm->nslots];
    while (e && (e->hash != h || e->keylen != key->len || memcmp(e->key, key->data, key->len) != 0))
        e = e->next;
    if (!e) {
        size_t before = m->out->n;
        int error = match_pkg(m, pkg, platform);
        if (error < 0)
            return error;
        e = wh_calloc(1, sizeof(*e));
        e->hash = h;
        e->keylen = key->len;
        char *k = wh_pool_alloc(mm->pool, key->len);
        memcpy(k, key->data, key->len);
        e->key = k;
        e->n = m->out->n - before;
        e->items = wh_calloc(e->n ? e->n : 1, sizeof(*e->items));
        for (size_t i = 0; i < e->n; i++) {
            struct wh_finding f = m->out->items[before + i];
            f.pkg = NULL;
            f.id = keep(mm->pool, f.id);
            f.aliases = keep(mm->pool, f.aliases);
            f.fixed = keep(mm->pool, f.fixed);
            f.status = keep(mm->pool, f.status);
            f.cvss_vector = keep(mm->pool, f.cvss_vector);
            f.cvss_source = keep(mm->pool, f.cvss_source);
            f.title = keep(mm->pool, f.title);
            f.description = keep(mm->pool, f.description);
            f.links = keep(mm->pool, f.links);
            f.cwes = keep(mm->pool, f.cwes);
            f.source = keep(mm->pool, f.source);
            f.pkg = pkg; /* for the item text only: the name and versions are in the key */
            char *t = wh_report_item_json(&f);
            f.item_json = keep(mm->pool, t);
            free(t);
            f.pkg = NULL;
            e->items[i] = f;
            m->out->items[before + i].item_json = f.item_json;
        }
        e->next = mm->slots[h % mm->nslots];
        mm->slots[h % mm->nslots] = e;
        if (++mm->n > mm->nslots)
            memo_grow(mm);
        return 0;
    }
    for (size_t i = 0; i < e->n; i++) {
        if (m->out->n == m->out->cap) {
            m->out->cap = m->out->cap ? m->out->cap * 2 : 64;
            m->out->items = wh_realloc(m->out->items, m->out->cap * sizeof(*m->out->items));
        }
        struct wh_finding f = e->items[i];
        f.pkg = pkg;
        m->out->items[m->out->n++] = f;
    }
    return 0;
}

/* wh_match and wh_match_memo: `mm` NULL looks every package up with statements of its own. */
static int match_inventory(struct wh_findings **out, wh_vulndb *db, wh_match_memo *mm,
                           const struct wh_inventory *inv)
{
    struct matcher m = {0};
    char platform[96];
    struct wh_buf key;
    int error = 0;

    wh_buf_init(&key, 1u << 20);
    m.out = wh_calloc(1, sizeof(*m.out));
    m.out->pool = wh_pool_new();
    if (mm) {
        m.db = mm->db;
        m.adv = mm->adv;
        m.vuln = mm->vuln;
        m.nvd = mm->nvd;
    } else {
        m.db = wh_vulndb_handle(db);
        if ((error = prepare(&m)) < 0)
            goto out;
    }
    os_platform(platform, sizeof(platform), &inv->os);
    for (size_t i = 0; i < inv->npkgs; i++) {
        const struct wh_pkg *p = &inv->pkgs[i];
        const char *pf = p->kind <= WH_PKG_RPM ? platform : lang_platform[p->kind];
        if (!pf || !pf[0])
            continue;
        error = mm ? memo_match(mm, &m, p, pf, &key) : match_pkg(&m, p, pf);
        if (error < 0)
            goto out;
    }
    if (m.out->n) {
        qsort(m.out->items, m.out->n, sizeof(*m.out->items), finding_cmp);
        /* One item per id-package-version (as Harbor's reports), even when two
         * databases in the image declare the same package. */
        size_t o = 1;
        for (size_t i = 1; i < m.out->n; i++) {
            const struct wh_finding *a = &m.out->items[o - 1], *b = &m.out->items[i];
            if (strcmp(a->id, b->id) == 0 && strcmp(a->pkg->name, b->pkg->name) == 0 &&
                strcmp(a->pkg->version, b->pkg->version) == 0)
                continue;
            m.out->items[o++] = *b;
        }
        m.out->n = o;
    }
    *out = m.out;
    m.out = NULL;
out:
    if (!mm) {
        sqlite3_finalize(m.adv);
        sqlite3_finalize(m.vuln);
        sqlite3_finalize(m.nvd);
    }
    wh_buf_dispose(&key);
    wh_findings_free(m.out);
    return error;
}

int wh_match(struct wh_findings **out, wh_vulndb *db, const struct wh_inventory *inv)
{
    return match_inventory(out, db, NULL, inv);
}

int wh_match_memoized(struct wh_findings **out, wh_match_memo *mm, const struct wh_inventory *inv)
{
    return match_inventory(out, NULL, mm, inv);
}

void wh_findings_filter(struct wh_findings *f, unsigned mask)
{
    size_t o = 0;
    for (size_t i = 0; i < f->n; i++)
        if (mask & (1u << f->items[i].severity))
            f->items[o++] = f->items[i];
    f->n = o;
}
