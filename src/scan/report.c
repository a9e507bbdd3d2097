/*
 * report.c: findings and inventories rendered for people and programs: the
 * generic vulnerability report (Harbor's "application/vnd.security.
 * vulnerability.report; version=1.1"), a CycloneDX 1.5 JSON SBOM with
 * package URLs (purl-spec types deb, apk, rpm, npm, pypi, golang, maven), and
 * a plain-text table.
 */
#include "scan/scan_int.h"

#include <assert.h>
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <time.h>

static void iso_now(char *out, size_t cap)
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static json_t *parse_array(const char *s)
{
    json_t *j = s ? json_loads(s, 0, NULL) : NULL;
    if (!json_is_array(j)) {
        json_decref(j);
        return json_array();
    }
    return j;
}

/* A report item without artifact_digests. New reference. */
static json_t *item(const struct wh_finding *x)
{
    json_t *cvss = json_object();
    json_object_set_new(cvss, "score_v3", x->cvss_score > 0 ? json_real(x->cvss_score) : json_null());
    json_object_set_new(cvss, "score_v2", json_null());
    json_object_set_new(cvss, "vector_v3", json_string(x->cvss_vector));
    json_object_set_new(cvss, "vector_v2", json_string(""));
    json_t *vendor = json_object();
    if (x->cvss_score > 0)
        json_object_set_new(vendor, "CVSS",
                            json_pack("{s:{s:f, s:s}}", x->cvss_source[0] ? x->cvss_source : "nvd",
                                      "V3Score", x->cvss_score, "V3Vector", x->cvss_vector));
    json_t *v = json_object();
    json_object_set_new(v, "id", json_string(x->id));
    json_object_set_new(v, "package", wh_json_text(x->pkg->name));
    json_object_set_new(v, "version", wh_json_text(x->pkg->version));
    json_object_set_new(v, "fix_version", json_string(x->fixed));
    json_object_set_new(v, "severity", json_string(wh_severity_name(x->severity)));
    json_object_set_new(v, "status", json_string(x->status));
    json_object_set_new(v, "title", json_string(x->title ? x->title : ""));
    json_object_set_new(v, "description", json_string(x->description ? x->description : ""));
    json_object_set_new(v, "links", parse_array(x->links));
    json_object_set_new(v, "aliases", parse_array(x->aliases));
    json_object_set_new(v, "source_package", wh_json_text(x->pkg->src_name));
    json_object_set_new(v, "source_version", wh_json_text(x->pkg->src_version));
    json_object_set_new(v, "preferred_cvss", cvss);
    json_object_set_new(v, "cwe_ids", parse_array(x->cwes));
    json_object_set_new(v, "vendor_attributes", vendor);
    return v;
}

/* Overall severity: Unknown has code 0, so a report with only Unknown findings is "None" (§3.1). */
static const char *overall(const struct wh_findings *f)
{
    enum wh_severity top = WH_SEV_UNKNOWN;
    for (size_t i = 0; i < f->n; i++)
        if (f->items[i].severity > top)
            top = f->items[i].severity;
    return top == WH_SEV_UNKNOWN ? "None" : wh_severity_name(top);
}

json_t *wh_report_json(const struct wh_findings *f, const char *artifact_digest)
{
    char now[32];
    json_t *vulns = json_array();
    iso_now(now, sizeof(now));
    for (size_t i = 0; i < f->n; i++) {
        json_t *digests = json_array();
        if (artifact_digest && *artifact_digest)
            json_array_append_new(digests, json_string(artifact_digest));
        json_t *v = item(&f->items[i]);
        json_object_set_new(v, "artifact_digests", digests);
        json_array_append_new(vulns, v);
    }
    return json_pack("{s:s, s:{s:s, s:s, s:s}, s:s, s:o}", "generated_at", now, "scanner", "name",
                     WH_SCANNER_NAME, "vendor", WH_SCANNER_NAME, "version", WH_SCANNER_VERSION,
                     "severity", overall(f), "vulnerabilities", vulns);
}

