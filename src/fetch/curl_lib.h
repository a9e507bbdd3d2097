/*
 * curl_lib: libcurl's functions for the modules that make HTTP requests
 * (fetch.c, storage/s3.c, the vulnerability database's downloads). libcurl
 * is loaded with dlopen on first use, not linked: it and the libraries it
 * pulls in would otherwise sit in the memory of every wharf process, most of
 * which never make a request.
 *
 * The library is loaded and curl_global_init'ed once per process and never
 * cleaned up: curl_global_init and curl_global_cleanup are not thread-safe,
 * and one module's cleanup would pull the global state (TLS) from under the
 * transfers of another running in a second thread.
 */
#ifndef WH_CURL_LIB_H
#define WH_CURL_LIB_H

#include <curl/curl.h>

struct wh_curl_lib {
    CURL *(*easy_init)(void);
    CURLcode (*easy_setopt)(CURL *c, CURLoption opt, ...);
    CURLcode (*easy_perform)(CURL *c);
    CURLcode (*easy_getinfo)(CURL *c, CURLINFO info, ...);
    void (*easy_reset)(CURL *c);
    void (*easy_cleanup)(CURL *c);
    const char *(*easy_strerror)(CURLcode rc);
    struct curl_slist *(*slist_append)(struct curl_slist *l, const char *s);
    void (*slist_free_all)(struct curl_slist *l);
    curl_version_info_data *(*version_info)(CURLversion v);
};

/*
 * The loaded library (safe from any thread; the first call loads it), or
 * NULL when it cannot be loaded, with the reason in wh_error_msg() (libcurl
 * not installed, a function missing, initialisation failed).
 */
const struct wh_curl_lib *wh_curl_lib(void);

#endif
