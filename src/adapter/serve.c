/*
 * serve.c: wharf as a scanner of the pluggable scanner API (see adapter.h).
 * A table of at most WH_ADAPTER_JOBS_MAX scan requests, each running on a
 * thread of its own while at most `max_concurrent` run; a finished one keeps
 * its report (or its failure) for WH_ADAPTER_KEEP_S, or until its slot is
 * needed by a newer request. Nothing is written but a scratch directory per
 * scan under <data_dir>/adapter-scratch, removed when the scan ends.
 */
#include "adapter/adapter.h"

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fetch/fetch.h"
#include "scan/scan.h"

#define REFRESH_S 1 /* Refresh-After while a scan runs */

enum state { FREE = 0, RUNNING, DONE, FAILED };

struct job {
    enum state state;
    char id[WH_ADAPTER_ID_MAX];
    int64_t end_ms;
    char *result;  /* DONE: the report; FAILED: the message */
    /* the request, RUNNING only */
    char *registry_url, *authorization, *repository, *digest, *mime_type, *tag;
    bool insecure;
};

struct wh_adapter {
    struct wh_adapter_config cfg;
    char *token, *data_dir, *scratch, *vulndb_path, *cache_dir;
    pthread_mutex_t lock;
    pthread_cond_t idle;
    unsigned running;
    int stop;
    struct job jobs[WH_ADAPTER_JOBS_MAX];
};

static void job_clear(struct job *j)
{
    free(j->result);
    free(j->registry_url);
    if (j->authorization)
        memset(j->authorization, 0, strlen(j->authorization));
    free(j->authorization);
    free(j->repository);
    free(j->digest);
    free(j->mime_type);
    free(j->tag);
    memset(j, 0, sizeof(*j));
}

static void remove_tree(const char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            char *p = wh_sprintf("%s/%s", dir, e->d_name);
            if (e->d_type == DT_DIR)
                remove_tree(p);
            else
                unlink(p);
            free(p);
        }
        closedir(d);
    }
    rmdir(dir);
}

int wh_adapter_new(wh_adapter **out, const struct wh_adapter_config *cfg)
{
    wh_adapter *a = wh_calloc(1, sizeof(*a));
    a->cfg = *cfg;
    a->token = wh_strdup(cfg->token ? cfg->token : "");
    a->data_dir = wh_strdup(cfg->data_dir);
    a->scratch = wh_sprintf("%s/adapter-scratch", cfg->data_dir);
    a->vulndb_path = wh_sprintf("%s/vulndb.sqlite", cfg->data_dir);
    a->cache_dir = wh_sprintf("%s/scan-cache", cfg->data_dir);
    if (a->cfg.max_concurrent == 0)
        a->cfg.max_concurrent = 1;
    if (a->cfg.timeout_s == 0)
        a->cfg.timeout_s = 600;
    a->cfg.token = a->token;
    a->cfg.data_dir = a->data_dir;
    pthread_mutex_init(&a->lock, NULL);
    pthread_cond_init(&a->idle, NULL);
    remove_tree(a->scratch); /* what a stopped server left */
    *out = a;
    return 0;
}

void wh_adapter_free(wh_adapter *a)
{
    if (!a)
        return;
    pthread_mutex_lock(&a->lock);
    __atomic_store_n(&a->stop, 1, __ATOMIC_RELAXED);
    while (a->running > 0)
        pthread_cond_wait(&a->idle, &a->lock);
    pthread_mutex_unlock(&a->lock);
    for (size_t i = 0; i < WH_ADAPTER_JOBS_MAX; i++)
        job_clear(&a->jobs[i]);
    pthread_cond_destroy(&a->idle);
    pthread_mutex_destroy(&a->lock);
    if (a->token)
        memset(a->token, 0, strlen(a->token));
    free(a->token);
    free(a->data_dir);
    free(a->scratch);
    free(a->vulndb_path);
    free(a->cache_dir);
    free(a);
}

bool wh_adapter_enabled(const wh_adapter *a)
{
    return a && a->cfg.enabled;
}

