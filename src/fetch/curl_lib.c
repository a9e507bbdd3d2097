/* curl_lib.c: libcurl loaded once per process (see curl_lib.h). */
#include "fetch/curl_lib.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>

#include "common/common.h"

static struct wh_curl_lib lib;
static char load_error[256];
static pthread_once_t once = PTHREAD_ONCE_INIT;
static const struct wh_curl_lib *loaded; /* &lib once complete; written under `once` */

static void load(void)
{
    void *h = dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        snprintf(load_error, sizeof(load_error),
                 "libcurl is not available (%s): install Debian's libcurl4", dlerror());
        return;
    }
    CURLcode (*global_init)(long flags) = NULL;
    /* dlsym hands back object pointers; the union keeps ISO C quiet */
#define SYM(dst, name)                                                                             \
    do {                                                                                           \
        union {                                                                                    \
            void *obj;                                                                             \
            __typeof__(dst) fn;                                                                    \
        } u = {dlsym(h, name)};                                                                    \
        if (!u.obj) {                                                                              \
            snprintf(load_error, sizeof(load_error), "libcurl lacks %s", name);                   \
            return;                                                                                \
        }                                                                                          \
        dst = u.fn;                                                                                \
    } while (0)
    SYM(global_init, "curl_global_init");
    SYM(lib.easy_init, "curl_easy_init");
    SYM(lib.easy_setopt, "curl_easy_setopt");
    SYM(lib.easy_perform, "curl_easy_perform");
    SYM(lib.easy_getinfo, "curl_easy_getinfo");
    SYM(lib.easy_reset, "curl_easy_reset");
    SYM(lib.easy_cleanup, "curl_easy_cleanup");
    SYM(lib.easy_strerror, "curl_easy_strerror");
    SYM(lib.slist_append, "curl_slist_append");
    SYM(lib.slist_free_all, "curl_slist_free_all");
    SYM(lib.version_info, "curl_version_info");
#undef SYM
    if (global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        snprintf(load_error, sizeof(load_error), "libcurl failed to initialize");
        return;
    }
    loaded = &lib;
}

const struct wh_curl_lib *wh_curl_lib(void)
{
    pthread_once(&once, load);
    if (!loaded)
        wh_error_set(WH_ERROR, "%s", load_error);
    return loaded;
}
