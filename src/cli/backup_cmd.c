/*
 * backup_cmd.c: `wharf backup DIR` and `wharf restore DIR`, for the
 * single-node mode (SQLite and the filesystem store), without stopping the
 * server.
 *
 * A backup is a directory: wharf.db (SQLite's online backup of the metadata,
 * one consistent snapshot), blobs/<alg>/<2 hex>/<hex> holding every blob
 * that snapshot references (hard links when the backup is on the data
 * directory's file system, verified copies otherwise), token.key (so tokens
 * issued before stay valid), vulndb.sqlite when there is one, and
 * wharf-backup.json describing it all. The blobs are copied after the
 * snapshot: a blob is stored before the metadata that references it, and a
 * stored blob never changes, so every blob of the snapshot is on disk unless
 * something deleted it meanwhile, which is reported, never skipped. The
 * backup is built in DIR.tmp-<random> next to DIR and renamed into place only
 * when whole; a failure removes it.
 *
 * A restore fills a new or empty data directory while holding its server
 * lock (data/wharf.lock), so no server can start on a half-restored
 * directory, and one running there refuses the restore. Every blob is copied
 * and checked against its digest, and wharf.db is renamed into place last:
 * until then the directory holds no registry, and a failure empties it again.
 */
#include "cli/cli.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MANIFEST_NAME "wharf-backup.json"
#define MANIFEST_FORMAT "wharf-backup"
#define MANIFEST_VERSION 1
#define MANIFEST_MAX (64 * 1024)
#define PATH_CAP 4096
#define COPY_CHUNK (1 << 20)
#define REPORT_MAX 20 /* bad blobs named one by one; the rest are counted */

/* The files besides wharf.db and the blobs that a backup carries (when present). */
static const char *const extra_files[] = {"token.key", "vulndb.sqlite"};

const char wh_cli_backup_usage[] =
    "usage: wharf backup DIR [--data-dir DATA] [--config FILE]\n"
    "\n"
    "Writes a backup of the registry in the data directory into the new directory DIR,\n"
    "while the server may keep running: a consistent snapshot of the metadata (SQLite's\n"
    "online backup), every blob it references (hard links when DIR is on the same file\n"
    "system, verified copies otherwise), the token signing key, the vulnerability\n"
    "database, and " MANIFEST_NAME " describing them. DIR must not exist or be empty; the\n"
    "backup is built in DIR.tmp-* beside it and appears under DIR only when complete.\n"
    "The configuration file is not part of the backup.\n";

const char wh_cli_restore_usage[] =
    "usage: wharf restore DIR [--data-dir DATA] [--config FILE]\n"
    "\n"
    "Restores the backup in DIR (made by `wharf backup`) into the data directory, which\n"
    "must be new or empty, and not in use by a running server. The backup's description,\n"
    "its metadata and every blob's digest are checked before the registry appears in the\n"
    "data directory; a damaged backup is refused and named. Start `wharf serve` on the\n"
    "data directory afterwards (a backup of an older schema is migrated then).\n";

/* ---------------------------------------------------------------- helpers */

/*
 * SIGINT, SIGTERM and SIGHUP end a backup or a restore between two files,
 * after the clean-up of what it made, rather than leaving half of one behind.
 */
static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
    interrupted = sig;
}

static void catch_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal; /* no SA_RESTART: a blocked read returns, the loop checks */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
}

static int check_interrupted(void)
{
    if (interrupted)
        return wh_error_set(WH_ERROR, "interrupted by signal %d", (int)interrupted);
    return 0;
}

static int bad_usage(const char *family)
{
    fprintf(stderr, "  (`wharf %s --help` shows the usage)\n", family);
    return 2;
}

/* snprintf into a PATH_CAP buffer; a path that does not fit is an error, never cut. */
static int path_fmt(char *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int path_fmt(char *out, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, PATH_CAP, fmt, ap);
    va_end(ap);
    if (n < 0 || n >= PATH_CAP)
        return wh_error_set(WH_EINVALID, "path too long");
    return 0;
}

static int io_error(const char *what, const char *path)
{
    int e = errno;
    if (e == ENOSPC || e == EDQUOT)
        return wh_error_set(WH_ENOSPC, "%s %s: no space left on the device", what, path);
    return wh_error_set(WH_ERROR, "%s %s: %s", what, path, strerror(e));
}

