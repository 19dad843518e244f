/* audit.h -- the audit trail of configuration changes (README "Audit trail"): which RPCs are
 * configuration changes, and what the runtime writes for one of them inside its transaction
 * (lib/migrations/004_audit.sql holds the table and the row triggers). */
#ifndef LOYALTY_AUDIT_H
#define LOYALTY_AUDIT_H

#include "db.h"
#include "status.h"

#include <stdbool.h>

/** True when the RPC at `path` ("/loyalty.v1.MemberService/CreateTier") changes configuration:
 *  tiers, plans, rules, promotions, codes, coupon templates, campaigns, settings, manual
 *  adjustments, saga retries. */
bool audit_is_audited(const char *path);

/** Those RPCs' paths, ending with NULL. */
extern const char *const audit_methods[];

/** Inside the call's transaction, before its handler: records the CALL row and sets the
 *  transaction-local context (loyalty.audit_*) that the configuration tables' triggers copy
 *  into the rows of what changed. One statement. */
status_t audit_begin(db_t *db, const char *merchant_id, const char *credential_id, const char *rpc,
                     const char *idempotency_key, const char *request_id);

#endif