static bool same_secret(const char *got, const char *want)
{
    return got && *want && wh_auth_consttime_eq(got, strlen(got), want, strlen(want));
}

bool wh_adapter_authorized(const wh_adapter *a, const char *authorization, const char *api_key)
{
    if (!a->token[0])
        return false; /* no token configured: nobody is */
    if (authorization && strncasecmp(authorization, "Bearer ", 7) == 0 &&
        same_secret(authorization + 7, a->token))
        return true;
    return same_secret(api_key, a->token);
}

/* The vulnerability database's update time (file modification), ISO 8601. */
static void db_updated_at(const wh_adapter *a, char *out, size_t cap)
{
    struct stat st;
    struct tm tm;
    if (stat(a->vulndb_path, &st) < 0 || !gmtime_r(&st.st_mtime, &tm)) {
        snprintf(out, cap, "%s", "");
        return;
    }
    strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

json_t *wh_adapter_metadata(wh_adapter *a)
{
    char updated[32];
    db_updated_at(a, updated, sizeof(updated));
    json_t *props = json_pack("{s:s, s:s}", "harbor.scanner-adapter/scanner-type",
                              "os-package-vulnerability",
                              "harbor.scanner-adapter/registry-authorization-type", "Bearer");
    if (updated[0])
        json_object_set_new(props, "harbor.scanner-adapter/vulnerability-database-updated-at",
                            json_string(updated));
    json_t *cap = json_pack("{s:s, s:[s,s], s:[s,s]}", "type", "vulnerability",
                            "consumes_mime_types", WH_ADAPTER_MIME_OCI_MANIFEST,
                            WH_ADAPTER_MIME_DOCKER_MANIFEST, "produces_mime_types",
                            WH_ADAPTER_MIME_REPORT_NATIVE, WH_REPORT_MIME);
    return json_pack("{s:{s:s, s:s, s:s}, s:[o], s:o}", "scanner", "name", WH_SCANNER_NAME,
                     "vendor", WH_SCANNER_NAME, "version", WH_SCANNER_VERSION, "capabilities",
                     cap, "properties", props);
}

/* ---- one scan ---- */

static int open_blob(void **handle, void *payload, const struct wh_digest *d)
{
    const char *dir = payload;
    char *p = wh_sprintf("%s/%s", dir, wh_digest_hex(d));
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    free(p);
    if (fd < 0)
        return wh_error_set(WH_ENOTFOUND, "blob %s was not pulled", wh_digest_hex(d));
    *handle = wh_blob_file_handle(fd);
    return 0;
}

/* Pulls and scans the job's image: 0 with the report text, or an error with a message. */
static int scan(wh_adapter *a, const struct job *j, char **report)
{
    struct wh_inventory *inv = NULL;
    struct wh_findings *findings = NULL;
    wh_vulndb *vdb = NULL;
    json_t *rep = NULL;
    char *dir = wh_sprintf("%s/%s", a->scratch, j->id);
    int error;

    if (wh_mkdirs(dir, 0700) < 0) {
        error = wh_error_set(WH_ERROR, "cannot create a scratch directory");
        goto out;
    }
    struct wh_adapter_pull p = {.registry_url = j->registry_url,
                                .authorization = j->authorization,
                                .repository = j->repository,
                                .digest = j->digest,
                                .dir = dir,
                                .insecure = j->insecure,
                                .max_bytes = a->cfg.max_image_bytes,
                                .timeout_s = a->cfg.timeout_s,
                                .cancel = &a->stop};
    if ((error = wh_adapter_pull(&p)) < 0)
        goto out;
    struct wh_blob_source src = {open_blob, wh_blob_file_read, wh_blob_file_close, dir};
    struct wh_scan_opts opts = {.cache_dir = a->cache_dir, .threads = 1};
    if ((error = wh_vulndb_open(&vdb, a->vulndb_path)) < 0) {
        wh_log_warn("scanner adapter: %s", wh_error_msg());
        error = wh_error_set(WH_EINVALID, "the scanner has no usable vulnerability database");
        goto out;
    }
    if ((error = wh_scan_image(&inv, &src, j->digest, &opts)) < 0)
        goto out;
    if ((error = wh_match(&findings, vdb, inv)) < 0)
        goto out;
    rep = wh_report_json(findings, j->digest);
    json_object_set_new(rep, "artifact",
                        json_pack("{s:s, s:s, s:s}", "repository", j->repository, "digest",
                                  j->digest, "mime_type", j->mime_type));
    *report = json_dumps(rep, JSON_COMPACT);
    if (!*report)
        error = wh_error_set(WH_ERROR, "json encoding failed");
    wh_log_info("scanner adapter: scan %s of %s@%s: %zu packages, %zu findings", j->id,
                j->repository, j->digest, inv->npkgs, findings->n);
out:
    json_decref(rep);
    wh_findings_free(findings);
    wh_inventory_free(inv);
    wh_vulndb_close(vdb);
    remove_tree(dir);
    free(dir);
    return error;
}

struct task {
    wh_adapter *a;
    struct job *j;
};

static void *task_run(void *arg)
{
    struct task *t = arg;
    wh_adapter *a = t->a;
    struct job *j = t->j;
    char *report = NULL;
    free(t);
    wh_error_clear();
    int error = scan(a, j, &report);
    pthread_mutex_lock(&a->lock);
    if (error < 0) {
        /* the requester reads this: an internal failure's details stay in the log */
        wh_log_warn("scanner adapter: scan %s of %s@%s failed: %s", j->id, j->repository,
                    j->digest, wh_error_msg());
        j->result = wh_strdup(error == WH_ERROR && !strstr(wh_error_msg(), "://")
                                  ? "internal error of the scanner (its log has the details)"
                                  : wh_error_msg());
        j->state = FAILED;
    } else {
        j->result = report;
        j->state = DONE;
    }
    j->end_ms = wh_now_ms();
    if (j->authorization)
        memset(j->authorization, 0, strlen(j->authorization));
    a->running--;
    pthread_cond_broadcast(&a->idle);
    pthread_mutex_unlock(&a->lock);
    return NULL;
}

/* A required string field of the request (into the heap), or NULL with a message. */
static char *field(const json_t *req, const char *obj, const char *key, size_t max, bool required,
                   int *error)
{
    json_t *v = json_object_get(json_object_get(req, obj), key);
    const char *s = json_string_value(v);
    if ((!s || !*s) && required) {
        *error = wh_error_set(WH_EINVALID, "%s.%s is required", obj, key);
        return NULL;
    }
    if (v && !json_is_string(v)) {
        *error = wh_error_set(WH_EINVALID, "%s.%s must be a string", obj, key);
        return NULL;
    }
    if (s && strlen(s) > max) {
        *error = wh_error_set(WH_EINVALID, "%s.%s is longer than %zu bytes", obj, key, max);
        return NULL;
    }
    if (s && strpbrk(s, "\r\n")) {
        *error = wh_error_set(WH_EINVALID, "%s.%s holds a line break", obj, key);
        return NULL;
    }
    return s ? wh_strdup(s) : NULL;
}

/* A slot for a new request: a free one, else the oldest finished (or expired) one. */
static struct job *slot(wh_adapter *a, int64_t now)
{
    struct job *oldest = NULL;
    for (size_t i = 0; i < WH_ADAPTER_JOBS_MAX; i++) {
        struct job *j = &a->jobs[i];
        if (j->state == FREE)
            return j;
        if (j->state != RUNNING && (!oldest || j->end_ms < oldest->end_ms))
            oldest = j;
    }
    (void)now;
    if (oldest)
        job_clear(oldest);
    return oldest;
}

int wh_adapter_submit(wh_adapter *a, const json_t *request, char *id_out)
{
    struct job n = {0};
    int error = 0;
    if (!json_is_object(request))
        return wh_error_set(WH_EINVALID, "the scan request must be a JSON object");
    n.registry_url = field(request, "registry", "url", 1000, true, &error);
    if (!error)
        n.authorization = field(request, "registry", "authorization", 16384, false, &error);
    if (!error)
        n.repository = field(request, "artifact", "repository", WH_NAME_MAX - 1, true, &error);
    if (!error)
        n.digest = field(request, "artifact", "digest", WH_DIGEST_STR_MAX - 1, true, &error);
    if (!error)
        n.mime_type = field(request, "artifact", "mime_type", WH_MEDIATYPE_MAX - 1, true, &error);
    if (!error)
        n.tag = field(request, "artifact", "tag", 256, false, &error);
    struct wh_digest d;
    if (!error && !wh_fetch_url_ok(n.registry_url))
        error = wh_error_set(WH_EINVALID, "registry.url must be an http:// or https:// URL");
    if (!error && wh_digest_parse(&d, n.digest, strlen(n.digest)) < 0)
        error = wh_error_set(WH_EINVALID, "artifact.digest is not a digest");
    if (!error && strcmp(n.mime_type, WH_ADAPTER_MIME_OCI_MANIFEST) != 0 &&
        strcmp(n.mime_type, WH_ADAPTER_MIME_DOCKER_MANIFEST) != 0)
        error = wh_error_set(WH_EINVALID, "artifact.mime_type %s is not supported: this scanner "
                                          "consumes image manifests",
                             n.mime_type);
    if (!error) {
        for (const char *p = n.repository; *p; p++)
            if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '.' ||
                  *p == '_' || *p == '-' || *p == '/')) {
                error = wh_error_set(WH_EINVALID, "artifact.repository is not a repository name");
                break;
            }
    }
    n.insecure = json_is_true(json_object_get(json_object_get(request, "registry"), "insecure"));
    if (error < 0) {
        job_clear(&n);
        return error;
    }
    pthread_mutex_lock(&a->lock);
    struct job *j = NULL;
    if (a->running >= a->cfg.max_concurrent) {
        error = wh_error_set(WH_EBUSY, "%u scans are running, the most this scanner runs at once "
                                       "(scan.adapter.max_concurrent)",
                             a->running);
    } else if (!(j = slot(a, wh_now_ms()))) {
        error = wh_error_set(WH_EBUSY, "every scan slot is taken");
    }
    if (error < 0 || !j) {
        pthread_mutex_unlock(&a->lock);
        job_clear(&n);
        return error < 0 ? error : WH_ERROR;
    }
    *j = n;
    wh_random_hex(j->id, 16);
    j->state = RUNNING;
    struct task *t = wh_malloc(sizeof(*t));
    t->a = a;
    t->j = j;
    pthread_t th;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&th, &attr, task_run, t) != 0) {
        free(t);
        job_clear(j);
        error = wh_error_set(WH_ERROR, "cannot start a scan thread");
    } else {
        a->running++;
        snprintf(id_out, WH_ADAPTER_ID_MAX, "%s", j->id);
    }
    pthread_attr_destroy(&attr);
    pthread_mutex_unlock(&a->lock);
    return error;
}

int wh_adapter_report(wh_adapter *a, const char *id, char **out, unsigned *refresh_s)
{
    int error = wh_error_set(WH_ENOTFOUND, "scan request %.64s not found", id);
    int64_t now = wh_now_ms();
    *out = NULL;
    pthread_mutex_lock(&a->lock);
    for (size_t i = 0; i < WH_ADAPTER_JOBS_MAX; i++) {
        struct job *j = &a->jobs[i];
        if (j->state == FREE || strcmp(j->id, id) != 0)
            continue;
        if (j->state == RUNNING) {
            *refresh_s = REFRESH_S;
            error = WH_EDEFERRED;
        } else if (now - j->end_ms > (int64_t)WH_ADAPTER_KEEP_S * 1000) {
            job_clear(j);
        } else if (j->state == DONE) {
            *out = wh_strdup(j->result);
            error = 0;
        } else {
            error = wh_error_set(WH_EINVALID, "%s", j->result);
        }
        break;
    }
    pthread_mutex_unlock(&a->lock);
    return error;
}