static int fsync_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return io_error("open", path);
    int rc = fsync(fd) == 0 ? 0 : io_error("fsync", path);
    close(fd);
    return rc;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if (flag == FTW_DP)
        rmdir(path);
    else
        unlink(path);
    return 0;
}

/* rm -r, best effort (cleaning up after a failure). */
static void remove_tree(const char *path)
{
    nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Whether `path` is a directory with nothing in it but, if given, `except`. */
static int dir_empty(bool *out, const char *path, const char *except)
{
    DIR *d = opendir(path);
    struct dirent *e;
    if (!d)
        return io_error("open", path);
    *out = true;
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (except && strcmp(e->d_name, except) == 0)
            continue;
        *out = false;
        break;
    }
    closedir(d);
    return 0;
}

static void human(char *out, size_t cap, uint64_t n)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)n;
    unsigned u = 0;
    while (v >= 1024 && u < 4) {
        v /= 1024;
        u++;
    }
    if (u == 0)
        snprintf(out, cap, "%" PRIu64 " B", n);
    else
        snprintf(out, cap, "%.1f %s", v, units[u]);
}

/*
 * Copies the regular file `src` to the new file `dst` (mode 0600), hashing
 * what it writes with `alg`, and fsyncs it: `*digest_out` and `*size_out`
 * describe the bytes copied. A failure removes `dst`. 0, WH_ENOTFOUND
 * (`src` missing), WH_ENOSPC or WH_ERROR.
 */
static int copy_file(struct wh_digest *digest_out, uint64_t *size_out, enum wh_digest_alg alg,
                     const char *src, const char *dst)
{
    int in = -1, out = -1, error = 0;
    bool made = false;
    char *buf = NULL;
    wh_hasher *h = NULL;
    uint64_t total = 0;

    in = open(src, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (in < 0) {
        error = errno == ENOENT ? wh_error_set(WH_ENOTFOUND, "%s: no such file", src)
                                : io_error("open", src);
        goto out;
    }
    struct stat st;
    if (fstat(in, &st) != 0 || !S_ISREG(st.st_mode)) {
        error = wh_error_set(WH_ERROR, "%s is not a regular file", src);
        goto out;
    }
    out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (out < 0) {
        error = io_error("create", dst);
        goto out;
    }
    made = true;
    buf = wh_malloc(COPY_CHUNK);
    h = wh_hasher_new(alg);
    for (;;) {
        if ((error = check_interrupted()) < 0)
            goto out;
        ssize_t n = read(in, buf, COPY_CHUNK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            error = io_error("read", src);
            goto out;
        }
        if (n == 0)
            break;
        wh_hasher_update(h, buf, (size_t)n);
        total += (uint64_t)n;
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(out, buf + off, (size_t)(n - off));
            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0) {
                error = io_error("write", dst);
                goto out;
            }
            off += w;
        }
    }
    if (fsync(out) != 0) {
        error = io_error("fsync", dst);
        goto out;
    }
    if (close(out) != 0) {
        out = -1;
        error = io_error("close", dst);
        goto out;
    }
    out = -1;
    wh_hasher_final(digest_out, h); /* the hasher is freed below */
    *size_out = total;
out:
    if (out >= 0)
        close(out);
    if (error < 0 && made)
        unlink(dst);
    if (in >= 0)
        close(in);
    wh_hasher_free(h);
    free(buf);
    return error;
}

/* ------------------------------------------------------------- the blobs */

/* What both commands do with the blobs of a database: link or copy, check, count. */
struct blobs {
    const char *cmd;
    const char *from; /* the root holding blobs/ to read */
    const char *to;   /* the root to fill */
    bool link;        /* try hard links first (backup); cleared at the first EXDEV */
    uint64_t count, bytes, linked, copied;
    unsigned missing, damaged; /* reported blobs: the command fails */
    int fatal;                 /* an error that stops the walk (disk full, I/O) */
    char dir[PATH_CAP];        /* the <2 hex> directory last written to, to fsync */
};

/* Names a missing or damaged blob (call after counting it). */
static void report(struct blobs *b, const char *digest, const char *detail)
{
    unsigned n = b->missing + b->damaged;
    if (n <= REPORT_MAX)
        fprintf(stderr, "%s: blob %s: %s\n", b->cmd, digest, detail);
    else if (n == REPORT_MAX + 1)
        fprintf(stderr, "%s: ... (further blobs are counted, not named)\n", b->cmd);
}

