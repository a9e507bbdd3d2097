/*
 * Unit tests for cron.c: Harbor's six-field cron expressions. Bad input is
 * refused with a message naming the field; the next fire time is checked
 * against times written out by hand (steps, ranges, names, day of week and
 * the either-day rule, month ends, leap years and the year 2100, which is
 * not one) and, for a few expressions, against a second-by-second search
 * that reads the calendar from gmtime_r, so the oracle shares no code with
 * the search under test.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "common/common.h"

/* "YYYY-MM-DD HH:MM:SS" (UTC) as Unix seconds, through the C library (TZ=UTC). */
static int64_t utc(const char *iso)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    int n = sscanf(iso, "%d-%d-%d %d:%d:%d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
                   &tm.tm_min, &tm.tm_sec);
    assert_int_equal(n, 6);
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    tm.tm_isdst = 0;
    time_t t = mktime(&tm);
    assert_true(t != (time_t)-1);
    return (int64_t)t;
}

static int group_setup(void **state)
{
    (void)state;
    setenv("TZ", "UTC", 1);
    tzset();
    return 0;
}

static void test_cron__refuses_bad_expressions(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        const char *message_part;
    } cases[] = {
        {"", "empty"},
        {"   ", "empty"},
        {"0 0 0 * *", "expected 6 fields"},
        {"0 0 0 * * * *", "found 7"},
        {"@daily", "found 1"},
        {"60 * * * * *", "seconds: 60 is above the maximum 59"},
        {"* 60 * * * *", "minutes"},
        {"* * 24 * * *", "hours: 24"},
        {"* * * 0 * *", "day of month: 0 is below the minimum 1"},
        {"* * * 32 * *", "day of month"},
        {"* * * * 0 *", "month: 0"},
        {"* * * * 13 *", "month: 13"},
        {"* * * * * 7", "day of week: 7"},
        {"*/0 * * * * *", "step"},
        {"*/ * * * * *", "step"},
        {"*/x * * * * *", "step"},
        {"1-2-3 * * * * *", "more than one '-'"},
        {"*/2/3 * * * * *", "more than one '/'"},
        {"5-1 * * * * *", "ends before it starts"},
        {"a * * * * *", "not a number"},
        {"-1 * * * * *", "missing"},
        {",1 * * * * *", "empty item"},
        {"1,,2 * * * * *", "empty item"},
        {"1, * * * * *", "empty item"},
        {"0 0 0 * foo *", "month: \"foo\""},
        {"0 0 0 * * mon-", "missing"},
        {"0 0 0 * * monday", "not a number or a name"},
        {"0 0 0 * jan * ", NULL}, /* valid: trailing blanks are fine */
        {"99999 * * * * *", "not a number"},
        {"18446744073709551617 * * * * *", "not a number"},
        {"0 0 0 * * *\x01", "printable"},
        {"0 0 0 * * \xc3\xa9", "printable"},
        {"0\n0 0 * * *", "printable"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct wh_cron c;
        int rc = wh_cron_parse(&c, cases[i].text);
        if (!cases[i].message_part) {
            assert_int_equal(rc, 0);
            continue;
        }
        if (rc != WH_EINVALID || !strstr(wh_error_msg(), cases[i].message_part))
            fail_msg("\"%s\": rc %d, message \"%s\", wanted \"%s\"", cases[i].text, rc,
                     wh_error_msg(), cases[i].message_part);
    }
    char long_text[300];
    memset(long_text, '1', sizeof(long_text) - 1);
    long_text[sizeof(long_text) - 1] = '\0';
    struct wh_cron c;
    assert_int_equal(wh_cron_parse(&c, long_text), WH_EINVALID);
    assert_non_null(strstr(wh_error_msg(), "longer than 127"));
}

