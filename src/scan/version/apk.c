/*
 * Alpine version ordering, as apk-tools 3 src/version.c defines it
 * (apk_version_compare, apk_version_validate). Grammar:
 *   digits{.digits}[letter]{_suffix[digits]}[~hash][-rdigits]
 * The string is read as a sequence of typed tokens; two versions compare token
 * by token while the token types agree, and a type mismatch is decided by the
 * type order (a pre-release suffix is older than anything, then a further
 * digit > letter > suffix > hash > revision > end > invalid).
 *
 * Invalid strings compare the way apk itself compares them: tokens up to the
 * first invalid one count, the invalid rest sorts below the end of the string.
 * One deliberate difference: numbers are compared as digit strings of any
 * length, where apk reads them into a uint64_t that wraps past 20 digits.
 */
#include <string.h>

#include "scan/version/version_int.h"

enum apk_token {
    TOKEN_INITIAL_DIGIT,
    TOKEN_DIGIT,
    TOKEN_LETTER,
    TOKEN_SUFFIX,
    TOKEN_SUFFIX_NO,
    TOKEN_COMMIT_HASH,
    TOKEN_REVISION_NO,
    TOKEN_END,
    TOKEN_INVALID,
};

/* Suffix ranks: pre-release ones below SUFFIX_NONE. */
enum { SUFFIX_INVALID, SUFFIX_ALPHA, SUFFIX_BETA, SUFFIX_PRE, SUFFIX_RC, SUFFIX_NONE,
       SUFFIX_CVS, SUFFIX_SVN, SUFFIX_GIT, SUFFIX_HG, SUFFIX_P };

struct apk_tok {
    enum apk_token type;
    int suffix;        /* SUFFIX_* for TOKEN_SUFFIX */
    const char *value; /* the token's text (digits, letter, suffix name, hash) */
    size_t len;
    const char *p;     /* read position */
};

static int apk_suffix_value(const char *s, size_t n)
{
    static const struct {
        const char *name;
        int value;
    } names[] = {
        {"alpha", SUFFIX_ALPHA}, {"beta", SUFFIX_BETA}, {"pre", SUFFIX_PRE}, {"rc", SUFFIX_RC},
        {"cvs", SUFFIX_CVS},     {"svn", SUFFIX_SVN},   {"git", SUFFIX_GIT}, {"hg", SUFFIX_HG},
        {"p", SUFFIX_P},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strlen(names[i].name) == n && memcmp(names[i].name, s, n) == 0)
            return names[i].value;
    return SUFFIX_INVALID;
}

static void apk_digits(struct apk_tok *t)
{
    t->value = t->p;
    while (wh_version_isdigit((unsigned char)*t->p))
        t->p++;
    t->len = (size_t)(t->p - t->value);
    if (t->len == 0)
        t->type = TOKEN_INVALID;
}

static void apk_first(struct apk_tok *t, const char *s)
{
    t->p = s;
    t->suffix = SUFFIX_INVALID;
    t->type = TOKEN_INITIAL_DIGIT;
    apk_digits(t);
}

/*
 * apk's character classes: bytes >= 0x80 pass both its "suffix letter" and
 * "hex digit" spans, so they are taken here too.
 */
static bool apk_suffix_char(int c)
{
    return (c >= 'a' && c <= 'z') || c >= 0x80;
}

static bool apk_hex_char(int c)
{
    return wh_version_isdigit(c) || (c >= 'a' && c <= 'f') || c >= 0x80;
}

static void apk_next(struct apk_tok *t)
{
    int c = (unsigned char)*t->p;

    if (c == '\0') {
        t->type = TOKEN_END;
        return;
    }
    if (c >= 'a' && c <= 'z') {
        if (t->type > TOKEN_DIGIT)
            goto invalid;
        t->value = t->p++;
        t->len = 1;
        t->type = TOKEN_LETTER;
        return;
    }
    if (c == '.' || wh_version_isdigit(c)) {
        if (c == '.') {
            if (t->type > TOKEN_DIGIT)
                goto invalid;
            t->p++;
        }
        if (t->type == TOKEN_INITIAL_DIGIT || t->type == TOKEN_DIGIT)
            t->type = TOKEN_DIGIT;
        else if (t->type == TOKEN_SUFFIX)
            t->type = TOKEN_SUFFIX_NO;
        else
            goto invalid;
        apk_digits(t);
        return;
    }
    if (c == '_') {
        if (t->type > TOKEN_SUFFIX_NO)
            goto invalid;
        t->value = ++t->p;
        while (apk_suffix_char((unsigned char)*t->p))
            t->p++;
        t->len = (size_t)(t->p - t->value);
        t->suffix = apk_suffix_value(t->value, t->len);
        if (t->suffix == SUFFIX_INVALID)
            goto invalid;
        t->type = TOKEN_SUFFIX;
        return;
    }
    if (c == '~') {
        if (t->type >= TOKEN_COMMIT_HASH)
            goto invalid;
        t->value = ++t->p;
        while (apk_hex_char((unsigned char)*t->p))
            t->p++;
        t->len = (size_t)(t->p - t->value);
        if (t->len == 0)
            goto invalid;
        t->type = TOKEN_COMMIT_HASH;
        return;
    }
    if (c == '-') {
        if (t->type >= TOKEN_REVISION_NO || t->p[1] != 'r')
            goto invalid;
        t->p += 2;
        t->type = TOKEN_REVISION_NO;
        apk_digits(t);
        return;
    }
invalid:
    t->type = TOKEN_INVALID;
}

/* Compares two tokens of the same type. */
static int apk_token_cmp(const struct apk_tok *a, const struct apk_tok *b)
{
    switch (a->type) {
    case TOKEN_DIGIT:
        /* A leading zero on either side makes it a string compare (Gentoo). */
        if (a->value[0] == '0' || b->value[0] == '0')
            return wh_version_bytecmp(a->value, a->len, b->value, b->len);
        /* fall through */
    case TOKEN_INITIAL_DIGIT:
    case TOKEN_SUFFIX_NO:
    case TOKEN_REVISION_NO:
        return wh_version_numcmp(a->value, a->len, b->value, b->len);
    case TOKEN_LETTER:
        return (unsigned char)a->value[0] - (unsigned char)b->value[0];
    case TOKEN_SUFFIX:
        return a->suffix - b->suffix;
    default:
        return wh_version_bytecmp(a->value, a->len, b->value, b->len);
    }
}

int wh_version_apk_cmp(const char *a, const char *b)
{
    struct apk_tok ta, tb;

    for (apk_first(&ta, a), apk_first(&tb, b); ta.type == tb.type && ta.type < TOKEN_END;
         apk_next(&ta), apk_next(&tb)) {
        int r = apk_token_cmp(&ta, &tb);
        if (r != 0)
            return wh_version_sign(r);
    }
    if (ta.type == tb.type)
        return 0;
    /* Equal so far: the longer one is newer unless it goes on with a
     * pre-release suffix; otherwise the token type decides. */
    if (ta.type == TOKEN_SUFFIX && ta.suffix < SUFFIX_NONE)
        return -1;
    if (tb.type == TOKEN_SUFFIX && tb.suffix < SUFFIX_NONE)
        return 1;
    return ta.type > tb.type ? -1 : 1;
}

bool wh_version_apk_valid(const char *v)
{
    struct apk_tok t;

    for (apk_first(&t, v); t.type < TOKEN_END; apk_next(&t))
        ;
    return t.type == TOKEN_END;
}