static int close_dir(struct blobs *b)
{
    int error = 0;
    if (b->dir[0])
        error = fsync_dir(b->dir);
    b->dir[0] = '\0';
    return error;
}

static int one_blob(const char *digest, uint64_t size, void *payload)
{
    struct blobs *b = payload;
    struct wh_digest d, got;
    char src[PATH_CAP], dst[PATH_CAP], dir[PATH_CAP];
    const char *alg;
    uint64_t copied = 0;
    struct stat st;
    int error;

    if ((error = check_interrupted()) < 0)
        return b->fatal = error;
    if (wh_digest_parse(&d, digest, strlen(digest)) < 0 || strcmp(d.str, digest) != 0) {
        b->damaged++;
        report(b, digest, "not a valid digest in the metadata");
        return 0;
    }
    alg = d.alg == WH_DIGEST_SHA512 ? "sha512" : "sha256";
    const char *hex = wh_digest_hex(&d);
    if ((error = path_fmt(src, "%s/blobs/%s/%.2s/%s", b->from, alg, hex, hex)) < 0 ||
        (error = path_fmt(dir, "%s/blobs/%s/%.2s", b->to, alg, hex)) < 0 ||
        (error = path_fmt(dst, "%s/%s", dir, hex)) < 0)
        return b->fatal = error;
    if (lstat(src, &st) != 0) {
        if (errno != ENOENT)
            return b->fatal = io_error("stat", src);
        b->missing++;
        report(b, digest, "missing (referenced by the metadata, but there is no file)");
        return 0;
    }
    if (!S_ISREG(st.st_mode)) {
        b->damaged++;
        report(b, digest, "damaged: not a regular file");
        return 0;
    }
    if ((uint64_t)st.st_size != size) {
        char detail[128];
        snprintf(detail, sizeof(detail), "damaged: %" PRIu64 " bytes where the metadata says %" PRIu64,
                 (uint64_t)st.st_size, size);
        b->damaged++;
        report(b, digest, detail);
        return 0;
    }
    if (strcmp(dir, b->dir) != 0) {
        if ((error = close_dir(b)) < 0)
            return b->fatal = error;
        if (wh_mkdirs(dir, 0700) < 0)
            return b->fatal = io_error("create", dir);
        snprintf(b->dir, sizeof(b->dir), "%s", dir);
    }
    if (b->link) {
        if (link(src, dst) == 0) {
            b->linked++;
            goto counted;
        }
        if (errno == EXDEV)
            b->link = false; /* another file system: copies from now on */
        else if (errno == ENOSPC || errno == EDQUOT || errno == EEXIST)
            return b->fatal = io_error("link", dst);
        /* EMLINK, EPERM (protected hard links) and the like: copy this one */
    }
    error = copy_file(&got, &copied, d.alg, src, dst);
    if (error == WH_ENOTFOUND) { /* deleted since the lstat */
        b->missing++;
        report(b, digest, "missing (deleted while it was copied)");
        return 0;
    }
    if (error < 0)
        return b->fatal = error;
    if (copied != size || strcmp(got.str, d.str) != 0) {
        unlink(dst);
        b->damaged++;
        report(b, digest,
               copied != size ? "damaged: its size changed while it was copied"
                              : "damaged: its content does not match its digest");
        return 0;
    }
    b->copied++;
counted:
    b->count++;
    b->bytes += size;
    return 0;
}

/* Links or copies every blob `db` references from b->from into b->to. 0, or <0 (printed). */
static int walk_blobs(struct blobs *b, const char *db, const char *source_name)
{
    int error = wh_db_file_blobs(db, one_blob, b);
    if (error == 0)
        error = b->fatal;
    if (error == 0)
        error = close_dir(b);
    if (error < 0) {
        fprintf(stderr, "%s: %s\n", b->cmd, wh_error_msg());
        return error;
    }
    if (b->missing || b->damaged) {
        fprintf(stderr, "%s: %u blob%s missing and %u damaged in %s\n", b->cmd, b->missing,
                b->missing == 1 ? "" : "s", b->damaged, source_name);
        return WH_EINVALID;
    }
    return 0;
}

