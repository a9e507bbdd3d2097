/*
 * Maven version ordering: org.apache.maven.artifact.versioning.ComparableVersion
 * as in maven-artifact 3.x (the parse and qualifier rules of apache/maven
 * commit 01eb2e96, whose ComparableVersionTest vectors are in maven.txt).
 * A version splits at '.', '-' and digit/letter transitions into numbers and
 * qualifiers; '-' and transitions open a nested sub-list; trailing "null"
 * items (0, "", "ga", "final") are trimmed from each list.
 *
 * The order is exactly that revision's, and it is not transitive: a qualifier
 * sorts below any number but may sort above "nothing", so for instance
 * "1.x.1" < "1.0.beta.1" < "1" < "1.x.1" (the current apache/maven code keeps
 * that cycle). No total order can agree with Maven on all three pairs, so none is
 * imposed; the fuzz target checks only reflexivity and antisymmetry here.
 * Digits are ASCII only (Java's Character.isDigit also takes other scripts'),
 * and letters lower-case as ASCII. Maven accepts every string; so do we.
 */
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "scan/version/version_int.h"

enum mvn_kind { MVN_NUM, MVN_STR, MVN_LIST };

/* Qualifier ranks; every unknown qualifier has RANK_OTHER and its text. */
enum { RANK_ALPHA, RANK_BETA, RANK_MILESTONE, RANK_RC, RANK_SNAPSHOT, RANK_RELEASE, RANK_SP,
       RANK_OTHER };

struct mvn_item {
    enum mvn_kind kind;
    bool dead;        /* removed by normalisation */
    int rank;         /* MVN_STR */
    const char *text; /* MVN_NUM digits, MVN_STR text */
    size_t len;
};

/* Items of one version. A MVN_LIST item opens a sub-list holding every item
 * after it: a new list is always the last element of the current one. */
struct mvn_version {
    struct mvn_item *items;
    size_t n;
    struct mvn_item small[32]; /* storage for short versions, no allocation */
};

static int ascii_lower(int c)
{
    return (c >= 'A' && c <= 'Z') ? c + 32 : c;
}

static bool word_is(const char *p, size_t n, const char *w)
{
    if (strlen(w) != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (ascii_lower((unsigned char)p[i]) != w[i])
            return false;
    return true;
}

static int qualifier_rank(const char *p, size_t n, bool followed_by_digit)
{
    static const struct {
        const char *word;
        int rank;
    } known[] = {
        {"alpha", RANK_ALPHA},   {"beta", RANK_BETA},         {"milestone", RANK_MILESTONE},
        {"rc", RANK_RC},         {"cr", RANK_RC},             {"snapshot", RANK_SNAPSHOT},
        {"", RANK_RELEASE},      {"ga", RANK_RELEASE},        {"final", RANK_RELEASE},
        {"sp", RANK_SP},
    };
    if (followed_by_digit && n == 1) {
        /* a1 = alpha-1, b1 = beta-1, m1 = milestone-1 */
        switch (ascii_lower((unsigned char)p[0])) {
        case 'a':
            return RANK_ALPHA;
        case 'b':
            return RANK_BETA;
        case 'm':
            return RANK_MILESTONE;
        default:
            break;
        }
    }
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
        if (word_is(p, n, known[i].word))
            return known[i].rank;
    return RANK_OTHER;
}

static void add(struct mvn_version *v, enum mvn_kind kind, const char *text, size_t len,
                bool followed_by_digit)
{
    struct mvn_item *it = &v->items[v->n++];
    it->kind = kind;
    it->dead = false;
    it->text = text;
    it->len = len;
    it->rank = kind == MVN_STR ? qualifier_rank(text, len, followed_by_digit) : 0;
}

static bool is_null(const struct mvn_item *it)
{
    switch (it->kind) {
    case MVN_NUM:
        for (size_t i = 0; i < it->len; i++)
            if (it->text[i] != '0')
                return false;
        return true;
    case MVN_STR:
        return it->rank == RANK_RELEASE;
    default:
        return false; /* lists are handled by normalise() */
    }
}

/* ListItem.normalize for every list, innermost first: an empty sub-list goes,
 * then the null items at the end of the list's own items. */
static void normalise(struct mvn_version *v)
{
    size_t end = v->n; /* the current list's own items end here; a sub-list
                        * marker, if any, sits at `end` */
    bool sub_empty = false;

    for (;;) {
        size_t start = end;
        while (start > 0 && v->items[start - 1].kind != MVN_LIST)
            start--;
        bool sub = end < v->n;
        if (sub && sub_empty)
            v->items[end].dead = true;
        size_t i = end;
        while (i > start && is_null(&v->items[i - 1])) {
            v->items[i - 1].dead = true;
            i--;
        }
        sub_empty = i == start && !(sub && !v->items[end].dead);
        if (start == 0)
            break;
        end = start - 1; /* the marker that opened this list */
    }
}

static void mvn_parse(struct mvn_version *v, const char *s)
{
    size_t len = strlen(s), start = 0;
    bool digit = false;

    /* Each byte adds at most two items, plus the last item. */
    size_t need = 2 * len + 2;
    v->items = need <= sizeof(v->small) / sizeof(v->small[0]) ? v->small
                                                               : wh_malloc(need * sizeof(*v->items));
    v->n = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '.' || c == '-') {
            if (i == start)
                add(v, MVN_NUM, "0", 1, false);
            else
                add(v, digit ? MVN_NUM : MVN_STR, s + start, i - start, false);
            start = i + 1;
            if (c == '-')
                add(v, MVN_LIST, NULL, 0, false);
        } else if (wh_version_isdigit((unsigned char)c)) {
            if (!digit && i > start) {
                add(v, MVN_STR, s + start, i - start, true);
                start = i;
                add(v, MVN_LIST, NULL, 0, false);
            }
            digit = true;
        } else {
            if (digit && i > start) {
                add(v, MVN_NUM, s + start, i - start, false);
                start = i;
                add(v, MVN_LIST, NULL, 0, false);
            }
            digit = false;
        }
    }
    if (len > start)
        add(v, digit ? MVN_NUM : MVN_STR, s + start, len - start, false);
    normalise(v);
}

