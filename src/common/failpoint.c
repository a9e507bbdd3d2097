/*
 * failpoint.c: fault injection for tests (after curl's torture mode and jq's
 * inject_errors.c). Code that does I/O names its points ("store.write") and
 * asks wh_failpoint() before each call; a test arms rules with
 * wh_failpoint_set() or, for a server, the WHARF_FAILPOINTS environment
 * variable. The rules live in one small table behind a mutex, which is taken
 * only while something is armed: unarmed, a point costs one relaxed load.
 * Grammar and actions: common.h.
 */
#include "common.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define RULES_MAX 16
#define NAME_MAX_LEN 32
#define SPEC_MAX 1024

struct rule {
    char name[NAME_MAX_LEN];
    unsigned nth;   /* fires on this hit (1-based) */
    bool onward;    /* ... and on every later one */
    int action;     /* errno value, WH_FAILPOINT_SHORT or WH_FAILPOINT_CORRUPT */
    unsigned hits;  /* hits of `name` counted by this rule */
};

bool wh_failpoints_armed_;

static pthread_mutex_t fp_lock = PTHREAD_MUTEX_INITIALIZER;
static struct rule rules[RULES_MAX];
static size_t nrules;

static const struct {
    const char *name;
    int action;
} actions[] = {
    {"ENOSPC", ENOSPC}, {"EIO", EIO},     {"EDQUOT", EDQUOT},
    {"EROFS", EROFS},   {"ENOMEM", ENOMEM}, {"short", WH_FAILPOINT_SHORT},
    {"corrupt", WH_FAILPOINT_CORRUPT},
};

static bool name_ok(const char *s, size_t n)
{
    if (n == 0 || n >= NAME_MAX_LEN)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_'))
            return false;
    }
    return true;
}

/* Parses one "name=[N[+]:]action" of `n` bytes into `out`. */
static int parse_rule(struct rule *out, const char *s, size_t n)
{
    const char *eq = memchr(s, '=', n);
    if (!eq || !name_ok(s, (size_t)(eq - s)))
        return wh_error_set(WH_EINVALID, "failpoint rule '%.*s': expected name=[N[+]:]action",
                            (int)n, s);
    memset(out, 0, sizeof(*out));
    memcpy(out->name, s, (size_t)(eq - s));
    const char *v = eq + 1, *end = s + n;
    const char *colon = memchr(v, ':', (size_t)(end - v));
    out->nth = 1;
    if (colon) {
        const char *ne = colon;
        uint64_t nth;
        if (ne > v && ne[-1] == '+') {
            out->onward = true;
            ne--;
        }
        if (wh_parse_u64(&nth, v, (size_t)(ne - v)) < 0 || nth == 0 || nth > 1000000000u)
            return wh_error_set(WH_EINVALID, "failpoint rule '%.*s': bad count", (int)n, s);
        out->nth = (unsigned)nth;
        v = colon + 1;
    }
    for (size_t i = 0; i < sizeof(actions) / sizeof(actions[0]); i++) {
        if (strlen(actions[i].name) == (size_t)(end - v) &&
            memcmp(actions[i].name, v, (size_t)(end - v)) == 0) {
            out->action = actions[i].action;
            return 0;
        }
    }
    return wh_error_set(WH_EINVALID, "failpoint rule '%.*s': unknown action", (int)n, s);
}

int wh_failpoint_set(const char *spec)
{
    struct rule parsed[RULES_MAX];
    size_t count = 0;
    size_t len = spec ? strlen(spec) : 0;

    if (len > SPEC_MAX)
        return wh_error_set(WH_EINVALID, "failpoint spec longer than %d bytes", SPEC_MAX);
#ifdef WH_NO_FAILPOINTS
    if (len)
        return wh_error_set(WH_EINVALID, "fault injection is not compiled into this build");
#endif
    for (size_t i = 0; i < len;) {
        size_t n = strcspn(spec + i, ",");
        if (n) {
            if (count == RULES_MAX)
                return wh_error_set(WH_EINVALID, "more than %d failpoint rules", RULES_MAX);
            if (parse_rule(&parsed[count], spec + i, n) < 0)
                return WH_EINVALID;
            count++;
        }
        i += n + 1;
    }
    pthread_mutex_lock(&fp_lock);
    memcpy(rules, parsed, count * sizeof(parsed[0]));
    nrules = count;
    __atomic_store_n(&wh_failpoints_armed_, count > 0, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&fp_lock);
    return 0;
}

unsigned wh_failpoint_hits(const char *name)
{
    unsigned hits = 0;
    pthread_mutex_lock(&fp_lock);
    for (size_t i = 0; i < nrules; i++)
        if (strcmp(rules[i].name, name) == 0 && rules[i].hits > hits)
            hits = rules[i].hits;
    pthread_mutex_unlock(&fp_lock);
    return hits;
}

int wh_failpoint_eval(const char *name)
{
    int action = 0;
    pthread_mutex_lock(&fp_lock);
    for (size_t i = 0; i < nrules; i++) {
        struct rule *r = &rules[i];
        if (strcmp(r->name, name) != 0)
            continue;
        if (r->hits < UINT32_MAX)
            r->hits++;
        /* every rule of the name counts every hit; the first that fires wins */
        if (!action && (r->hits == r->nth || (r->onward && r->hits > r->nth)))
            action = r->action;
    }
    pthread_mutex_unlock(&fp_lock);
    if (action)
        wh_log_warn("failpoint %s fired (%s)", name,
                    action == WH_FAILPOINT_SHORT     ? "short write"
                    : action == WH_FAILPOINT_CORRUPT ? "corrupt write"
                                                     : strerror(action));
    return action;
}