/* fsyncs DIR/blobs/<alg> and DIR/blobs, where they exist. */
static int sync_blob_dirs(const char *root)
{
    static const char *const algs[] = {"sha256", "sha512"};
    char p[PATH_CAP];
    int error;
    for (size_t i = 0; i < 2; i++) {
        if ((error = path_fmt(p, "%s/blobs/%s", root, algs[i])) < 0)
            return error;
        if (access(p, F_OK) == 0 && (error = fsync_dir(p)) < 0)
            return error;
    }
    if ((error = path_fmt(p, "%s/blobs", root)) < 0)
        return error;
    return access(p, F_OK) == 0 ? fsync_dir(p) : 0;
}

/* ---------------------------------------------------------------- backup */

static void utc_now(char *out, size_t cap)
{
    time_t t = time(NULL);
    struct tm tm;
    if (!gmtime_r(&t, &tm) || strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(out, cap, "%lld", (long long)t);
}

/* {"name":..,"sha256":..,"bytes":..} of a file in `dir`. */
static int file_entry(json_t **out, const char *dir, const char *name)
{
    char p[PATH_CAP];
    struct wh_digest d;
    struct stat st;
    int error;
    if ((error = path_fmt(p, "%s/%s", dir, name)) < 0)
        return error;
    if ((error = wh_digest_file(&d, WH_DIGEST_SHA256, p)) < 0)
        return error;
    if (stat(p, &st) != 0)
        return io_error("stat", p);
    *out = json_pack("{s:s, s:s, s:I}", "name", name, "sha256", wh_digest_hex(&d), "bytes",
                     (json_int_t)st.st_size);
    return 0;
}

static int write_manifest(const char *tmp, const char *data_dir, int schema,
                          const struct blobs *b, json_t *files)
{
    char p[PATH_CAP], when[64];
    json_t *meta = NULL, *doc = NULL;
    char *text = NULL;
    int fd = -1, error;

    if ((error = file_entry(&meta, tmp, "wharf.db")) < 0)
        goto out;
    utc_now(when, sizeof(when));
    doc = json_pack("{s:s, s:i, s:s, s:i, s:s, s:O, s:O, s:{s:I, s:I, s:I, s:I}}", "format",
                    MANIFEST_FORMAT, "version", MANIFEST_VERSION, "created", when,
                    "schema_version", schema, "data_dir", data_dir, "metadata", meta, "files",
                    files, "blobs", "count", (json_int_t)b->count, "bytes", (json_int_t)b->bytes,
                    "linked", (json_int_t)b->linked, "copied", (json_int_t)b->copied);
    if (!doc || !(text = json_dumps(doc, JSON_INDENT(2) | JSON_SORT_KEYS))) {
        error = wh_error_set(WH_ERROR, "cannot build " MANIFEST_NAME);
        goto out;
    }
    if ((error = path_fmt(p, "%s/" MANIFEST_NAME, tmp)) < 0)
        goto out;
    fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        error = io_error("create", p);
        goto out;
    }
    size_t len = strlen(text);
    if (write(fd, text, len) != (ssize_t)len || write(fd, "\n", 1) != 1 || fsync(fd) != 0) {
        error = io_error("write", p);
        goto out;
    }
out:
    if (fd >= 0)
        close(fd);
    free(text);
    json_decref(doc);
    json_decref(meta);
    return error;
}

/* Copies the extra files that exist in the data directory; their entries go to `files`. */
static int backup_extras(const char *cmd, const char *data_dir, const char *tmp, json_t *files)
{
    char src[PATH_CAP], dst[PATH_CAP];
    int error = 0;
    for (size_t i = 0; i < sizeof(extra_files) / sizeof(extra_files[0]); i++) {
        const char *name = extra_files[i];
        struct wh_digest d;
        uint64_t n;
        int schema;
        json_t *e = NULL;
        if ((error = path_fmt(src, "%s/%s", data_dir, name)) < 0 ||
            (error = path_fmt(dst, "%s/%s", tmp, name)) < 0)
            return error;
        if (access(src, F_OK) != 0)
            continue;
        if (strstr(name, ".sqlite")) /* a live database: its own consistent snapshot */
            error = wh_db_backup_file(src, dst, false, &schema);
        else
            error = copy_file(&d, &n, WH_DIGEST_SHA256, src, dst);
        if (error == WH_ENOTFOUND)
            continue; /* removed meanwhile */
        if (error < 0 || (error = file_entry(&e, tmp, name)) < 0) {
            fprintf(stderr, "%s: %s: %s\n", cmd, name, wh_error_msg());
            return error;
        }
        json_array_append_new(files, e);
    }
    return 0;
}

