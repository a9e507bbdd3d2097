/* Unit tests for common/metrics: sharded counters, histograms, the text format. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common/metrics.h"

/* The value of the sample `series` (the whole text before the value) in `text`, or -1. */
static long long sample(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncmp(p, series, n) == 0 && p[n] == ' ')
            return strtoll(p + n + 1, NULL, 10);
    }
    return -1;
}

static char *render(void)
{
    struct wh_buf b;
    wh_buf_init(&b, 1 << 20);
    assert_int_equal(wh_metrics_render(&b, NULL, 0), 0);
    return wh_buf_detach(&b, NULL);
}

#define THREADS 8
#define PER_THREAD 100000

static void *adder(void *arg)
{
    (void)arg;
    for (int i = 0; i < PER_THREAD; i++) {
        wh_metric_add(WH_METRIC_BYTES_IN, 3);
        wh_metric_request(1 /* HEAD */, 200, 100);
    }
    return NULL;
}

/* Counters updated from many threads at once sum exactly (no update lost, no lock). */
static void test_metrics__concurrent_counts_are_exact(void **state)
{
    (void)state;
    char *before = render();
    long long in0 = sample(before, "wharf_http_request_bytes_total");
    long long head0 = sample(before, "wharf_http_requests_total{method=\"HEAD\",code=\"2xx\"}");
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, adder, NULL), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    char *after = render();
    assert_int_equal(sample(after, "wharf_http_request_bytes_total") - in0,
                     3LL * THREADS * PER_THREAD);
    assert_int_equal(
        sample(after, "wharf_http_requests_total{method=\"HEAD\",code=\"2xx\"}") - head0,
        (long long)THREADS * PER_THREAD);
    free(before);
    free(after);
}

/* A bucket's bound is inclusive, buckets are cumulative, odd statuses and methods land. */
static void test_metrics__histogram_and_classes(void **state)
{
    (void)state;
    char *b0 = render();
    wh_metric_request(5 /* DELETE */, 204, 500);     /* exactly 0.0005 s */
    wh_metric_request(5, 404, 501);                  /* just above */
    wh_metric_request(5, 503, 20 * 1000 * 1000);     /* past the last bound */
    wh_metric_request(5, 99, 1);                     /* not a status: 5xx */
    wh_metric_request(42, 200, 1);                   /* not a method: OTHER */
    char *b1 = render();
#define D(series) (sample(b1, series) - sample(b0, series))
    assert_int_equal(D("wharf_http_requests_total{method=\"DELETE\",code=\"2xx\"}"), 1);
    assert_int_equal(D("wharf_http_requests_total{method=\"DELETE\",code=\"4xx\"}"), 1);
    assert_int_equal(D("wharf_http_requests_total{method=\"DELETE\",code=\"5xx\"}"), 2);
    assert_int_equal(D("wharf_http_requests_total{method=\"OTHER\",code=\"2xx\"}"), 1);
    assert_int_equal(
        D("wharf_http_request_duration_seconds_bucket{method=\"DELETE\",le=\"0.0005\"}"), 2);
    assert_int_equal(
        D("wharf_http_request_duration_seconds_bucket{method=\"DELETE\",le=\"0.001\"}"), 3);
    assert_int_equal(D("wharf_http_request_duration_seconds_bucket{method=\"DELETE\",le=\"10\"}"),
                     3);
    assert_int_equal(
        D("wharf_http_request_duration_seconds_bucket{method=\"DELETE\",le=\"+Inf\"}"), 4);
    assert_int_equal(D("wharf_http_request_duration_seconds_count{method=\"DELETE\"}"), 4);
    assert_non_null(strstr(b1, "\nwharf_http_request_duration_seconds_sum{method=\"DELETE\"} 20."));
#undef D
    free(b0);
    free(b1);
}

static void test_metrics__scans_extras_and_cap(void **state)
{
    (void)state;
    wh_metric_scan(1500000, true);
    wh_metric_scan(-5, false);
    const struct wh_metrics_extra extra[] = {
        {"wharf_test_gauge", "A gauge.", 7},
        {"wharf_test_unknown", "Could not be read.", -1},
    };
    struct wh_buf b;
    wh_buf_init(&b, 1 << 20);
    assert_int_equal(wh_metrics_render(&b, extra, 2), 0);
    assert_int_equal(sample(b.data, "wharf_scan_duration_seconds_bucket{le=\"1\"}"), 1);
    assert_int_equal(sample(b.data, "wharf_scan_duration_seconds_bucket{le=\"2.5\"}"), 2);
    assert_int_equal(sample(b.data, "wharf_scan_duration_seconds_count"), 2);
    assert_int_equal(sample(b.data, "wharf_scans_total{result=\"success\"}"), 1);
    assert_int_equal(sample(b.data, "wharf_scans_total{result=\"error\"}"), 1);
    assert_non_null(strstr(b.data, "# TYPE wharf_test_gauge gauge\nwharf_test_gauge 7\n"));
    assert_null(strstr(b.data, "wharf_test_unknown"));
    assert_int_equal(b.data[b.len - 1], '\n');
    wh_buf_dispose(&b);
    /* a buffer too small is an error, never a cut text presented as whole */
    wh_buf_init(&b, 1000);
    assert_int_equal(wh_metrics_render(&b, NULL, 0), WH_ETOOBIG);
    wh_buf_dispose(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metrics__concurrent_counts_are_exact),
        cmocka_unit_test(test_metrics__histogram_and_classes),
        cmocka_unit_test(test_metrics__scans_extras_and_cap),
    };
    return cmocka_run_group_tests_name("metrics", tests, NULL, NULL);
}
