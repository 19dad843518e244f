/* reasons.h -- the catalogue of machine-readable error reasons (lib/reasons.def) as C: one id
 * per reason, its name, usual gRPC code and meaning, and a lookup by name. */
#ifndef LOYALTY_REASONS_H
#define LOYALTY_REASONS_H

#include <stdbool.h>
#include <stddef.h>

#include "status.h"

typedef enum reason_id {
#define REASON(name, code, meaning) REASON_##name,
#define REASON_FAMILY(prefix, code, meaning)
#include "reasons.def"
#undef REASON_FAMILY
#undef REASON
    REASON_COUNT
} reason_id_t;

/** One catalogued reason: `name` as sent in `loyalty-error-reason`. */
typedef struct reason_info {
    const char *name;
    status_code_t code;
    const char *meaning;
} reason_info_t;

/** The reason with this id; id must be below REASON_COUNT. */
const reason_info_t *reason_info(reason_id_t id);

/** The catalogued reason with this exact name, or NULL. Linear: for checks, not hot paths. */
const reason_info_t *reason_find(const char *name);

/** True when `name` is catalogued or belongs to a catalogued family (INVALID_<FIELD>). */
bool reason_is_known(const char *name);

#endif