static int backup(const struct wh_config *cfg, const char *dir_arg)
{
    static const char cmd[] = "wharf backup";
    char dir[PATH_CAP], tmp[PATH_CAP], src[PATH_CAP], p[PATH_CAP], rnd[17], size[32];
    struct blobs b = {.cmd = cmd, .from = cfg->data_dir, .link = true};
    json_t *files = json_array();
    struct stat st;
    bool made = false, empty = true;
    int schema = 0, rc = 1, error;
    int64_t t0 = wh_monotonic_us();

    /* DIR without trailing slashes (its DIR.tmp-* sibling is made by appending) */
    if (path_fmt(dir, "%s", dir_arg) < 0) {
        fprintf(stderr, "%s: %s: path too long\n", cmd, dir_arg);
        goto out;
    }
    for (size_t n = strlen(dir); n > 1 && dir[n - 1] == '/'; n--)
        dir[n - 1] = '\0';
    if (stat(dir, &st) == 0) {
        if (!S_ISDIR(st.st_mode) || dir_empty(&empty, dir, NULL) < 0 || !empty) {
            fprintf(stderr, "%s: %s exists and is not an empty directory: a backup goes into "
                            "a new directory\n", cmd, dir);
            goto out;
        }
    } else if (errno != ENOENT) {
        fprintf(stderr, "%s: %s: %s\n", cmd, dir, strerror(errno));
        goto out;
    }
    if (!wh_cli_data_dir_exists(cfg, cmd))
        goto out;
    if (path_fmt(src, "%s/wharf.db", cfg->data_dir) < 0 || access(src, F_OK) != 0) {
        fprintf(stderr, "%s: %s holds no registry (no wharf.db)\n", cmd, cfg->data_dir);
        goto out;
    }
    umask(077); /* a backup holds what the data directory does: password hashes, the key */
    catch_signals();
    wh_random_hex(rnd, 8);
    if (path_fmt(tmp, "%s.tmp-%s", dir, rnd) < 0 || mkdir(tmp, 0700) != 0) {
        fprintf(stderr, "%s: cannot create %s.tmp-%s: %s\n", cmd, dir, rnd, strerror(errno));
        goto out;
    }
    made = true;
    b.to = tmp;

    /* 1. the metadata, as of one commit */
    if (path_fmt(p, "%s/wharf.db", tmp) < 0 ||
        (error = wh_db_backup_file(src, p, true, &schema)) < 0) {
        fprintf(stderr, "%s: metadata: %s\n", cmd, wh_error_msg());
        goto out;
    }
    /* 2. the blobs it references (walk_blobs names what is wrong) */
    if (walk_blobs(&b, p, cfg->data_dir) < 0)
        goto out;
    if (sync_blob_dirs(tmp) < 0)
        goto fail_msg;
    /* 3. the signing key and the vulnerability database */
    if (backup_extras(cmd, cfg->data_dir, tmp, files) < 0)
        goto out;
    /* 4. the description, then the whole directory into place */
    if (check_interrupted() < 0)
        goto fail_msg;
    char *where = realpath(cfg->data_dir, NULL); /* the description names it absolutely */
    error = write_manifest(tmp, where ? where : cfg->data_dir, schema, &b, files);
    free(where);
    if (error < 0 || fsync_dir(tmp) < 0)
        goto fail_msg;
    if (rename(tmp, dir) != 0) {
        int e = errno;
        if (e == ENOTEMPTY || e == EEXIST || e == ENOTDIR) {
            /* whole, but DIR is someone else's now: the backup stays where it is */
            fprintf(stderr, "%s: %s appeared while the backup ran: the backup is left in %s\n",
                    cmd, dir, tmp);
            made = false;
        } else {
            fprintf(stderr, "%s: rename %s to %s: %s\n", cmd, tmp, dir, strerror(e));
        }
        goto out;
    }
    made = false;
    char parent[PATH_CAP];
    snprintf(parent, sizeof(parent), "%s", dir);
    char *slash = strrchr(parent, '/');
    if (!slash)
        snprintf(parent, sizeof(parent), ".");
    else if (slash == parent)
        parent[1] = '\0';
    else
        *slash = '\0';
    if (fsync_dir(parent) < 0)
        goto fail_msg;
    human(size, sizeof(size), b.bytes);
    printf("backup of %s written to %s: schema version %d, %" PRIu64 " blobs (%s; %" PRIu64
           " linked, %" PRIu64 " copied), %.1f s\n",
           cfg->data_dir, dir, schema, b.count, size, b.linked, b.copied,
           (double)(wh_monotonic_us() - t0) / 1e6);
    rc = 0;
    goto out;
fail_msg:
    fprintf(stderr, "%s: %s\n", cmd, wh_error_msg());
out:
    if (made) {
        remove_tree(tmp);
        fprintf(stderr, "%s: no backup written (%s removed)\n", cmd, tmp);
    }
    json_decref(files);
    return rc;
}