char *wh_report_item_json(const struct wh_finding *x)
{
    json_t *v = item(x);
    char *t = json_dumps(v, JSON_COMPACT);
    json_decref(v);
    if (!t)
        return NULL;
    size_t n = strlen(t);
    assert(n >= 2 && t[n - 1] == '}');
    t[n - 1] = '\0';
    return t;
}

char *wh_report_text(const struct wh_findings *f, const char *artifact_digest)
{
    char now[32];
    struct wh_buf b;
    iso_now(now, sizeof(now));
    json_t *dj = json_string(artifact_digest ? artifact_digest : "");
    char *dtext = json_dumps(dj, JSON_ENCODE_ANY);
    json_decref(dj);
    wh_buf_init(&b, (size_t)1 << 30);
    wh_buf_printf(&b, "{\"generated_at\":\"%s\",\"scanner\":{\"name\":\"%s\",\"vendor\":\"%s\","
                      "\"version\":\"%s\"},\"severity\":\"%s\",\"vulnerabilities\":[",
                  now, WH_SCANNER_NAME, WH_SCANNER_NAME, WH_SCANNER_VERSION, overall(f));
    for (size_t i = 0; i < f->n; i++) {
        const struct wh_finding *x = &f->items[i];
        char *own = x->item_json ? NULL : wh_report_item_json(x);
        const char *t = x->item_json ? x->item_json : own;
        if (i)
            wh_buf_puts(&b, ",");
        wh_buf_puts(&b, t ? t : "{");
        if (t && t[1] != '\0')
            wh_buf_puts(&b, ",");
        if (artifact_digest && *artifact_digest)
            wh_buf_printf(&b, "\"artifact_digests\":[%s]}", dtext);
        else
            wh_buf_puts(&b, "\"artifact_digests\":[]}");
        free(own);
    }
    wh_buf_puts(&b, "]}");
    free(dtext);
    return wh_buf_detach(&b, NULL);
}

json_t *wh_report_summary(const struct wh_findings *f)
{
    size_t counts[WH_SEV_CRITICAL + 1] = {0}, fixable = 0;
    json_t *sum = json_object();
    for (size_t i = 0; i < f->n; i++) {
        counts[f->items[i].severity]++;
        fixable += f->items[i].fixed[0] != '\0';
    }
    for (int s = WH_SEV_CRITICAL; s >= WH_SEV_UNKNOWN; s--)
        if (counts[s])
            json_object_set_new(sum, wh_severity_name((enum wh_severity)s), json_integer((json_int_t)counts[s]));
    return json_pack("{s:I, s:I, s:o}", "total", (json_int_t)f->n, "fixable", (json_int_t)fixable, "summary",
                     sum);
}

void wh_findings_fingerprint(const struct wh_findings *f, char *out, size_t cap)
{
    struct wh_buf b;
    struct wh_digest d;
    wh_buf_init(&b, (size_t)1 << 30);
    for (size_t i = 0; i < f->n; i++) {
        const struct wh_finding *x = &f->items[i];
        wh_buf_printf(&b, "%s\t%s\t%s\t%s\t%d\t%.1f\n", x->id, x->pkg->name, x->pkg->version,
                      x->fixed, (int)x->severity, x->cvss_score);
    }
    wh_digest_of(&d, WH_DIGEST_SHA256, b.data ? b.data : "", b.len);
    snprintf(out, cap, "%.32s", wh_digest_hex(&d));
    wh_buf_dispose(&b);
}

/* Percent-encodes what purl-spec reserves in a name or version. */
static void purl_enc(struct wh_buf *b, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (isalnum(*p) || *p == '.' || *p == '-' || *p == '_' || *p == '~')
            wh_buf_put(b, p, 1);
        else
            wh_buf_printf(b, "%%%02X", *p);
    }
}

