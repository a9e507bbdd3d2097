/*
 * auth: who a caller is and what it may do, without any HTTP. Password hashes
 * (argon2id), robot secrets, the token signing key and its libtrust key id,
 * registry bearer tokens (JWT signed with ES256, RFC 7519/7515/7518, claims as
 * in the Docker token authentication spec), scope strings, Basic credentials,
 * Harbor's role/permission matrix, and throttling of failed logins. The token
 * service, the /v2 challenge and the session cookie live in the HTTP layers and
 * call in here.
 */
#ifndef WH_AUTH_H
#define WH_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/common.h"

/* ======================= passwords and secrets (password.c) ======================= */

/*
 * argon2id parameters for new hashes: 5 passes over 7 MiB with one lane, one
 * of OWASP's equivalent minimum settings (m=7 MiB, t=5 buys what m=19 MiB,
 * t=2 does with less memory), a 16-byte random salt and a 32-byte tag.
 * Hashing costs ~30-60 ms and 7 MiB per login; computations run one at a
 * time (so memory stays bounded under a login storm) and the throttle below
 * bounds how often one user can make the server pay that. Hashes made with
 * other parameters (they are in the PHC string) still verify.
 */
#define WH_AUTH_ARGON2_T 5
#define WH_AUTH_ARGON2_M_KIB (7 * 1024)
#define WH_AUTH_ARGON2_P 1
#define WH_AUTH_ARGON2_SALT_LEN 16
#define WH_AUTH_ARGON2_HASH_LEN 32
/* Stored hashes are only verified if their cost stays within these bounds. */
#define WH_AUTH_ARGON2_M_KIB_MAX (256 * 1024)
#define WH_AUTH_ARGON2_T_MAX 16
#define WH_AUTH_ARGON2_P_MAX 8
#define WH_AUTH_HASH_MAX 160    /* encoded "$argon2id$v=19$m=..,t=..,p=..$salt$hash" + NUL */
#define WH_AUTH_PASSWORD_MAX 1024 /* longest password accepted at all, in bytes */

/*
 * Hashes `password` with argon2id (the parameters above) and a fresh random
 * salt into `out` (cap bytes, WH_AUTH_HASH_MAX is enough) as the PHC string
 * "$argon2id$v=19$m=7168,t=5,p=1$<salt b64>$<hash b64>".
 * Returns 0, WH_EINVALID (password longer than WH_AUTH_PASSWORD_MAX),
 * WH_ETOOBIG (`cap` too small) or WH_ERROR.
 */
int wh_auth_password_hash(char *out, size_t cap, const char *password);

/*
 * Checks `password` against an encoded argon2id hash; the tag comparison is
 * constant-time. Anything other than a well-formed argon2id string within the
 * cost bounds above fails. When `encoded` is NULL (unknown user) a dummy hash is
 * verified anyway so that the reply takes as long as for a known user.
 * Returns 0 on a match, else WH_EDENIED (with the reason as error message).
 */
int wh_auth_password_verify(const char *encoded, const char *password);

/* Harbor's rule for local user passwords (the message is Harbor's). */
#define WH_AUTH_PASSWORD_POLICY_MSG                                                              \
    "The password must be at least 8 characters long with at least one uppercase letter, one " \
    "lowercase letter and one number"
#define WH_AUTH_PASSWORD_POLICY_MIN 8
#define WH_AUTH_PASSWORD_POLICY_MAX 128
/*
 * Returns 0 if `pw` has 8..128 bytes with at least one ASCII upper-case letter,
 * one lower-case letter and one digit, else WH_EINVALID with
 * WH_AUTH_PASSWORD_POLICY_MSG as the error message.
 */
int wh_auth_password_policy(const char *pw);

/*
 * Harbor's rule for user names, shared by the REST API and the command line
 * (names.c): 1..255 bytes, none of , " ~ # % $ : / or a space, no control
 * byte (a Basic header could not carry it), and not starting with "robot$"
 * (robot accounts' names). Returns 0 or WH_EINVALID with the reason as the
 * error message.
 */
int wh_auth_username_check(const char *name);