int wh_cli_backup(const struct wh_config *cfg, int argc, char **argv)
{
    static const char cmd[] = "wharf backup";
    const char *pos[2];
    static const char *const names[] = {"DIR", NULL};
    const struct wh_cli_opt opts[] = {{0}};
    if (wh_cli_parse(cmd, argc, argv, opts, pos, names, 1) < 0)
        return bad_usage("backup");
    if (strcmp(cfg->storage_driver, "filesystem") != 0) {
        /* the blobs are not in the data directory: they are the bucket's to keep */
        fprintf(stderr, "%s: the S3 driver's blobs are backed up with bucket versioning, see "
                        "docs/deploy.md (this command copies the filesystem driver's data "
                        "directory)\n", cmd);
        return 1;
    }
    return backup(cfg, pos[0]);
}

/* ---------------------------------------------------------------- restore */

/* Reads and checks DIR/wharf-backup.json. 0, or <0 with the reason printed. */
static int read_manifest(json_t **out, const char *cmd, const char *dir)
{
    char p[PATH_CAP];
    json_error_t jerr;
    json_t *doc = NULL;
    struct stat st;
    if (path_fmt(p, "%s/" MANIFEST_NAME, dir) < 0 || stat(p, &st) != 0) {
        fprintf(stderr, "%s: %s is not a wharf backup (no " MANIFEST_NAME ")\n", cmd, dir);
        return WH_EINVALID;
    }
    if (!S_ISREG(st.st_mode) || st.st_size > MANIFEST_MAX) {
        fprintf(stderr, "%s: %s: not a regular file of at most %d bytes\n", cmd, p, MANIFEST_MAX);
        return WH_EINVALID;
    }
    doc = json_load_file(p, JSON_REJECT_DUPLICATES, &jerr);
    if (!doc) {
        fprintf(stderr, "%s: %s: not valid JSON (line %d: %s)\n", cmd, p, jerr.line, jerr.text);
        return WH_EINVALID;
    }
    const char *format = json_string_value(json_object_get(doc, "format"));
    json_t *version = json_object_get(doc, "version");
    json_t *schema = json_object_get(doc, "schema_version");
    json_t *meta = json_object_get(doc, "metadata");
    json_t *files = json_object_get(doc, "files");
    json_t *blobs = json_object_get(doc, "blobs");
    if (!format || strcmp(format, MANIFEST_FORMAT) != 0 || !json_is_integer(version) ||
        !json_is_integer(schema) || !json_is_object(meta) || !json_is_array(files) ||
        !json_is_object(blobs) || !json_is_integer(json_object_get(blobs, "count")) ||
        !json_is_integer(json_object_get(blobs, "bytes")) ||
        !json_is_string(json_object_get(meta, "sha256"))) {
        fprintf(stderr, "%s: %s: not the description of a wharf backup (a field is missing)\n",
                cmd, p);
        json_decref(doc);
        return WH_EINVALID;
    }
    if (json_integer_value(version) != MANIFEST_VERSION) {
        fprintf(stderr, "%s: %s: backup format version %" JSON_INTEGER_FORMAT
                        " is not one this wharf reads (%d)\n",
                cmd, p, json_integer_value(version), MANIFEST_VERSION);
        json_decref(doc);
        return WH_EINVALID;
    }
    *out = doc;
    return 0;
}

