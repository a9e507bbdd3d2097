/*
 * cron.c: Harbor's six-field cron expressions (see common.h) — parsing into
 * one bit set per field, and the next matching second after a given time,
 * in UTC. Harbor reads them with robfig/cron's parser set to seconds,
 * minutes, hours, day of month, month and day of week, without descriptors
 * ("@daily") or time zone prefixes; this file accepts the same language.
 *
 * The search walks the calendar field by field (month, day, hour, minute,
 * second), jumping to the start of the next unit whenever one does not
 * match, so it takes a few thousand steps at most for five years.
 */
#include "common/common.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define CRON_FIELDS 6
#define CRON_YEARS 5 /* how far wh_cron_next looks */

struct field_def {
    const char *name;
    int min, max;
    const char *const *names; /* names of min, min+1, … (NULL: numbers only) */
};

static const char *const month_names[] = {"jan", "feb", "mar", "apr", "may", "jun",
                                          "jul", "aug", "sep", "oct", "nov", "dec", NULL};
static const char *const dow_names[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat", NULL};

static const struct field_def defs[CRON_FIELDS] = {
    {"seconds", 0, 59, NULL},     {"minutes", 0, 59, NULL}, {"hours", 0, 23, NULL},
    {"day of month", 1, 31, NULL}, {"month", 1, 12, month_names},
    {"day of week", 0, 6, dow_names},
};

/* A value of a field: digits, or (months, days) a name. 0 or WH_EINVALID. */
static int value(int *out, const char *s, size_t len, const struct field_def *d)
{
    if (len == 0)
        return wh_error_set(WH_EINVALID, "%s: a value is missing", d->name);
    if (isdigit((unsigned char)s[0])) {
        uint64_t v;
        if (len > 4 || wh_parse_u64(&v, s, len) < 0)
            return wh_error_set(WH_EINVALID, "%s: \"%.*s\" is not a number", d->name, (int)len, s);
        *out = (int)v;
        return 0;
    }
    for (int i = 0; d->names && d->names[i]; i++) {
        if (len == 3 && strncasecmp(s, d->names[i], 3) == 0) {
            *out = d->min + i;
            return 0;
        }
    }
    return wh_error_set(WH_EINVALID, "%s: \"%.*s\" is not a number%s", d->name, (int)len, s,
                        d->names ? " or a name" : "");
}

/* One term of a list: `*`, `?`, `N`, `N-M`, each with an optional `/step`. */
static int term(uint64_t *bits, bool *any, const char *s, size_t len, const struct field_def *d)
{
    const char *slash = memchr(s, '/', len);
    size_t rlen = slash ? (size_t)(slash - s) : len;
    int lo, hi, step = 1, error;
    bool star = false;

    if (slash && memchr(slash + 1, '/', len - rlen - 1))
        return wh_error_set(WH_EINVALID, "%s: more than one '/' in \"%.*s\"", d->name, (int)len,
                            s);
    if (rlen == 1 && (s[0] == '*' || s[0] == '?')) {
        lo = d->min;
        hi = d->max;
        star = true;
    } else {
        const char *dash = memchr(s, '-', rlen);
        if (dash && memchr(dash + 1, '-', rlen - (size_t)(dash - s) - 1))
            return wh_error_set(WH_EINVALID, "%s: more than one '-' in \"%.*s\"", d->name,
                                (int)len, s);
        if ((error = value(&lo, s, dash ? (size_t)(dash - s) : rlen, d)) < 0)
            return error;
        hi = lo;
        if (dash && (error = value(&hi, dash + 1, rlen - (size_t)(dash - s) - 1, d)) < 0)
            return error;
        if (!dash && slash)
            hi = d->max; /* "N/step": from N to the maximum */
    }
    if (slash) {
        uint64_t v;
        size_t slen = len - rlen - 1;
        if (slen == 0 || slen > 4 || wh_parse_u64(&v, slash + 1, slen) < 0 || v == 0)
            return wh_error_set(WH_EINVALID, "%s: the step in \"%.*s\" must be a positive number",
                                d->name, (int)len, s);
        step = (int)v;
    }
    if (lo < d->min)
        return wh_error_set(WH_EINVALID, "%s: %d is below the minimum %d", d->name, lo, d->min);
    if (hi > d->max)
        return wh_error_set(WH_EINVALID, "%s: %d is above the maximum %d", d->name, hi, d->max);
    if (lo > hi)
        return wh_error_set(WH_EINVALID, "%s: the range \"%.*s\" ends before it starts", d->name,
                            (int)rlen, s);
    for (int v = lo; v <= hi; v += step)
        *bits |= UINT64_C(1) << v;
    /* "*" alone leaves the field unrestricted; "*" with a step restricts it */
    if (star && step == 1)
        *any = true;
    return 0;
}

static int field(uint64_t *bits, bool *any, const char *s, size_t len, const struct field_def *d)
{
    *bits = 0;
    *any = false;
    for (;;) {
        const char *comma = memchr(s, ',', len);
        size_t tlen = comma ? (size_t)(comma - s) : len;
        if (tlen == 0)
            return wh_error_set(WH_EINVALID, "%s: an empty item in a list", d->name);
        int error = term(bits, any, s, tlen, d);
        if (error < 0 || !comma)
            return error;
        s = comma + 1;
        len -= tlen + 1;
    }
}

int wh_cron_parse(struct wh_cron *out, const char *text)
{
    const char *start[CRON_FIELDS];
    size_t len[CRON_FIELDS];
    int n = 0;
    size_t tl = strlen(text);

    memset(out, 0, sizeof(*out));
    if (tl >= WH_CRON_MAX)
        return wh_error_set(WH_EINVALID, "longer than %d characters", WH_CRON_MAX - 1);
    /* messages quote the text: printable ASCII only, so they stay valid UTF-8 */
    for (size_t k = 0; k < tl; k++)
        if (text[k] != '\t' && ((unsigned char)text[k] < 0x20 || (unsigned char)text[k] >= 0x7f))
            return wh_error_set(WH_EINVALID, "a character that is not printable ASCII");
    for (const char *p = text;;) {
        while (*p == ' ' || *p == '\t')
            p++;
        if (!*p)
            break;
        size_t l = strcspn(p, " \t");
        if (n < CRON_FIELDS) {
            start[n] = p;
            len[n] = l;
        }
        n++;
        p += l;
    }
    if (n == 0)
        return wh_error_set(WH_EINVALID, "the expression is empty");
    if (n != CRON_FIELDS)
        return wh_error_set(WH_EINVALID,
                            "expected 6 fields (seconds minutes hours day-of-month month "
                            "day-of-week), found %d",
                            n);
    uint64_t *bits[CRON_FIELDS] = {&out->sec, &out->min, &out->hour,
                                   &out->dom, &out->mon, &out->dow};
    bool ignored;
    for (int i = 0; i < CRON_FIELDS; i++) {
        bool *any = i == 3 ? &out->dom_any : i == 5 ? &out->dow_any : &ignored;
        int error = field(bits[i], any, start[i], len[i], &defs[i]);
        if (error < 0)
            return error;
    }
    return 0;
}

/* ---- calendar (proleptic Gregorian, UTC) ---- */

static bool leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int64_t y, int m)
{
    static const int dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && leap(y) ? 29 : dim[m - 1];
}

/* Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

struct when {
    int64_t year;
    int mon, day, hour, min, sec;
};

static bool day_matches(const struct wh_cron *c, const struct when *w)
{
    int64_t days = days_from_civil(w->year, w->mon, w->day);
    int dow = (int)(((days + 4) % 7 + 7) % 7); /* 1970-01-01 was a Thursday */
    bool dom = (c->dom >> w->day) & 1, dw = (c->dow >> dow) & 1;
    if (c->dom_any || c->dow_any)
        return dom && dw;
    return dom || dw;
}

/* Moves to the start of the next month, day, hour or minute (carrying over). */
static void next_month(struct when *w)
{
    w->day = 1;
    w->hour = w->min = w->sec = 0;
    if (++w->mon > 12) {
        w->mon = 1;
        w->year++;
    }
}

static void next_day(struct when *w)
{
    w->hour = w->min = w->sec = 0;
    if (++w->day > days_in_month(w->year, w->mon))
        next_month(w);
}

static void next_hour(struct when *w)
{
    w->min = w->sec = 0;
    if (++w->hour > 23)
        next_day(w);
}

static void next_minute(struct when *w)
{
    w->sec = 0;
    if (++w->min > 59)
        next_hour(w);
}

int wh_cron_next(int64_t *out, const struct wh_cron *c, int64_t after_s)
{
    int64_t t = after_s + 1;
    int64_t days = t >= 0 ? t / 86400 : -((-t + 86399) / 86400);
    int64_t secs = t - days * 86400;
    struct when w = {.hour = (int)(secs / 3600), .min = (int)(secs % 3600 / 60),
                     .sec = (int)(secs % 60)};
    civil_from_days(days, &w.year, &w.mon, &w.day);
    int64_t limit = w.year + CRON_YEARS;

    while (w.year <= limit) {
        if (!((c->mon >> w.mon) & 1)) {
            next_month(&w);
            continue;
        }
        if (!day_matches(c, &w)) {
            next_day(&w);
            continue;
        }
        if (!((c->hour >> w.hour) & 1)) {
            next_hour(&w);
            continue;
        }
        if (!((c->min >> w.min) & 1)) {
            next_minute(&w);
            continue;
        }
        if (!((c->sec >> w.sec) & 1)) {
            if (++w.sec > 59)
                next_minute(&w);
            continue;
        }
        *out = days_from_civil(w.year, w.mon, w.day) * 86400 + w.hour * 3600 + w.min * 60 + w.sec;
        return 0;
    }
    return wh_error_set(WH_ENOTFOUND, "the expression matches no time in the next %d years",
                        CRON_YEARS);
}