#define WH_AUTH_SECRET_LEN 32 /* generated robot secrets, without the NUL */
/*
 * Writes a fresh random secret of WH_AUTH_SECRET_LEN characters from
 * [A-Za-z0-9] (about 190 bits) plus a NUL into `out`; it always passes
 * wh_auth_secret_policy. Aborts if the system RNG fails.
 */
void wh_auth_secret_new(char out[WH_AUTH_SECRET_LEN + 1]);

/*
 * Harbor's rule for user-supplied robot secrets: 8..128 bytes, at least one
 * lower-case letter, one upper-case letter and one digit.
 * Returns 0 or WH_EINVALID with the reason.
 */
int wh_auth_secret_policy(const char *s);

/*
 * Compares two byte strings in time that depends only on their lengths' sum,
 * not on where they differ (both are hashed, the digests compared with
 * CRYPTO_memcmp). True if equal.
 */
bool wh_auth_consttime_eq(const void *a, size_t alen, const void *b, size_t blen);
/*
 * Compares `n` bytes of `a` and `b` in time that depends only on `n`: for
 * secrets whose length is fixed and known (digests, stamps), without the
 * two hashes of wh_auth_consttime_eq. True if equal.
 */
bool wh_auth_consttime_eq_n(const void *a, const void *b, size_t n);

/* ============================ signing key (keys.c) ============================ */

typedef struct wh_auth_keys wh_auth_keys;

/* libtrust key id: 12 groups of 4 base32 characters joined by ':' (59 chars). */
#define WH_AUTH_KID_MAX 64

/*
 * Loads the token signing key from `<dir>/token.key` (PEM, an ECDSA P-256
 * private key), or creates it there on first start: `dir` is created with mode
 * 0700, the key is written to a 0600 temporary file, fsync'ed and linked into
 * place without replacing a key another process may have created meanwhile
 * (then that one is loaded), and the directory is fsync'ed.
 * The key id is the libtrust fingerprint of the public key: SHA-256 of the DER
 * SubjectPublicKeyInfo, the first 30 bytes in base32 (RFC 4648 alphabet, no
 * padding), in groups of 4 separated by ':'.
 * Returns 0, WH_EINVALID (the file is not a P-256 key) or WH_ERROR (I/O).
 * `*out` is the caller's; free with wh_auth_keys_free.
 */
int wh_auth_keys_load_or_create(wh_auth_keys **out, const char *dir);
/*
 * Loads the token signing key from the file `path` (auth.token_key: one key
 * shared by the nodes of a registry), which must exist: a key made by one
 * node alone would not be the others'. As wh_auth_keys_load_or_create
 * otherwise; WH_ENOTFOUND when there is no such file.
 */
int wh_auth_keys_load(wh_auth_keys **out, const char *path);
void wh_auth_keys_free(wh_auth_keys *k);
/* The key id (borrowed from `k`). */
const char *wh_auth_keys_kid(const wh_auth_keys *k);
/* The public key as PEM SubjectPublicKeyInfo (borrowed from `k`). */
const char *wh_auth_keys_public_pem(const wh_auth_keys *k);

/* ============================= tokens (jwt.c) ============================= */

#define WH_AUTH_ISSUER "wharf-token-issuer" /* `iss` of the tokens wharf issues */
#define WH_AUTH_SERVICE "wharf"             /* `aud`, and the service name in challenges */
#define WH_AUTH_SERVICE_HARBOR "harbor-registry" /* Harbor's service name, accepted too */
/* `aud` of refresh tokens, never an access token's */
#define WH_AUTH_REFRESH_AUDIENCE "wharf-refresh"
#define WH_TOKEN_ACCESS_MAX 16              /* access entries in one token */
#define WH_TOKEN_MAX 8192                   /* bytes of a compact JWT, either way */
#define WH_TOKEN_LEEWAY_S 30                /* clock skew tolerated on exp and nbf */

/* Action bits of an access entry. */
enum {
    WH_ACT_PULL = 1u << 0,
    WH_ACT_PUSH = 1u << 1,
    WH_ACT_DELETE = 1u << 2,
    WH_ACT_SCANNER_PULL = 1u << 3,
    WH_ACT_ALL = 1u << 4, /* "*": in a granted set it stands for every action */
};