/* Copies `name` from the backup to `dst`, checking it against its manifest entry. */
static int restore_file(const char *cmd, const char *dir, const char *name, const char *sha256,
                        const char *dst)
{
    char src[PATH_CAP];
    struct wh_digest d;
    uint64_t n;
    int error;
    if ((error = path_fmt(src, "%s/%s", dir, name)) < 0)
        return error;
    error = copy_file(&d, &n, WH_DIGEST_SHA256, src, dst);
    if (error < 0) {
        fprintf(stderr, "%s: %s: %s\n", cmd, name, wh_error_msg());
        return error;
    }
    if (!sha256 || strcmp(wh_digest_hex(&d), sha256) != 0) {
        unlink(dst);
        fprintf(stderr, "%s: %s in the backup is damaged: its content does not match "
                        MANIFEST_NAME "\n", cmd, name);
        return WH_EINVALID;
    }
    return 0;
}

/* Removes what a failed restore put into `data` (all but the lock file). */
static void unrestore(const char *data)
{
    DIR *d = opendir(data);
    struct dirent *e;
    char p[PATH_CAP];
    if (!d)
        return;
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 ||
            strcmp(e->d_name, "wharf.lock") == 0)
            continue;
        if (path_fmt(p, "%s/%s", data, e->d_name) == 0)
            remove_tree(p);
    }
    closedir(d);
}