const char *wh_pkg_purl(const struct wh_inventory *inv, const struct wh_pkg *p)
{
    struct wh_buf b;
    wh_buf_init(&b, 4096);
    const char *distro = inv->os.family[0] ? inv->os.family : NULL;
    switch (p->kind) {
    case WH_PKG_DPKG:
    case WH_PKG_APK:
    case WH_PKG_RPM: {
        static const char *const type[] = {"deb", "apk", "rpm"};
        wh_buf_printf(&b, "pkg:%s/%s/", type[p->kind], distro ? distro : "unknown");
        purl_enc(&b, p->name);
        wh_buf_puts(&b, "@");
        /* purl keeps the epoch as a qualifier, not in the version */
        const char *v = p->version, *colon = strchr(v, ':');
        purl_enc(&b, colon ? colon + 1 : v);
        bool q = false;
        if (p->arch) {
            wh_buf_printf(&b, "?arch=");
            purl_enc(&b, p->arch);
            q = true;
        }
        if (colon) {
            wh_buf_printf(&b, "%sepoch=%.*s", q ? "&" : "?", (int)(colon - v), v);
            q = true;
        }
        if (distro && inv->os.version[0]) {
            wh_buf_printf(&b, "%sdistro=%s-", q ? "&" : "?", distro);
            purl_enc(&b, inv->os.version);
        }
        break;
    }
    case WH_PKG_NPM:
        wh_buf_puts(&b, "pkg:npm/");
        if (p->name[0] == '@' && strchr(p->name, '/')) {
            const char *sl = strchr(p->name, '/');
            wh_buf_puts(&b, "%40");
            char *ns = wh_strndup(p->name + 1, (size_t)(sl - p->name - 1));
            purl_enc(&b, ns);
            free(ns);
            wh_buf_puts(&b, "/");
            purl_enc(&b, sl + 1);
        } else {
            purl_enc(&b, p->name);
        }
        wh_buf_puts(&b, "@");
        purl_enc(&b, p->version);
        break;
    case WH_PKG_PYPI: {
        char norm[256];
        wh_pypi_normalize(norm, sizeof(norm), p->name);
        wh_buf_puts(&b, "pkg:pypi/");
        purl_enc(&b, norm);
        wh_buf_puts(&b, "@");
        purl_enc(&b, p->version);
        break;
    }
    case WH_PKG_GO: {
        wh_buf_puts(&b, "pkg:golang/");
        /* the module path keeps its slashes as namespace separators */
        for (const char *s = p->name; *s;) {
            size_t n = strcspn(s, "/");
            char *seg = wh_strndup(s, n);
            purl_enc(&b, seg);
            free(seg);
            s += n;
            if (*s == '/') {
                wh_buf_puts(&b, "/");
                s++;
            }
        }
        wh_buf_puts(&b, "@");
        purl_enc(&b, p->version);
        break;
    }
    case WH_PKG_MAVEN: {
        const char *colon = strchr(p->name, ':');
        wh_buf_puts(&b, "pkg:maven/");
        if (colon) {
            char *g = wh_strndup(p->name, (size_t)(colon - p->name));
            purl_enc(&b, g);
            free(g);
            wh_buf_puts(&b, "/");
            purl_enc(&b, colon + 1);
        } else {
            purl_enc(&b, p->name);
        }
        wh_buf_puts(&b, "@");
        purl_enc(&b, p->version);
        break;
    }
    case WH_PKG_KIND_COUNT:
        break;
    }
    const char *r = wh_pool_strdup(inv->pool, b.data ? b.data : "");
    wh_buf_dispose(&b);
    return r;
}

