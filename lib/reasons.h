/* reasons.h -- the catalogue of machine-readable error reasons (lib/reasons.def) as C: for each
 * id (reason_id_t, status.h) its name, usual gRPC code and meaning, and a lookup by name. */
#ifndef LOYALTY_REASONS_H
#define LOYALTY_REASONS_H

#include <stdbool.h>
#include <stddef.h>

#include "status.h"

/** One catalogued reason: `name` as sent in `loyalty-error-reason`. */
typedef struct reason_info {
    const char *name;
    status_code_t code;
    const char *meaning;
} reason_info_t;

/** The reason with this id; id must be a reason (not REASON_NONE) below REASON_COUNT. */
const reason_info_t *reason_info(reason_id_t id);

/** The catalogued reason with this exact name, or NULL. Linear: for checks, not hot paths. */
const reason_info_t *reason_find(const char *name);

/** True when `name` is catalogued or belongs to a catalogued family (INVALID_<FIELD>). */
bool reason_is_known(const char *name);

#endif
