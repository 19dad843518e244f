/* credentials.h -- per-merchant scoped credentials with roles (README "Credentials"): the
 * credential file's format, the lookup of a presented bearer token by its SHA-256, the
 * decision whether a credential may call a method for a merchant, and the process-wide set
 * that is re-read when the file changes (or on SIGHUP) without a restart. */
#ifndef LOYALTY_CREDENTIALS_H
#define LOYALTY_CREDENTIALS_H

#include "status.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CRED_ID_MAX 64        /* characters of a credential id */
#define CRED_DIGEST_BYTES 32  /* SHA-256 */
#define CRED_ENTRIES_MAX 4096 /* lines of a credential file that hold a credential */
#define CRED_FILE_MAX_BYTES (4 * 1024 * 1024)
#define CRED_SERVICE_ID "service" /* the id of LOYALTY_AUTH_TOKEN, the service credential */

typedef enum cred_role {
    CRED_ROLE_STOREFRONT = 1, /* the Gateway's storefront RPCs, for its merchants */
    CRED_ROLE_ADMIN,          /* every RPC of its merchants; `*` also the cross-merchant views */
    CRED_ROLE_SERVICE,        /* what services call among themselves: every merchant-scoped RPC */
} cred_role_t;

/* What a method asks of the caller's role; declared in each service's method table. */
typedef enum cred_access {
    CRED_ACCESS_ADMIN = 0,  /* admin and service credentials (the default) */
    CRED_ACCESS_STOREFRONT, /* storefront credentials too */
    CRED_ACCESS_ANY,        /* any valid credential, no merchant (server reflection) */
} cred_access_t;

typedef struct cred_entry {
    char id[CRED_ID_MAX + 1];
    cred_role_t role;
    bool every_merchant;    /* `*` */
    const char **merchants; /* sorted, merchant_count of them */
    size_t merchant_count;
    uint8_t digest[CRED_DIGEST_BYTES];
} cred_entry_t;

/* A parsed credential file: immutable once made. */
typedef struct cred_set cred_set_t;

/** Parses the text of a credential file (README "Credentials"): one credential per line as
 *  `id role merchants sha256-hex`, blanks between fields, commas between merchants, `#` to the
 *  end of the line a comment. INVALID_ARGUMENT INVALID_CREDENTIALS naming the line on any
 *  error (the set is then NULL): unknown role, bad id, merchant or digest, `*` on a storefront
 *  credential, an id or a digest given twice. */
status_t cred_set_parse(const char *text, cred_set_t **out);

/** Adds the service credential (id CRED_SERVICE_ID, every merchant) for `token`; "" adds
 *  nothing. */
status_t cred_set_add_service(cred_set_t *set, const char *token);

void cred_set_free(cred_set_t *set);
size_t cred_set_count(const cred_set_t *set);

/** The credential whose digest is `digest`, or NULL. Compares with every entry in constant
 *  time, so the time taken says nothing about how close a guess came. */
const cred_entry_t *cred_set_find(const cred_set_t *set, const uint8_t digest[CRED_DIGEST_BYTES]);

/** True when `id` can be a credential id: 1..CRED_ID_MAX of letters, digits and `- _ . : @`. */
bool cred_id_valid(const char *id);

/** SHA-256 of token[0..len). */
void cred_digest(const char *token, size_t len, uint8_t digest[CRED_DIGEST_BYTES]);

/** May `who` call a method that asks for `access` for `merchant_id`? `merchant_id` is "" when
 *  the request names none (a method without merchant_id, or a cross-merchant read). OK, or
 *  PERMISSION_DENIED ROLE_NOT_ALLOWED (the role may not call the method, or not without a
 *  merchant) or MERCHANT_NOT_ALLOWED (checked after the role; the message never says whether
 *  the merchant exists). `who` NULL is UNAUTHENTICATED. */
status_t cred_authorize(const cred_entry_t *who, cred_access_t access, const char *merchant_id);

/* ---- the process-wide set ---- */

/** Loads LOYALTY_CREDENTIALS_FILE (`path`; "" = no file: credentials_enabled() stays false
 *  and the runtime checks the shared token alone, as before) with `service_token` as the
 *  service credential, and starts the thread that re-reads the file when it changes. */
status_t credentials_start(const char *path, const char *service_token);

/** Stops the watcher thread and frees the set. */
void credentials_stop(void);

/** True when a credential file is in use. */
bool credentials_enabled(void);

/** Re-reads the file now (SIGHUP). A file that does not parse leaves the current set in
 *  place (and is logged with its line number). Returns the parse status. */
status_t credentials_reload(void);

/** Authenticates the bearer header (auth_bearer_token) against the current set: OK with the
 *  token's digest in `digest`, or UNAUTHENTICATED. */
status_t credentials_authenticate(const char *header, size_t header_len,
                                  uint8_t digest[CRED_DIGEST_BYTES]);

/** cred_authorize with the current set's credential for `digest`; its id is copied to
 *  `id_out` (CRED_ID_MAX + 1 bytes) when there is one. A credential removed since
 *  credentials_authenticate is UNAUTHENTICATED. */
status_t credentials_authorize(const uint8_t digest[CRED_DIGEST_BYTES], cred_access_t access,
                               const char *merchant_id, char *id_out);

#endif