/* One resource and the actions on it ("repository", "library/nginx", pull|push). */
struct wh_access {
    char type[32];    /* "repository", "registry", or another type, verbatim */
    char name[256];   /* resource name, e.g. "library/nginx" or "catalog" */
    unsigned actions; /* WH_ACT_* bits */
};

struct wh_token_claims {
    char iss[64];  /* issuer */
    char sub[256]; /* subject: the user or robot name ("" for anonymous) */
    char aud[64];  /* audience; on verify, the one that matched */
    int64_t iat, nbf, exp; /* seconds since the epoch (0: absent on verify) */
    char jti[40];  /* token id */
    char bind[96]; /* claim "wharf_bind": the account a refresh token is bound to ("" none) */
    struct wh_access access[WH_TOKEN_ACCESS_MAX];
    size_t naccess;
};

/*
 * Fills `c` for a token issued by wharf now: iss WH_AUTH_ISSUER, aud
 * WH_AUTH_SERVICE, iat = nbf = now_s, exp = now_s + ttl_s, a random 16-char
 * jti, no access entries. Returns 0 or WH_EINVALID (`sub` too long).
 */
int wh_auth_claims_init(struct wh_token_claims *c, const char *sub, int64_t now_s, int64_t ttl_s);

/*
 * Signs `c` as a compact JWS: header {"alg":"ES256","typ":"JWT","kid":<kid>},
 * claims iss, sub, aud (a string), exp, nbf, iat, jti, wharf_bind (when
 * `bind` is set) and access (as in the
 * Docker token spec: [{"type","name","actions":[..]}]); the signature is the
 * raw 64-byte r||s of RFC 7518 §3.4. `*out` is the caller's (free()).
 * Returns 0, WH_EINVALID (naccess over the max, a string not terminated in its
 * field), WH_ETOOBIG (the token would exceed WH_TOKEN_MAX) or WH_ERROR.
 */
int wh_auth_token_sign(char **out, const wh_auth_keys *k, const struct wh_token_claims *c);

/*
 * Verifies the compact JWT of `len` bytes against `k` and decodes its claims
 * into `out`. Rejected, each with WH_EDENIED and a reason as error message:
 * longer than WH_TOKEN_MAX; not three base64url parts; a header that is not a
 * JSON object, with an `alg` other than "ES256" ("none", HS*, RS* … all
 * refused) or a `kid` other than `k`'s, or with a `crit` member; a signature
 * that is not 64 bytes or does not verify; claims that are not a JSON object or
 * have a member of the wrong type or too long for its field; `iss` other than
 * `issuer`; `aud` (a string or an array of strings) not containing
 * `audience`; no `exp`, or exp + WH_TOKEN_LEEWAY_S <= now_s (expired);
 * nbf - WH_TOKEN_LEEWAY_S > now_s (not yet valid); more than
 * WH_TOKEN_ACCESS_MAX access entries. Unknown actions inside an access entry
 * are dropped. Returns 0 or WH_EDENIED; `*out` is only meaningful on 0.
 */
int wh_auth_token_verify(struct wh_token_claims *out, const wh_auth_keys *k, const char *token,
                         size_t len, const char *issuer, const char *audience, int64_t now_s);

/*
 * True if the claims grant every action in `actions` on (`type`, `name`):
 * the actions of all entries naming that resource are united, and a granted
 * WH_ACT_ALL ("*") allows anything, as in the distribution's token checker.
 * `actions` == 0 is never allowed.
 */
bool wh_auth_token_allows(const struct wh_token_claims *c, const char *type, const char *name,
                          unsigned actions);

/*
 * base64url without padding (RFC 7515 §2). Encode writes a NUL-terminated
 * string; returns 0 or WH_ETOOBIG. Decode accepts only the canonical form (no
 * '=', no whitespace, unused trailing bits zero); returns 0, WH_EINVALID or
 * WH_ETOOBIG (more than `cap` bytes), the decoded length in `*outlen`.
 */