static void test_cron__parses_fields(void **state)
{
    (void)state;
    struct wh_cron c;
    assert_int_equal(wh_cron_parse(&c, "0,30 */20 9-17/4 1,15 JAN-Mar mon-FRI"), 0);
    assert_true(c.sec == ((UINT64_C(1) << 0) | (UINT64_C(1) << 30)));
    assert_true(c.min == ((UINT64_C(1) << 0) | (UINT64_C(1) << 20) | (UINT64_C(1) << 40)));
    assert_true(c.hour == ((UINT64_C(1) << 9) | (UINT64_C(1) << 13) | (UINT64_C(1) << 17)));
    assert_true(c.dom == ((UINT64_C(1) << 1) | (UINT64_C(1) << 15)));
    assert_true(c.mon == (UINT64_C(0xe)));
    assert_true(c.dow == (UINT64_C(0x3e)));
    assert_false(c.dom_any);
    assert_false(c.dow_any);
    /* "*" and "?" leave a day field unrestricted; "*" with a step does not */
    assert_int_equal(wh_cron_parse(&c, "0 0 0 ? * *"), 0);
    assert_true(c.dom_any && c.dow_any);
    assert_int_equal(wh_cron_parse(&c, "0 0 0 */2 * *"), 0);
    assert_false(c.dom_any);
    assert_true(c.dow_any);
    /* "N/step" runs from N to the maximum */
    assert_int_equal(wh_cron_parse(&c, "5/20 * * * * *"), 0);
    assert_true(c.sec == ((UINT64_C(1) << 5) | (UINT64_C(1) << 25) | (UINT64_C(1) << 45)));
    /* tabs and runs of blanks separate fields */
    assert_int_equal(wh_cron_parse(&c, "  0\t0   0 * * *  "), 0);
    assert_true(c.hour == 1 && c.dom_any && c.dow_any);
}

