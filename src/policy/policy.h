/*
 * policy/: project policies enforced at pull time. For now the vulnerability
 * gate of Harbor's "Prevent vulnerable images from running"
 * and the CVE allowlists it honours.
 */
#ifndef WH_POLICY_H
#define WH_POLICY_H

#include <stdbool.h>
#include <stdint.h>

#include "db/db.h"

#define WH_POLICY_NAMED_MAX 5 /* blocking CVEs named in a refusal, then "and N more" */

/* True when the project metadata JSON text has prevent_vul on ("true" or "1", any case). */
bool wh_policy_prevent_vul(const char *metadata);

/*
 * Decides whether artifact `artifact_id` of a project with prevent_vul on
 * may be pulled, from the project's `metadata` and own `cve_allowlist` (JSON
 * texts), the system allowlist, the artifact's scan and report, at `now_s`.
 * The caller has already ruled out the bypasses that depend on the caller.
 * Returns 0 (allowed), WH_EDENIED with Harbor's message in `*msg_out`
 * (malloc'ed, the caller's) or WH_ERROR.
 */
int wh_policy_gate(char **msg_out, wh_db *db, const char *metadata, const char *cve_allowlist,
                   int64_t artifact_id, int64_t now_s);

/*
 * Validates an allowlist body ({"items":[{"cve_id":..}],"expires_at":..}) into
 * the stored shape (`*out`, new reference, set even on error). On a bad body
 * returns WH_EINVALID with Harbor's message in `msg` (`cap` bytes).
 */
struct json_t;
int wh_policy_allowlist_parse(struct json_t **out, struct json_t *in, char *msg, size_t cap);

/*
 * wh_policy_allowlist_parse, then the stored text: `*out` is the compact JSON
 * (malloc'ed, the caller's; NULL on error). WH_EINVALID with the message in
 * `msg` (`cap` bytes) on a bad body or one whose text does not fit the
 * WH_PROJECT_META_MAX bytes a list is stored in. What the API and the command
 * line both store.
 */
int wh_policy_allowlist_text(char **out, struct json_t *in, char *msg, size_t cap);

/*
 * The `severity` metadata as stored: `in` lower-cased into `out` (`cap`
 * bytes, at least 16) when it is one of none, low, medium, high, critical
 * (any case); WH_EINVALID otherwise (`out` then holds "").
 */
int wh_policy_severity_norm(char *out, size_t cap, const char *in);

#endif