int wh_auth_b64url_encode(char *out, size_t cap, const void *p, size_t n);
int wh_auth_b64url_decode(void *out, size_t cap, size_t *outlen, const char *s, size_t len);

/* ========================= scopes and Basic (scope.c) ========================= */

#define WH_AUTH_SCOPE_MAX 512 /* bytes of one scope string */

/*
 * Parses one scope "type:name:actions" (Docker token spec), e.g.
 * "repository:library/nginx:pull,push" or "registry:catalog:*". The name is
 * everything between the first and the last ':' (so "repository(plugin)" types
 * and names with ':' survive). Actions are comma-separated; unknown ones are
 * dropped, an empty list gives 0. Returns 0 or WH_EINVALID (fewer than two
 * ':', empty type or name, a field too long for `out`, control characters or
 * spaces, longer than WH_AUTH_SCOPE_MAX).
 */
int wh_auth_scope_parse(struct wh_access *out, const char *scope);

#define WH_AUTH_ACTIONS_STR_MAX 32 /* "pull,push,delete,scanner-pull,*" + NUL */
/* Formats action bits as "pull,push,delete,scanner-pull,*" (that order, only
 * the set ones; "" for none). Returns 0 or WH_ETOOBIG. */
int wh_auth_actions_str(char *out, size_t cap, unsigned actions);
/* One action name to its bit ("pull" → WH_ACT_PULL), 0 if unknown. */
unsigned wh_auth_action_parse(const char *s, size_t len);

/*
 * Parses an `Authorization: Basic <base64(user:pass)>` header value (the scheme
 * is case-insensitive, RFC 7617). The user is everything before the first ':',
 * the password the rest. Returns 0 or WH_EINVALID (other scheme, bad base64,
 * no ':', empty user, a NUL or control byte in the user, user or password not
 * fitting with its NUL in `ucap`/`pcap`). On failure `user` and `pass` are
 * emptied.
 */
int wh_auth_basic_parse(char *user, size_t ucap, char *pass, size_t pcap,
                        const char *authorization_header);

/* ============================== RBAC (rbac.c) ============================== */

/* Harbor's project role ids (the numbers are stored, do not renumber). */
enum wh_role {
    WH_ROLE_NONE = 0, /* not a member */
    WH_ROLE_PROJECT_ADMIN = 1,
    WH_ROLE_DEVELOPER = 2,
    WH_ROLE_GUEST = 3,
    WH_ROLE_MAINTAINER = 4,
    WH_ROLE_LIMITED_GUEST = 5,
};

enum wh_rbac_res {
    WH_RBAC_RES_PROJECT,
    WH_RBAC_RES_METADATA,
    WH_RBAC_RES_MEMBER,
    WH_RBAC_RES_REPOSITORY,
    WH_RBAC_RES_ARTIFACT,
    WH_RBAC_RES_TAG,
    WH_RBAC_RES_SCAN,
    WH_RBAC_RES_SBOM,
    WH_RBAC_RES_ROBOT,
    WH_RBAC_RES_LOG,
    WH_RBAC_RES_QUOTA,
    WH_RBAC_RES_LABEL,
    WH_RBAC_RES_TAG_RETENTION,
    WH_RBAC_RES_IMMUTABLE_TAG,
    WH_RBAC_RES_WEBHOOK,
    WH_RBAC_RES_SCANNER,
    WH_RBAC_RES_PREHEAT_POLICY,
    WH_RBAC_RES_CVE_EXPORT,
    WH_RBAC_RES_ACCESSORY,
    WH_RBAC_RES_ARTIFACT_ADDITION,
    WH_RBAC_RES_ARTIFACT_LABEL,
    WH_RBAC_RES_CONFIGURATION,
    WH_RBAC_RES_COUNT
};

enum wh_rbac_act {
    WH_RBAC_ACT_READ,
    WH_RBAC_ACT_LIST,
    WH_RBAC_ACT_CREATE,
    WH_RBAC_ACT_UPDATE,
    WH_RBAC_ACT_DELETE,
    WH_RBAC_ACT_PULL,
    WH_RBAC_ACT_PUSH,
    WH_RBAC_ACT_OPERATE,
    WH_RBAC_ACT_STOP,
    WH_RBAC_ACT_SCANNER_PULL,
    WH_RBAC_ACT_COUNT
};