json_t *wh_report_cyclonedx(const struct wh_inventory *inv, const char *target)
{
    char now[32], serial[40];
    char hex[33];
    iso_now(now, sizeof(now));
    wh_random_hex(hex, 16);
    /* RFC 4122 version 4 layout from 128 random bits */
    hex[12] = '4';
    hex[16] = "89ab"[hex[16] % 4];
    snprintf(serial, sizeof(serial), "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16,
             hex + 20);
    json_t *comps = json_array();
    if (inv->os.family[0]) {
        json_array_append_new(comps, json_pack("{s:s, s:s, s:o, s:o, s:o}", "bom-ref", "os", "type",
                                               "operating-system", "name", wh_json_text(inv->os.family),
                                               "version", wh_json_text(inv->os.version), "description",
                                               wh_json_text(inv->os.name)));
    }
    for (size_t i = 0; i < inv->npkgs; i++) {
        const struct wh_pkg *p = &inv->pkgs[i];
        const char *purl = wh_pkg_purl(inv, p);
        json_t *props = json_array();
        json_array_append_new(props, json_pack("{s:s, s:o}", "name", "wharf:package:path", "value", wh_json_text(p->path)));
        if (p->kind <= WH_PKG_RPM) {
            json_array_append_new(props, json_pack("{s:s, s:o}", "name", "wharf:package:source_name",
                                                   "value", wh_json_text(p->src_name)));
            json_array_append_new(props, json_pack("{s:s, s:o}", "name", "wharf:package:source_version",
                                                   "value", wh_json_text(p->src_version)));
        }
        json_t *c = json_pack("{s:s, s:s, s:o, s:o, s:s, s:o}", "bom-ref", purl, "type", "library",
                              "name", wh_json_text(p->name), "version", wh_json_text(p->version), "purl",
                              purl, "properties", props);
        if (p->kind == WH_PKG_MAVEN && strchr(p->name, ':')) {
            const char *colon = strchr(p->name, ':');
            json_object_set_new(c, "group", json_stringn(p->name, (size_t)(colon - p->name)));
            json_object_set_new(c, "name", wh_json_text(colon + 1));
        }
        json_array_append_new(comps, c);
    }
    return json_pack("{s:s, s:s, s:s, s:i, s:{s:s, s:{s:[{s:s, s:s, s:s}]}, s:{s:s, s:o, s:s}}, s:o}",
                     "bomFormat", "CycloneDX", "specVersion", "1.5", "serialNumber",
                     wh_pool_sprintf(inv->pool, "urn:uuid:%s", serial), "version", 1, "metadata",
                     "timestamp", now, "tools", "components", "type", "application", "name",
                     WH_SCANNER_NAME, "version", WH_SCANNER_VERSION, "component", "type", "container",
                     "name", wh_json_text(target), "bom-ref", "target", "components", comps);
}

static void cell(FILE *out, const char *s, int width)
{
    int n = (int)strlen(s);
    if (n > width)
        fprintf(out, "%.*s… ", width - 1, s);
    else
        fprintf(out, "%-*s ", width, s);
}

void wh_report_table(FILE *out, const struct wh_findings *f, const struct wh_inventory *inv)
{
    unsigned counts[WH_SEV_CRITICAL + 1] = {0};
    if (inv)
        fprintf(out, "OS: %s %s%s%s%s   packages: %zu\n\n", inv->os.family[0] ? inv->os.family : "unknown",
                inv->os.version, inv->os.codename[0] ? " (" : "", inv->os.codename,
                inv->os.codename[0] ? ")" : "", inv->npkgs);
    fprintf(out, "%-24s %-28s %-20s %-10s %-13s %-24s %s\n", "PACKAGE", "INSTALLED", "VULNERABILITY",
            "SEVERITY", "STATUS", "FIXED", "TITLE");
    for (size_t i = 0; i < f->n; i++) {
        const struct wh_finding *x = &f->items[i];
        counts[x->severity]++;
        cell(out, x->pkg->name, 24);
        cell(out, x->pkg->version, 28);
        cell(out, x->id, 20);
        cell(out, wh_severity_name(x->severity), 10);
        cell(out, x->status, 13);
        cell(out, x->fixed[0] ? x->fixed : "-", 24);
        char title[80];
        snprintf(title, sizeof(title), "%s", x->title ? x->title : "");
        for (char *c = title; *c; c++)
            if (*c == '\n' || *c == '\t')
                *c = ' ';
        fprintf(out, "%s\n", title);
    }
    fprintf(out, "\nTotal: %zu (Critical: %u, High: %u, Medium: %u, Low: %u, Negligible: %u, Unknown: %u)\n",
            f->n, counts[WH_SEV_CRITICAL], counts[WH_SEV_HIGH], counts[WH_SEV_MEDIUM], counts[WH_SEV_LOW],
            counts[WH_SEV_NEGLIGIBLE], counts[WH_SEV_UNKNOWN]);
}