static void test_cron__next_fire_times(void **state)
{
    (void)state;
    static const struct {
        const char *cron, *after, *next;
    } cases[] = {
        /* Harbor's presets */
        {"0 0 * * * *", "2026-12-03 01:15:00", "2026-12-03 02:00:00"},
        {"0 0 0 * * *", "2026-12-03 01:15:00", "2026-12-04 00:00:00"},
        {"0 0 0 * * 0", "2026-12-03 01:15:00", "2026-12-06 00:00:00"},
        /* strictly after: a time that matches gives the next one */
        {"0 0 0 * * *", "2026-12-04 00:00:00", "2026-12-05 00:00:00"},
        {"* * * * * *", "2026-12-03 01:15:59", "2026-12-03 01:16:00"},
        /* steps */
        {"*/15 * * * * *", "2026-12-03 10:00:07", "2026-12-03 10:00:15"},
        {"*/2 * * * * *", "2026-12-03 10:00:59", "2026-12-03 10:01:00"},
        {"5/20 * * * * *", "2026-12-03 10:00:46", "2026-12-03 10:01:05"},
        {"0 0 */6 * * *", "2026-12-03 19:00:00", "2026-12-04 00:00:00"},
        /* ranges and day of week (2026-12-04 is a Friday) */
        {"0 */20 9-17 * * 1-5", "2026-12-04 17:50:00", "2026-12-07 09:00:00"},
        {"0 0 12 * * sun", "2026-12-03 00:00:00", "2026-12-06 12:00:00"},
        {"0 0 0 ? * MON", "2026-12-03 00:00:00", "2026-12-07 00:00:00"},
        /* both day fields restricted: either matches (the 13th or a Friday) */
        {"0 0 0 13 * 5", "2026-12-03 00:00:00", "2026-12-04 00:00:00"},
        {"0 0 0 13 * 5", "2026-12-11 00:00:00", "2026-12-13 00:00:00"},
        /* a stepped day of month is restricted too: the 1st, 3rd, ... or a Monday */
        {"0 0 0 */2 * 1", "2026-12-03 00:00:00", "2026-12-05 00:00:00"},
        {"0 0 0 */2 * 1", "2026-12-05 00:00:00", "2026-12-07 00:00:00"},
        /* month ends */
        {"0 0 0 31 * *", "2026-04-15 00:00:00", "2026-05-31 00:00:00"},
        {"0 0 0 31 * *", "2026-05-31 00:00:00", "2026-07-31 00:00:00"},
        {"0 0 0 30 * *", "2026-01-30 00:00:00", "2026-03-30 00:00:00"},
        {"0 30 23 31 12 *", "2026-12-31 23:30:00", "2027-12-31 23:30:00"},
        {"0 0 0 * * *", "2026-12-31 00:00:01", "2027-01-01 00:00:00"},
        {"0 0 0 1 jan,jul *", "2026-12-03 00:00:00", "2027-01-01 00:00:00"},
        /* leap years: 2028 is one, 2100 is not, 2000 was */
        {"0 0 0 * * *", "2028-02-28 12:00:00", "2028-02-29 00:00:00"},
        {"0 0 0 29 2 *", "2025-03-01 00:00:00", "2028-02-29 00:00:00"},
        {"0 0 0 29 2 *", "2099-01-01 00:00:00", "2104-02-29 00:00:00"},
        {"0 0 0 * * *", "2100-02-28 12:00:00", "2100-03-01 00:00:00"},
        {"0 0 0 29 2 *", "1999-06-01 00:00:00", "2000-02-29 00:00:00"},
        /* before 1970 */
        {"0 0 0 1 1 *", "1969-06-01 00:00:00", "1970-01-01 00:00:00"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct wh_cron c;
        int64_t next = 0;
        assert_int_equal(wh_cron_parse(&c, cases[i].cron), 0);
        assert_int_equal(wh_cron_next(&next, &c, utc(cases[i].after)), 0);
        if (next != utc(cases[i].next))
            fail_msg("\"%s\" after %s: %lld, wanted %s (%lld)", cases[i].cron, cases[i].after,
                     (long long)next, cases[i].next, (long long)utc(cases[i].next));
    }
}

static void test_cron__never(void **state)
{
    (void)state;
    static const char *const never[] = {"0 0 0 30 2 *", "0 0 0 31 4,6,9,11 *", "0 0 0 31 2 ?"};
    for (size_t i = 0; i < sizeof(never) / sizeof(never[0]); i++) {
        struct wh_cron c;
        int64_t next = 0;
        assert_int_equal(wh_cron_parse(&c, never[i]), 0);
        assert_int_equal(wh_cron_next(&next, &c, utc("2026-12-03 00:00:00")), WH_ENOTFOUND);
    }
}

/* Whether second `t` matches `c`, read from gmtime_r. */
static bool matches(const struct wh_cron *c, int64_t t)
{
    time_t tt = (time_t)t;
    struct tm tm;
    assert_non_null(gmtime_r(&tt, &tm));
    bool dom = (c->dom >> tm.tm_mday) & 1, dow = (c->dow >> tm.tm_wday) & 1;
    bool day = c->dom_any || c->dow_any ? dom && dow : dom || dow;
    return ((c->sec >> tm.tm_sec) & 1) && ((c->min >> tm.tm_min) & 1) &&
           ((c->hour >> tm.tm_hour) & 1) && ((c->mon >> (tm.tm_mon + 1)) & 1) && day;
}

static void test_cron__agrees_with_a_brute_force_search(void **state)
{
    (void)state;
    /* (expression, fire times followed): gaps kept small, every second between is read */
    static const struct {
        const char *cron;
        int steps;
    } exprs[] = {
        {"*/7 * * * * *", 40}, {"13 */3 * * * *", 40}, {"0 0 */5 * * *", 20},
        {"0 0 0 * * *", 6},    {"30 15 10 * * tue,thu", 4},
    };
    int64_t start = utc("2028-02-26 22:58:00"); /* across a leap day */
    for (size_t i = 0; i < sizeof(exprs) / sizeof(exprs[0]); i++) {
        struct wh_cron c;
        assert_int_equal(wh_cron_parse(&c, exprs[i].cron), 0);
        int64_t t = start;
        for (int k = 0; k < exprs[i].steps; k++) {
            int64_t next = 0;
            assert_int_equal(wh_cron_next(&next, &c, t), 0);
            assert_true(next > t);
            assert_true(matches(&c, next));
            for (int64_t s = t + 1; s < next; s++)
                if (matches(&c, s))
                    fail_msg("\"%s\": %lld matches before %lld", exprs[i].cron, (long long)s,
                             (long long)next);
            t = next;
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cron__refuses_bad_expressions),
        cmocka_unit_test(test_cron__parses_fields),
        cmocka_unit_test(test_cron__next_fire_times),
        cmocka_unit_test(test_cron__never),
        cmocka_unit_test(test_cron__agrees_with_a_brute_force_search),
    };
    return cmocka_run_group_tests_name("cron", tests, group_setup, NULL);
}