/*
 * Whether a caller may do `act` on `res` inside one project. A system admin may
 * do everything (`anonymous` wins over `sysadmin` if both are set). Otherwise the caller gets the permissions of `role` (ignored
 * when `anonymous`) per Harbor's matrix, plus, when `project_public`, the
 * public-project set (project read, label read/list, repository list/pull,
 * scan read, scanner read, tag list, artifact read/list, artifact-addition
 * read, accessory list) which anonymous callers get too. Anonymous callers get
 * nothing on private projects; `scanner-pull` comes only from robot policies,
 * never from a role.
 */
bool wh_rbac_allowed(enum wh_role role, bool project_public, bool sysadmin, bool anonymous,
                     enum wh_rbac_res res, enum wh_rbac_act act);

/* Whether (`res`, `act`) is a project policy of Harbor's matrix at all (some
 * role or the public-project set holds it): the set a system administrator
 * has, and what /users/current/permissions enumerates. */
bool wh_rbac_policy_defined(enum wh_rbac_res res, enum wh_rbac_act act);

/* WH_ACT_PULL/PUSH/DELETE/SCANNER_PULL bits the caller has on a repository of
 * the project; the token service grants the intersection with the request. */
unsigned wh_rbac_repo_actions(enum wh_role role, bool project_public, bool sysadmin,
                              bool anonymous);

/* "projectAdmin", "maintainer", "developer", "guest", "limitedGuest"; NULL for
 * WH_ROLE_NONE and unknown values. */
const char *wh_rbac_role_name(enum wh_role role);
/* The inverse (exact, case-sensitive). Returns 0 or WH_EINVALID. */
int wh_rbac_role_parse(enum wh_role *out, const char *s);
/* Harbor's resource and action names ("tag-retention", "scanner-pull"); NULL
 * out of range. Parse returns 0 or WH_EINVALID. */
const char *wh_rbac_res_name(enum wh_rbac_res res);
const char *wh_rbac_act_name(enum wh_rbac_act act);
int wh_rbac_res_parse(enum wh_rbac_res *out, const char *s);
int wh_rbac_act_parse(enum wh_rbac_act *out, const char *s);

/* ======================= failed-login throttle (throttle.c) ======================= */

/*
 * Policy. Failures are counted per `user` key and, separately, per `addr`
 * key (wharf passes the (name, address) pair and the address), each within a
 * window of WH_AUTH_THROTTLE_WINDOW_MS from its first failure (an older count
 * starts over). The first WH_AUTH_THROTTLE_FREE failures of a user key, and
 * the first WH_AUTH_THROTTLE_ADDR_FREE of an address key, cost nothing; after
 * the n-th failure beyond them (n = 1, 2, …) the next attempt must wait
 * WH_AUTH_THROTTLE_BASE_MS * 2^(n-1), at most WH_AUTH_THROTTLE_CAP_MS, counted
 * from that failure. The delay of an attempt is the larger of its two keys'.
 * A success clears the user key's count only: an address that guesses many
 * names cannot wash its record clean with one account it owns.
 *
 * The counts live in a store the caller provides (wharf's is the database,
 * so that every node of a cluster counts the same failures). Keys reach the
 * store as ids: the SHA-256 of the kind and key, never the name or address.
 * Once an address has WH_AUTH_THROTTLE_ADDR_KEYS failures in its window, a
 * failure under a name it has not failed with before counts for the address
 * only, so one address cannot fill the store with keys. A refused attempt
 * (wh_auth_throttle_hold) is written unless the key's latest one is less
 * than WH_AUTH_THROTTLE_HOLD_MS old, so a storm of them is mostly reads and
 * a delay restarts at most that much early.
 */