static int restore(const struct wh_config *cfg, const char *dir)
{
    static const char cmd[] = "wharf restore";
    const char *data = cfg->data_dir;
    char p[PATH_CAP], lock_path[PATH_CAP] = "", staged[PATH_CAP], final[PATH_CAP], rnd[17];
    struct blobs b = {.cmd = cmd, .from = dir, .to = data};
    json_t *doc = NULL;
    struct stat st;
    bool created = false, touched = false, empty = true;
    int lock_fd = -1, rc = 1, schema = 0, error;
    long holder = 0;

    /* the backup first: nothing is made for a directory that is not one */
    if (stat(dir, &st) != 0) {
        fprintf(stderr, "%s: %s: %s\n", cmd, dir, strerror(errno));
        goto out;
    }
    if (!S_ISDIR(st.st_mode)) {
        fprintf(stderr, "%s: %s is not a directory\n", cmd, dir);
        goto out;
    }
    if (read_manifest(&doc, cmd, dir) < 0)
        goto out;
    int want_schema = (int)json_integer_value(json_object_get(doc, "schema_version"));
    if (want_schema > wh_db_schema_latest()) {
        fprintf(stderr, "%s: the backup's metadata is of schema version %d, newer than this wharf "
                        "knows (%d): restore it with the wharf that made it, or a newer one\n",
                cmd, want_schema, wh_db_schema_latest());
        goto out;
    }

    /* the data directory: new or empty, and ours alone while we fill it */
    umask(077);
    catch_signals();
    if (stat(data, &st) == 0) {
        if (!S_ISDIR(st.st_mode)) {
            fprintf(stderr, "%s: the data directory %s is not a directory\n", cmd, data);
            goto out;
        }
    } else if (errno == ENOENT) {
        if (wh_mkdirs(data, 0700) < 0) {
            fprintf(stderr, "%s: cannot create %s: %s\n", cmd, data, wh_error_msg());
            goto out;
        }
        created = true;
    } else {
        fprintf(stderr, "%s: %s: %s\n", cmd, data, strerror(errno));
        goto out;
    }
    if (path_fmt(lock_path, "%s/wharf.lock", data) < 0) {
        fprintf(stderr, "%s: %s: path too long\n", cmd, data);
        goto out;
    }
    error = wh_lockfile_acquire(&lock_fd, &holder, lock_path);
    if (error == WH_EBUSY) {
        char pid[48] = "";
        if (holder > 0)
            snprintf(pid, sizeof(pid), " (PID %ld)", holder);
        fprintf(stderr, "%s: the data directory %s is in use by a running wharf server%s: "
                        "restore into a new data directory\n", cmd, data, pid);
        goto out;
    }
    if (error < 0) {
        fprintf(stderr, "%s: cannot lock %s: %s\n", cmd, data, wh_error_msg());
        goto out;
    }
    if (dir_empty(&empty, data, "wharf.lock") < 0 || !empty) {
        fprintf(stderr, "%s: the data directory %s is not empty: restore only into a new or "
                        "empty data directory\n", cmd, data);
        goto out;
    }
    touched = true;

    /* the metadata: whole, undamaged, of the schema the description says */
    const char *db_sha = json_string_value(json_object_get(json_object_get(doc, "metadata"),
                                                           "sha256"));
    wh_random_hex(rnd, 8);
    if (path_fmt(staged, "%s/.wharf.db.restore-%s", data, rnd) < 0 ||
        path_fmt(final, "%s/wharf.db", data) < 0) {
        fprintf(stderr, "%s: %s: path too long\n", cmd, data);
        goto out;
    }
    if (restore_file(cmd, dir, "wharf.db", db_sha, staged) < 0)
        goto out;
    error = wh_db_file_check(staged, &schema);
    if (error < 0 || schema != want_schema) {
        fprintf(stderr, "%s: wharf.db in the backup: %s\n", cmd,
                error < 0 ? wh_error_msg() : "its schema version is not the one described");
        goto out;
    }

    /* every blob it references, copied and checked against its digest */
    if (walk_blobs(&b, staged, dir) < 0)
        goto out;
    if ((json_int_t)b.count != json_integer_value(json_object_get(json_object_get(doc, "blobs"),
                                                                  "count")) ||
        (json_int_t)b.bytes != json_integer_value(json_object_get(json_object_get(doc, "blobs"),
                                                                  "bytes"))) {
        fprintf(stderr, "%s: the backup's metadata references %" PRIu64 " blobs (%" PRIu64
                        " bytes), not what " MANIFEST_NAME " describes\n",
                cmd, b.count, b.bytes);
        goto out;
    }
    if (sync_blob_dirs(data) < 0) {
        fprintf(stderr, "%s: %s\n", cmd, wh_error_msg());
        goto out;
    }

    /* the other files it carries: only those a backup may hold */
    size_t i;
    json_t *f;
    json_array_foreach(json_object_get(doc, "files"), i, f) {
        const char *name = json_string_value(json_object_get(f, "name"));
        const char *sha = json_string_value(json_object_get(f, "sha256"));
        bool known = false;
        for (size_t k = 0; name && k < sizeof(extra_files) / sizeof(extra_files[0]); k++)
            known = known || strcmp(name, extra_files[k]) == 0;
        if (!known) {
            fprintf(stderr, "%s: " MANIFEST_NAME " lists a file a backup does not hold: %s\n",
                    cmd, name ? name : "(no name)");
            goto out;
        }
        if (path_fmt(p, "%s/%s", data, name) < 0 || restore_file(cmd, dir, name, sha, p) < 0)
            goto out;
    }

    /* published: wharf.db appears last, whole */
    if (check_interrupted() < 0) {
        fprintf(stderr, "%s: %s\n", cmd, wh_error_msg());
        goto out;
    }
    if (rename(staged, final) != 0) {
        fprintf(stderr, "%s: rename %s: %s\n", cmd, final, strerror(errno));
        goto out;
    }
    if (fsync_dir(data) < 0) {
        fprintf(stderr, "%s: %s\n", cmd, wh_error_msg());
        goto out;
    }
    char size[32];
    human(size, sizeof(size), b.bytes);
    printf("backup %s restored into %s: schema version %d, %" PRIu64 " blobs (%s) checked\n", dir,
           data, schema, b.count, size);
    rc = 0;
out:
    if (rc != 0 && touched) {
        unrestore(data);
        fprintf(stderr, "%s: nothing restored (%s is empty again)\n", cmd, data);
    }
    if (rc != 0 && created) {
        if (lock_path[0])
            unlink(lock_path);
        rmdir(data);
    }
    wh_lockfile_release(lock_fd);
    json_decref(doc);
    return rc;
}

int wh_cli_restore(const struct wh_config *cfg, int argc, char **argv)
{
    static const char cmd[] = "wharf restore";
    const char *pos[2];
    static const char *const names[] = {"DIR", NULL};
    const struct wh_cli_opt opts[] = {{0}};
    if (wh_cli_parse(cmd, argc, argv, opts, pos, names, 1) < 0)
        return bad_usage("restore");
    if (strcmp(cfg->storage_driver, "filesystem") != 0) {
        fprintf(stderr, "%s: the S3 driver's blobs are restored from the bucket's versions, see "
                        "docs/deploy.md (this command fills a filesystem driver's data "
                        "directory)\n", cmd);
        return 1;
    }
    return restore(cfg, pos[0]);
}
