/*
 * listfill.c: fills a wharf data directory for the list benchmark
 * (bench/lists.py) through the db layer, as pushes would record it, without
 * a server and without HTTP: projects `bench000`… (public), repositories
 * `benchNNN/appNNNN` spread evenly over them, and the artifacts spread evenly
 * over the repositories. Each run of ten artifacts of a repository is seven
 * tagged images, two untagged images and the tagged index listing those two
 * (so the lists' base filter has children to leave out).
 *
 * Every artifact is a real manifest (its digest is of its bytes) over a
 * config of its own and one layer. The blobs of one repository, the first of
 * the middle project (printed as `measured-repository`), are written to the
 * blob store and linked as a push links them: that is the repository whose
 * artifact list the benchmark reads, and the REST API reads each listed
 * manifest and image config from the store. The other repositories have
 * their database rows only, which is all their lists and counts read.
 *
 * usage: listfill DATA_DIR [ARTIFACTS [REPOSITORIES [PROJECTS]]]
 *        (defaults 200000 2000 20; DATA_DIR must not hold a database yet)
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "common/common.h"
#include "db/db.h"
#include "storage/storage.h"

#define MT_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define MT_INDEX "application/vnd.oci.image.index.v1+json"
#define MT_CONFIG "application/vnd.oci.image.config.v1+json"
#define MT_LAYER "application/vnd.oci.image.layer.v1.tar+gzip"
#define DOC_MAX 2048 /* a generated manifest or config */

struct doc {
    char text[DOC_MAX];
    size_t len;
    struct wh_digest d;
};