#define WH_AUTH_THROTTLE_FREE 5
#define WH_AUTH_THROTTLE_ADDR_FREE 20
#define WH_AUTH_THROTTLE_WINDOW_MS (15 * 60 * 1000)
#define WH_AUTH_THROTTLE_BASE_MS 1000
#define WH_AUTH_THROTTLE_CAP_MS 30000
#define WH_AUTH_THROTTLE_ADDR_KEYS 200
#define WH_AUTH_THROTTLE_HOLD_MS 100
#define WH_AUTH_THROTTLE_ID_HEX 64

/* The failures counted for one key (all 0: none). */
struct wh_auth_fail_count {
    int64_t fails;    /* in the window */
    int64_t first_ms; /* the window's first failure */
    int64_t last_ms;  /* the latest failure or refused attempt */
};

/*
 * Where the counts are kept. Each function returns 0 or a negative WH_E*
 * code; `ids` are WH_AUTH_THROTTLE_ID_HEX hex digits, n is 1 or 2.
 */
struct wh_auth_throttle_store {
    /* Reads the counts of ids[0..n) into out[0..n) (zeros for none). */
    int (*get)(void *payload, const char *const ids[], size_t n, struct wh_auth_fail_count *out);
    /* Counts a failure at now_ms for each of ids[0..n), atomically per key: a
     * key whose window (window_ms since its first failure) is over starts at 1. */
    int (*fail)(void *payload, const char *const ids[], size_t n, int64_t now_ms,
                int64_t window_ms);
    /* Sets the key's latest failure to now_ms (never backwards); no count, no row. */
    int (*hold)(void *payload, const char *id, int64_t now_ms);
    /* Forgets the key. */
    int (*clear)(void *payload, const char *id);
};

/* What a check read, so that the outcome of the attempt costs no second read. */
struct wh_auth_throttle_seen {
    struct wh_auth_fail_count user, addr;
    bool valid; /* false: nothing was read (then the next calls act without it) */
};

typedef struct wh_auth_throttle wh_auth_throttle;
/* A throttle over `store` (borrowed, as `payload`); free with wh_auth_throttle_free. */
wh_auth_throttle *wh_auth_throttle_new(const struct wh_auth_throttle_store *store, void *payload);
void wh_auth_throttle_free(wh_auth_throttle *t);
/* The store id of `key` of kind `kind` ('u' or 'a'): WH_AUTH_THROTTLE_ID_HEX digits + NUL. */
void wh_auth_throttle_id(char *out, char kind, const char *key);
/*
 * Milliseconds the caller must still wait before an attempt for `user` from
 * `addr` is considered (0: go ahead): one read of the store. Either key may
 * be NULL (not tracked). `seen` (may be NULL) keeps what was read for
 * wh_auth_throttle_fail and _ok. A store that cannot be read counts as no
 * failures (logged): the password check still stands between a caller and
 * an account.
 */
int64_t wh_auth_throttle_delay_ms(wh_auth_throttle *t, const char *user, const char *addr,
                                  int64_t now_ms, struct wh_auth_throttle_seen *seen);
/* The delay of counts already read (no store access). */
int64_t wh_auth_throttle_delay_of(const struct wh_auth_throttle_seen *seen, int64_t now_ms);
/* Records a failed attempt; `seen` (may be NULL) is what the check read. */
void wh_auth_throttle_fail(wh_auth_throttle *t, const char *user, const char *addr,
                           int64_t now_ms, const struct wh_auth_throttle_seen *seen);
/*
 * Records an attempt made while throttled: the keys' current delays start
 * again from `now_ms` (their counts unchanged), so a client that ignores
 * Retry-After and keeps trying stays refused until it pauses. `seen` is
 * what the check that refused it read.
 */
void wh_auth_throttle_hold(wh_auth_throttle *t, const char *user, const char *addr,
                           int64_t now_ms, const struct wh_auth_throttle_seen *seen);
/*
 * Records a successful attempt (clears the user's count; see above): a write
 * only when `seen` shows failures of that key, or `seen` is NULL.
 */
void wh_auth_throttle_ok(wh_auth_throttle *t, const char *user, const char *addr, int64_t now_ms,
                         const struct wh_auth_throttle_seen *seen);

#endif
