/*
 * db_vfs.c: a pass-through SQLite VFS ("wharf") over the default one, with
 * the failpoint "db.write" (common.h) in front of every write of the
 * database, its WAL and journals. It lets the tests make SQLite's own writes
 * fail as a full or broken disk would: ENOSPC and EDQUOT become SQLITE_FULL
 * (what the unix VFS answers for them), other errnos SQLITE_IOERR_WRITE.
 * Unarmed, a call costs one extra indirection. Everything else is the
 * default VFS's own code.
 */
#include "db/db_int.h"

#include <sqlite3.h>

#include <errno.h>
#include <pthread.h>
#include <string.h>

#ifndef WH_NO_FAILPOINTS

/* A file of ours: the default VFS's file follows it in the same allocation. */
struct fp_file {
    sqlite3_file base;  /* pMethods: fp_methods once the real file is open */
    sqlite3_file *real; /* the default VFS's file */
};

static sqlite3_vfs fp_vfs;
static sqlite3_vfs *real_vfs;
static pthread_once_t fp_once = PTHREAD_ONCE_INIT;
static int fp_registered; /* SQLITE_OK once registered */

static sqlite3_file *real_of(sqlite3_file *f)
{
    return ((struct fp_file *)f)->real;
}

/* The SQLite code a fired failpoint stands for, or SQLITE_OK. */
static int fault(const char *name, int ioerr)
{
    int a = wh_failpoint(name);
    if (a == ENOSPC || a == EDQUOT)
        return SQLITE_FULL;
    return a > 0 ? ioerr : SQLITE_OK;
}

static int fp_close(sqlite3_file *f)
{
    return real_of(f)->pMethods->xClose(real_of(f));
}

static int fp_read(sqlite3_file *f, void *p, int n, sqlite3_int64 off)
{
    return real_of(f)->pMethods->xRead(real_of(f), p, n, off);
}

static int fp_write(sqlite3_file *f, const void *p, int n, sqlite3_int64 off)
{
    int rc = fault("db.write", SQLITE_IOERR_WRITE);
    return rc != SQLITE_OK ? rc : real_of(f)->pMethods->xWrite(real_of(f), p, n, off);
}

static int fp_truncate(sqlite3_file *f, sqlite3_int64 size)
{
    return real_of(f)->pMethods->xTruncate(real_of(f), size);
}

static int fp_sync(sqlite3_file *f, int flags)
{
    return real_of(f)->pMethods->xSync(real_of(f), flags);
}

static int fp_file_size(sqlite3_file *f, sqlite3_int64 *out)
{
    return real_of(f)->pMethods->xFileSize(real_of(f), out);
}

static int fp_lock(sqlite3_file *f, int level)
{
    return real_of(f)->pMethods->xLock(real_of(f), level);
}

static int fp_unlock(sqlite3_file *f, int level)
{
    return real_of(f)->pMethods->xUnlock(real_of(f), level);
}

static int fp_check_reserved(sqlite3_file *f, int *out)
{
    return real_of(f)->pMethods->xCheckReservedLock(real_of(f), out);
}

static int fp_file_control(sqlite3_file *f, int op, void *arg)
{
    return real_of(f)->pMethods->xFileControl(real_of(f), op, arg);
}

static int fp_sector_size(sqlite3_file *f)
{
    return real_of(f)->pMethods->xSectorSize(real_of(f));
}

static int fp_device_chars(sqlite3_file *f)
{
    return real_of(f)->pMethods->xDeviceCharacteristics(real_of(f));
}

static int fp_shm_map(sqlite3_file *f, int region, int size, int extend, void volatile **out)
{
    return real_of(f)->pMethods->xShmMap(real_of(f), region, size, extend, out);
}

static int fp_shm_lock(sqlite3_file *f, int offset, int n, int flags)
{
    return real_of(f)->pMethods->xShmLock(real_of(f), offset, n, flags);
}

static void fp_shm_barrier(sqlite3_file *f)
{
    real_of(f)->pMethods->xShmBarrier(real_of(f));
}

static int fp_shm_unmap(sqlite3_file *f, int delete_flag)
{
    return real_of(f)->pMethods->xShmUnmap(real_of(f), delete_flag);
}

static int fp_fetch(sqlite3_file *f, sqlite3_int64 off, int n, void **out)
{
    return real_of(f)->pMethods->xFetch(real_of(f), off, n, out);
}

static int fp_unfetch(sqlite3_file *f, sqlite3_int64 off, void *p)
{
    return real_of(f)->pMethods->xUnfetch(real_of(f), off, p);
}

/* Version 3 methods; a real file of an older version is never handed out (see fp_open). */
static const sqlite3_io_methods fp_methods = {
    .iVersion = 3,
    .xClose = fp_close,
    .xRead = fp_read,
    .xWrite = fp_write,
    .xTruncate = fp_truncate,
    .xSync = fp_sync,
    .xFileSize = fp_file_size,
    .xLock = fp_lock,
    .xUnlock = fp_unlock,
    .xCheckReservedLock = fp_check_reserved,
    .xFileControl = fp_file_control,
    .xSectorSize = fp_sector_size,
    .xDeviceCharacteristics = fp_device_chars,
    .xShmMap = fp_shm_map,
    .xShmLock = fp_shm_lock,
    .xShmBarrier = fp_shm_barrier,
    .xShmUnmap = fp_shm_unmap,
    .xFetch = fp_fetch,
    .xUnfetch = fp_unfetch,
};

static int fp_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *file, int flags,
                   int *out_flags)
{
    struct fp_file *f = (struct fp_file *)file;
    (void)vfs;
    f->base.pMethods = NULL;
    f->real = (sqlite3_file *)(f + 1);
    int rc = real_vfs->xOpen(real_vfs, name, f->real, flags, out_flags);
    if (f->real->pMethods) {
        if (f->real->pMethods->iVersion < 3) { /* the unix VFS is version 3 */
            f->real->pMethods->xClose(f->real);
            return SQLITE_CANTOPEN;
        }
        f->base.pMethods = &fp_methods; /* SQLite closes it even when rc is an error */
    }
    return rc;
}

static void fp_register(void)
{
    real_vfs = sqlite3_vfs_find(NULL);
    if (!real_vfs) {
        fp_registered = SQLITE_ERROR;
        return;
    }
    /*
     * A copy of the default VFS with our open and file size: its other
     * methods (delete, access, full path, time, randomness) run as they are
     * and read only the fields copied with them (mxPathname, pAppData).
     */
    fp_vfs = *real_vfs;
    fp_vfs.zName = "wharf";
    fp_vfs.szOsFile = (int)sizeof(struct fp_file) + real_vfs->szOsFile;
    fp_vfs.xOpen = fp_open;
    fp_vfs.pNext = NULL;
    fp_registered = sqlite3_vfs_register(&fp_vfs, 0);
}

#endif /* WH_NO_FAILPOINTS */

const char *db_vfs_name(void)
{
#ifdef WH_NO_FAILPOINTS
    return NULL; /* SQLite's default VFS */
#else
    pthread_once(&fp_once, fp_register);
    return fp_registered == SQLITE_OK ? "wharf" : NULL;
#endif
}
