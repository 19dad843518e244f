/* audit.h -- the audit trail of configuration changes (README "Audit trail"): which RPCs are
 * configuration changes, what the runtime writes for one of them inside its transaction
 * (lib/migrations/004_audit.sql and 006 hold the table and the row triggers), how a service
 * lists its trail, and AuditService, which every service serves (lib/audit_rpc.c). */
#ifndef LOYALTY_AUDIT_H
#define LOYALTY_AUDIT_H

#include "arena.h"
#include "db.h"
#include "rpc.h"
#include "status.h"

#include "loyalty/v1/audit.pb-c.h"

#include <stdbool.h>

/** True when the RPC at `path` ("/loyalty.v1.MemberService/CreateTier") changes configuration:
 *  tiers, plans, rules, promotions, codes, coupon templates, campaigns, settings, manual
 *  adjustments, saga retries. */
bool audit_is_audited(const char *path);

/** Those RPCs' paths, ending with NULL. */
extern const char *const audit_methods[];

/** Inside the call's transaction, before its handler: records the CALL row and sets the
 *  transaction-local context (loyalty.audit_*, with the CALL row's id as loyalty.audit_call)
 *  that the configuration tables' triggers copy into the rows of what changed. One statement.
 *  `credential_id` is who acted; `via_credential_id` the credential a relayed call came with
 *  ("" when the actor called itself). */
status_t audit_begin(db_t *db, const char *merchant_id, const char *credential_id,
                     const char *via_credential_id, const char *rpc, const char *idempotency_key,
                     const char *request_id);

/** Inside an audited call's transaction: records a change no row trigger sees (a batch of
 *  generated codes is recorded as one row, not a row per code). `before_json` and
 *  `after_json` are JSON objects or NULL. Outside an audited call it records nothing. */
status_t audit_record(db_t *db, const char *merchant_id, const char *table_name, const char *op,
                      const char *before_json, const char *after_json);

/** Where a listing continues: entries strictly older than (at_us, id); `set` false = from the
 *  newest. */
typedef struct audit_position {
    bool set;
    int64_t at_us;
    int64_t id;
} audit_position_t;

/** Up to `limit` of the merchant's entries in this schema's trail recorded at or after
 *  `since_at` (unix seconds, 0 = all), newest first, from `after` on, each with its changes;
 *  `service` names the recording service in them. Entries live in `a`. */
status_t audit_list(db_t *db, arena_t *a, const char *service, const char *merchant_id,
                    int64_t since_at, audit_position_t after, int limit,
                    Loyalty__V1__AuditEntry ***entries, size_t *n_entries);

/** Entry a precedes entry b in a listing (newest first: recorded_at_us, service, id, all
 *  descending), so that listings of several services merge into one order. */
bool audit_entry_before(const Loyalty__V1__AuditEntry *a, const Loyalty__V1__AuditEntry *b);

/** The cursor of AuditService.ListAuditLog after `pos`, and back (an empty cursor: not set). */
char *audit_cursor_encode(arena_t *a, audit_position_t pos);
status_t audit_cursor_decode(arena_t *a, const char *field, const char *cursor,
                             audit_position_t *pos);

/** AuditService (audit.proto): registered by the runtime in every service (rpc_server.c);
 *  entries carry `service_name`, set once before serving. */
extern const rpc_service_t audit_service;
void audit_service_init(const char *service_name);

#endif