static void doc_set(struct doc *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void doc_set(struct doc *o, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(o->text, sizeof(o->text), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(o->text)) {
        fprintf(stderr, "listfill: generated document too long\n");
        exit(1);
    }
    o->len = (size_t)n;
    wh_digest_of(&o->d, WH_DIGEST_SHA256, o->text, o->len);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long arg(int argc, char **argv, int i, long dflt)
{
    if (argc <= i)
        return dflt;
    char *end;
    long v = strtol(argv[i], &end, 10);
    if (*end || v < 1) {
        fprintf(stderr, "listfill: bad number %s\n", argv[i]);
        exit(2);
    }
    return v;
}

/* Stores `o` and links it into `repo`, as an upload does (the measured repository only). */
static int store_blob(wh_db *db, wh_store *st, int64_t pid, const char *repo, const struct doc *o)
{
    int error = wh_store_put_bytes(st, &o->d, o->text, o->len);
    return error < 0 ? error : wh_db_blob_link(db, pid, repo, o->d.str, o->len);
}

/* The fill's state. */
struct fill {
    wh_store *st;
    long n_art, n_repo, n_proj;
    int64_t *pids;  /* project ids */
    long measured;  /* the repository whose blobs are stored */
    char measured_name[WH_NAME_MAX];
    double t0;
    long project;   /* being filled */
    long done;      /* artifacts recorded */
    /* the repository being filled */
    int64_t pid;
    const char *repo;
    long count;     /* its artifacts */
    bool real;      /* the measured one: blobs stored and linked */
    struct doc cfg, layer, man;
};

/* Records one repository's artifacts (run in one transaction by wh_db_batch). */
static int fill_repo(wh_db *db, void *payload)
{
    struct fill *f = payload;
    struct wh_digest kids[2];
    size_t kid_len[2] = {0, 0};
    int error;
    for (long k = 0; k < f->count; k++) {
        long n = f->done + k, slot = k % 10;
        char tag[32];
        const char *blobs[2], *children[2];
        struct wh_artifact_in a = {.repo = f->repo, .project_id = f->pid};
        snprintf(tag, sizeof(tag), "v%ld", k);
        if (slot == 9) {
            /* an index over the two untagged images before it */
            doc_set(&f->man,
                    "{\"schemaVersion\":2,\"mediaType\":\"" MT_INDEX "\",\"manifests\":["
                    "{\"mediaType\":\"" MT_MANIFEST "\",\"digest\":\"%s\",\"size\":%zu,"
                    "\"platform\":{\"architecture\":\"amd64\",\"os\":\"linux\"}},"
                    "{\"mediaType\":\"" MT_MANIFEST "\",\"digest\":\"%s\",\"size\":%zu,"
                    "\"platform\":{\"architecture\":\"arm64\",\"os\":\"linux\"}}]}",
                    kids[0].str, kid_len[0], kids[1].str, kid_len[1]);
            children[0] = kids[0].str;
            children[1] = kids[1].str;
            a.media_type = MT_INDEX;
            a.children = children;
            a.nchildren = 2;
            a.tag = tag;
        } else {
            doc_set(&f->cfg,
                    "{\"architecture\":\"%s\",\"os\":\"linux\","
                    "\"created\":\"2026-01-01T00:00:00Z\","
                    "\"config\":{\"Env\":[\"ARTIFACT=%ld\"]},\"rootfs\":{\"type\":\"layers\","
                    "\"diff_ids\":[\"sha256:%064ld\"]}}",
                    slot == 8 ? "arm64" : "amd64", n, n);
            doc_set(&f->layer, "layer %ld", n);
            doc_set(&f->man,
                    "{\"schemaVersion\":2,\"mediaType\":\"" MT_MANIFEST "\",\"config\":{"
                    "\"mediaType\":\"" MT_CONFIG "\",\"digest\":\"%s\",\"size\":%zu},\"layers\":[{"
                    "\"mediaType\":\"" MT_LAYER "\",\"digest\":\"%s\",\"size\":%zu}]}",
                    f->cfg.d.str, f->cfg.len, f->layer.d.str, f->layer.len);
            if (slot >= 7) {
                kids[slot - 7] = f->man.d;
                kid_len[slot - 7] = f->man.len;
            }
            a.media_type = MT_MANIFEST;
            a.artifact_type = MT_CONFIG;
            a.tag = slot < 7 ? tag : NULL;
            if (f->real) {
                if ((error = store_blob(db, f->st, f->pid, f->repo, &f->cfg)) < 0 ||
                    (error = store_blob(db, f->st, f->pid, f->repo, &f->layer)) < 0)
                    return error;
                blobs[0] = f->cfg.d.str;
                blobs[1] = f->layer.d.str;
                a.blobs = blobs;
                a.nblobs = 2;
            }
        }
        a.digest = f->man.d.str;
        a.size = f->man.len;
        if (f->real && (error = store_blob(db, f->st, f->pid, f->repo, &f->man)) < 0)
            return error;
        if ((error = wh_db_manifest_put(db, &a)) < 0)
            return error;
    }
    return 0;
}

/* Records the repositories of project f->project (in one transaction, by wh_db_batch). */
static int fill_project(wh_db *db, void *payload)
{
    struct fill *f = payload;
    long per = f->n_repo / f->n_proj;
    long from = f->project * per, to = f->project == f->n_proj - 1 ? f->n_repo : from + per;
    int error;
    for (long r = from; r < to; r++) {
        char repo[WH_NAME_MAX];
        snprintf(repo, sizeof(repo), "bench%03ld/app%04ld", f->project, r);
        f->pid = f->pids[f->project];
        f->repo = repo;
        f->real = r == f->measured;
        if (f->real)
            snprintf(f->measured_name, sizeof(f->measured_name), "%s", repo);
        /* this repository's share: the remainder goes to the first ones */
        f->count = f->n_art / f->n_repo + (r < f->n_art % f->n_repo ? 1 : 0);
        if ((error = fill_repo(db, f)) < 0) {
            char msg[512];
            snprintf(msg, sizeof(msg), "%s", wh_error_msg());
            return wh_error_set(error, "%s: %s", repo, msg);
        }
        f->done += f->count;
    }
    fprintf(stderr, "listfill: %ld repositories, %ld artifacts, %.1f s\n", to, f->done,
            now_s() - f->t0);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 5) {
        fprintf(stderr, "usage: listfill DATA_DIR [ARTIFACTS [REPOSITORIES [PROJECTS]]]\n");
        return 2;
    }
    const char *dir = argv[1];
    long n_art = arg(argc, argv, 2, 200000), n_repo = arg(argc, argv, 3, 2000);
    long n_proj = arg(argc, argv, 4, 20);
    if (n_repo < n_proj || n_art < n_repo) {
        fprintf(stderr, "listfill: need ARTIFACTS >= REPOSITORIES >= PROJECTS\n");
        return 2;
    }
    char path[4096];
    snprintf(path, sizeof(path), "%s/wharf.db", dir);
    struct stat sb;
    if (stat(path, &sb) == 0) {
        fprintf(stderr, "listfill: %s exists already\n", path);
        return 2;
    }
    if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
        fprintf(stderr, "listfill: mkdir %s: %s\n", dir, strerror(errno));
        return 1;
    }
    wh_db *db = NULL;
    wh_store *st = NULL;
    if (wh_db_open(&db, path) < 0 || wh_store_open_fs(&st, dir) < 0) {
        fprintf(stderr, "listfill: %s\n", wh_error_msg());
        return 1;
    }

    double t0 = now_s();
    int64_t *pids = wh_malloc((size_t)n_proj * sizeof(*pids));
    struct wh_project_info *pi = wh_malloc(sizeof(*pi));
    for (long p = 0; p < n_proj; p++) {
        memset(pi, 0, sizeof(*pi));
        snprintf(pi->p.name, sizeof(pi->p.name), "bench%03ld", p);
        pi->p.public = true;
        pi->storage_limit = -1;
        if (wh_db_project_insert(db, pi, &pids[p]) < 0) {
            fprintf(stderr, "listfill: %s\n", wh_error_msg());
            return 1;
        }
    }
    free(pi);

    long measured = (n_proj / 2) * (n_repo / n_proj); /* first repository of the middle project */
    struct fill *f = wh_calloc(1, sizeof(*f));
    f->st = st;
    f->n_art = n_art;
    f->n_repo = n_repo;
    f->n_proj = n_proj;
    f->pids = pids;
    f->measured = measured;
    f->t0 = t0;
    /* one transaction per project: commits and checkpoints are what a fill waits on */
    for (long p = 0; p < n_proj; p++) {
        f->project = p;
        if (wh_db_batch(db, fill_project, f) < 0) {
            fprintf(stderr, "listfill: %s\n", wh_error_msg());
            return 1;
        }
    }
    printf("projects %ld\nrepositories %ld\nartifacts %ld\nfill-seconds %.1f\n"
           "measured-project bench%03ld\nmeasured-repository %s\n",
           n_proj, n_repo, f->done, now_s() - t0, n_proj / 2, f->measured_name);
    free(f);
    free(pids);
    wh_store_free(st);
    wh_db_close(db);
    return 0;
}
