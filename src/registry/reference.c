/*
 * reference.c: repository names and tags, per the distribution spec's
 * grammar (spec.md, "Pulling manifests"):
 *   name      = component ("/" component)*            (at most 255 bytes)
 *   component = [a-z0-9]+ (separator [a-z0-9]+)*
 *   separator = "." | "_" | "__" | "-"+
 *   tag       = [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}
 * and Harbor's rules on top: the first component is the project, which
 * follows ^[a-z0-9]+(?:[._-][a-z0-9]+)*$, and a repository has at least one
 * component after it. A "." or ".." component cannot match the grammar, so
 * path traversal is rejected here too.
 */
#include "registry/registry.h"

#include <string.h>

static bool alnum_lower(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* Checks one component of the distribution grammar. */
static bool component_valid(const char *s, size_t len)
{
    size_t i = 0;
    if (len == 0 || !alnum_lower(s[0]) || !alnum_lower(s[len - 1]))
        return false;
    while (i < len) {
        if (alnum_lower(s[i])) {
            i++;
            continue;
        }
        /* a separator: ".", "_", "__" or a run of "-" — followed by alnum */
        if (s[i] == '.') {
            i++;
        } else if (s[i] == '_') {
            i += (i + 1 < len && s[i + 1] == '_') ? 2 : 1;
        } else if (s[i] == '-') {
            while (i < len && s[i] == '-')
                i++;
        } else {
            return false;
        }
        if (i >= len || !alnum_lower(s[i]))
            return false;
    }
    return true;
}

bool wh_ref_project_valid(const char *s, size_t len)
{
    if (len == 0 || len > 255 || !alnum_lower(s[0]) || !alnum_lower(s[len - 1]))
        return false;
    for (size_t i = 1; i < len; i++) {
        char c = s[i];
        if (alnum_lower(c))
            continue;
        if ((c == '.' || c == '_' || c == '-') && alnum_lower(s[i + 1]))
            continue; /* single separators only; s[len-1] is alnum so s[i+1] exists */
        return false;
    }
    return true;
}

size_t wh_ref_project_len(const char *name)
{
    const char *slash = strchr(name, '/');
    return slash ? (size_t)(slash - name) : strlen(name);
}

bool wh_ref_name_valid(const char *name, size_t len)
{
    size_t start = 0, ncomp = 0;
    if (len == 0 || len > WH_REPO_NAME_MAX)
        return false;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && name[i] != '/')
            continue;
        if (!component_valid(name + start, i - start))
            return false;
        if (ncomp == 0 && !wh_ref_project_valid(name, i))
            return false;
        ncomp++;
        start = i + 1;
    }
    return ncomp >= 2;
}

bool wh_ref_tag_valid(const char *s, size_t len)
{
    if (len == 0 || len > WH_TAG_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        bool word = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_';
        if (!word && (i == 0 || (c != '.' && c != '-')))
            return false;
    }
    return true;
}
