/*
 * Unit tests for api/: the route table and the embedded OpenAPI document
 * list exactly the same (method, path) pairs, in both directions; every
 * documented operation has responses; the document is valid JSON.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <cmocka.h>
#include <jansson.h>

#include "api/api.h"

static json_t *load_doc(void)
{
    size_t n = 0;
    const char *text = wh_api_swagger(&n);
    assert_non_null(text);
    assert_true(n > 0);
    assert_int_equal(strlen(text), n);
    json_error_t err;
    json_t *doc = json_loadb(text, n, 0, &err);
    if (!doc)
        fail_msg("swagger.json: line %d: %s", err.line, err.text);
    return doc;
}

static void lower(char *dst, const char *s, size_t cap)
{
    size_t i = 0;
    for (; s[i] && i + 1 < cap; i++)
        dst[i] = (char)((s[i] >= 'A' && s[i] <= 'Z') ? s[i] + 32 : s[i]);
    dst[i] = '\0';
}

/* Every route of the table is documented. */
static void test_api__routes_documented(void **state)
{
    (void)state;
    json_t *doc = load_doc();
    json_t *paths = json_object_get(doc, "paths");
    assert_true(json_is_object(paths));
    assert_string_equal(json_string_value(json_object_get(doc, "basePath")), "/api/v2.0");
    size_t n = wh_api_route_count();
    assert_true(n > 40);
    for (size_t i = 0; i < n; i++) {
        struct wh_api_route_info ri;
        char m[16];
        wh_api_route_get(i, &ri);
        lower(m, ri.method, sizeof(m));
        json_t *op = json_object_get(json_object_get(paths, ri.path), m);
        if (!json_is_object(op))
            fail_msg("route %s %s is not in swagger.json", ri.method, ri.path);
        if (!json_is_object(json_object_get(op, "responses")))
            fail_msg("%s %s has no responses", ri.method, ri.path);
    }
    json_decref(doc);
}

/* Every documented operation is a route of the table. */
static void test_api__documented_routes_served(void **state)
{
    (void)state;
    json_t *doc = load_doc();
    const char *path;
    json_t *item;
    size_t documented = 0;
    json_object_foreach(json_object_get(doc, "paths"), path, item) {
        const char *method;
        json_t *op;
        json_object_foreach(item, method, op) {
            if (strcmp(method, "parameters") == 0)
                continue;
            documented++;
            bool found = false;
            for (size_t i = 0; i < wh_api_route_count() && !found; i++) {
                struct wh_api_route_info ri;
                wh_api_route_get(i, &ri);
                found = strcasecmp(ri.method, method) == 0 && strcmp(ri.path, path) == 0;
            }
            if (!found)
                fail_msg("swagger.json documents %s %s, which no route serves", method, path);
        }
    }
    assert_int_equal(documented, wh_api_route_count());
    json_decref(doc);
}

/* No (method, path) pair appears twice in the table. */
static void test_api__routes_unique(void **state)
{
    (void)state;
    size_t n = wh_api_route_count();
    for (size_t i = 0; i < n; i++) {
        struct wh_api_route_info a, b;
        wh_api_route_get(i, &a);
        for (size_t j = i + 1; j < n; j++) {
            wh_api_route_get(j, &b);
            if (strcmp(a.method, b.method) == 0 && strcmp(a.path, b.path) == 0)
                fail_msg("duplicate route %s %s", a.method, a.path);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_api__routes_documented),
        cmocka_unit_test(test_api__documented_routes_served),
        cmocka_unit_test(test_api__routes_unique),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
