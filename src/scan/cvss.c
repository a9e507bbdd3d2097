/*
 * cvss.c: CVSS v3.0/v3.1 base score from a vector string (FIRST CVSS v3.1
 * specification §7.1 formulas and Appendix A "Roundup"), and the NVD
 * severity buckets. Temporal and environmental metrics are ignored.
 */
#include "scan/scan.h"

#include <math.h>
#include <string.h>
#include <strings.h>

/* Smallest number with one decimal that is >= x, free of float noise (spec Appendix A). */
static double roundup(double x)
{
    long long i = llround(x * 100000.0);
    if (i % 10000 == 0)
        return (double)i / 100000.0;
    return (double)(i / 10000 + 1) / 10.0;
}

int wh_cvss3_score(double *out, const char *vector)
{
    double av = -1, ac = -1, pr = -1, ui = -1, c = -1, in = -1, a = -1;
    int scope = -1; /* 0 unchanged, 1 changed */
    char prv = 0;
    if (!vector || strncmp(vector, "CVSS:3.", 7) != 0)
        return WH_EINVALID;
    const char *p = strchr(vector, '/');
    while (p && *p == '/') {
        p++;
        const char *colon = strchr(p, ':');
        if (!colon || !colon[1])
            return WH_EINVALID;
        size_t kl = (size_t)(colon - p);
        char v = colon[1];
#define K(s) (kl == strlen(s) && strncmp(p, s, kl) == 0)
        if (K("AV"))
            av = v == 'N' ? 0.85 : v == 'A' ? 0.62 : v == 'L' ? 0.55 : v == 'P' ? 0.2 : -1;
        else if (K("AC"))
            ac = v == 'L' ? 0.77 : v == 'H' ? 0.44 : -1;
        else if (K("PR"))
            prv = v;
        else if (K("UI"))
            ui = v == 'N' ? 0.85 : v == 'R' ? 0.62 : -1;
        else if (K("S"))
            scope = v == 'U' ? 0 : v == 'C' ? 1 : -1;
        else if (K("C"))
            c = v == 'H' ? 0.56 : v == 'L' ? 0.22 : v == 'N' ? 0 : -1;
        else if (K("I"))
            in = v == 'H' ? 0.56 : v == 'L' ? 0.22 : v == 'N' ? 0 : -1;
        else if (K("A"))
            a = v == 'H' ? 0.56 : v == 'L' ? 0.22 : v == 'N' ? 0 : -1;
#undef K
        p = strchr(colon, '/');
    }
    if (scope < 0)
        return WH_EINVALID;
    if (prv == 'N')
        pr = 0.85;
    else if (prv == 'L')
        pr = scope ? 0.68 : 0.62;
    else if (prv == 'H')
        pr = scope ? 0.5 : 0.27;
    if (av < 0 || ac < 0 || pr < 0 || ui < 0 || c < 0 || in < 0 || a < 0)
        return WH_EINVALID;
    double iss = 1 - (1 - c) * (1 - in) * (1 - a);
    double impact = scope ? 7.52 * (iss - 0.029) - 3.25 * pow(iss - 0.02, 15) : 6.42 * iss;
    double expl = 8.22 * av * ac * pr * ui;
    if (impact <= 0) {
        *out = 0;
        return 0;
    }
    double base = scope ? fmin(1.08 * (impact + expl), 10) : fmin(impact + expl, 10);
    *out = roundup(base);
    return 0;
}

enum wh_severity wh_severity_from_score(double score)
{
    if (score >= 9.0)
        return WH_SEV_CRITICAL;
    if (score >= 7.0)
        return WH_SEV_HIGH;
    if (score >= 4.0)
        return WH_SEV_MEDIUM;
    if (score > 0)
        return WH_SEV_LOW;
    return WH_SEV_UNKNOWN;
}

static const char *const sev_names[] = {"Unknown", "Negligible", "Low", "Medium", "High", "Critical"};

const char *wh_severity_name(enum wh_severity s)
{
    return (unsigned)s <= WH_SEV_CRITICAL ? sev_names[s] : "Unknown";
}

int wh_severity_parse(enum wh_severity *out, const char *s)
{
    for (int i = 0; i <= WH_SEV_CRITICAL; i++)
        if (strcasecmp(s, sev_names[i]) == 0) {
            *out = (enum wh_severity)i;
            return 0;
        }
    if (strcasecmp(s, "moderate") == 0) {
        *out = WH_SEV_MEDIUM;
        return 0;
    }
    return WH_EINVALID;
}