static void mvn_dispose(struct mvn_version *v)
{
    if (v->items != v->small)
        free(v->items);
}

/* Index of the next live item of the list being read from *i, or n at the
 * list's end. After a MVN_LIST item the current list is over. */
static size_t next_live(const struct mvn_version *v, size_t i)
{
    while (i < v->n && v->items[i].dead)
        i++;
    return i;
}

static int str_cmp(const struct mvn_item *a, const struct mvn_item *b)
{
    if (a->rank != b->rank)
        return a->rank < b->rank ? -1 : 1;
    if (a->rank != RANK_OTHER)
        return 0;
    size_t n = a->len < b->len ? a->len : b->len;
    for (size_t i = 0; i < n; i++) {
        int x = ascii_lower((unsigned char)a->text[i]), y = ascii_lower((unsigned char)b->text[i]);
        if (x != y)
            return x < y ? -1 : 1;
    }
    return (a->len > b->len) - (a->len < b->len);
}

/* A scalar item against "nothing". */
static int scalar_null(const struct mvn_item *it)
{
    if (it->kind == MVN_NUM)
        return is_null(it) ? 0 : 1;
    return it->rank < RANK_RELEASE ? -1 : it->rank > RANK_RELEASE;
}

/* The list whose items start at `i` against "nothing": its first item decides
 * (an empty list is "nothing"). */
static int list_null(const struct mvn_version *v, size_t i)
{
    i = next_live(v, i);
    while (i < v->n && v->items[i].kind == MVN_LIST)
        i = next_live(v, i + 1); /* first item is itself a list */
    return i < v->n ? scalar_null(&v->items[i]) : 0;
}

static int scalar_cmp(const struct mvn_item *a, const struct mvn_item *b)
{
    if (a->kind == MVN_NUM && b->kind == MVN_NUM)
        return wh_version_sign(wh_version_numcmp(a->text, a->len, b->text, b->len));
    if (a->kind != b->kind)
        return a->kind == MVN_NUM ? 1 : -1; /* 1.1 > 1-sp */
    return str_cmp(a, b);
}

/* The lists of `a` from `i` and of `b` from `j`. */
static int list_cmp(const struct mvn_version *a, size_t i, const struct mvn_version *b, size_t j)
{
    bool a_done = false, b_done = false;

    for (;;) {
        if (!a_done)
            i = next_live(a, i);
        if (!b_done)
            j = next_live(b, j);
        bool a_end = a_done || i >= a->n, b_end = b_done || j >= b->n;
        const struct mvn_item *x = a_end ? NULL : &a->items[i];
        const struct mvn_item *y = b_end ? NULL : &b->items[j];
        int r;

        if (!x && !y)
            return 0;
        if (x && y && x->kind == MVN_LIST && y->kind == MVN_LIST) {
            /* Both lists end with a sub-list: the answer is theirs. */
            i++;
            j++;
            continue;
        }
        if (!x)
            r = y->kind == MVN_LIST ? -list_null(b, j + 1) : -scalar_null(y);
        else if (!y)
            r = x->kind == MVN_LIST ? list_null(a, i + 1) : scalar_null(x);
        else if (x->kind == MVN_LIST)
            r = y->kind == MVN_NUM ? -1 : 1; /* 1-1 < 1.0.x, 1-1 > 1-sp */
        else if (y->kind == MVN_LIST)
            r = x->kind == MVN_NUM ? 1 : -1;
        else
            r = scalar_cmp(x, y);
        if (r != 0)
            return r;
        /* A sub-list is the last item of its list. */
        if (x && x->kind == MVN_LIST)
            a_done = true;
        if (y && y->kind == MVN_LIST)
            b_done = true;
        if (x)
            i++;
        if (y)
            j++;
    }
}

int wh_version_maven_cmp(const char *a, const char *b)
{
    struct mvn_version x, y;

    mvn_parse(&x, a);
    mvn_parse(&y, b);
    int r = list_cmp(&x, 0, &y, 0);
    mvn_dispose(&x);
    mvn_dispose(&y);
    return r;
}

/* Maven takes any string; a real one is non-empty printable ASCII, no blanks. */
bool wh_version_maven_valid(const char *v)
{
    if (!*v)
        return false;
    for (; *v; v++)
        if ((unsigned char)*v <= ' ' || (unsigned char)*v >= 0x7f)
            return false;
    return true;
}
