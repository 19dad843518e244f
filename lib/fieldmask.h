/* fieldmask.h -- the update masks of every Update* RPC (docs/architecture.md#conventions,
 * AIP-134): which fields of the message being updated a google.protobuf.FieldMask names, and
 * copying just those from the request onto the current value. Paths are top-level field names
 * of that message; a oneof member ("percent_off") is named by its own field. */
#ifndef LOYALTY_FIELDMASK_H
#define LOYALTY_FIELDMASK_H

#include "google/protobuf/field_mask.pb-c.h"
#include "status.h"

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stdint.h>

/** At most this many fields in a message an update mask can name (bits of `fields`). */
#define FIELDMASK_FIELDS_MAX 64

/** The fields a mask names: bit i is the i-th field of `desc` (its fields[] order). */
typedef struct fieldmask {
    const ProtobufCMessageDescriptor *desc;
    uint64_t fields;
} fieldmask_t;

/** Checks `mask` against `desc`: NULL or no paths is INVALID_ARGUMENT UPDATE_MASK_REQUIRED; a
 *  path that is no field of `desc` is UPDATE_MASK_UNKNOWN_FIELD, a field not in `updatable`
 *  (NULL-terminated field names; NULL = every field) UPDATE_MASK_IMMUTABLE_FIELD; each message
 *  names the path. A path named twice counts once. */
status_t fieldmask_parse(const Google__Protobuf__FieldMask *mask,
                         const ProtobufCMessageDescriptor *desc, const char *const *updatable,
                         fieldmask_t *out);

/** True when the mask names the field `name` (a field of its descriptor). */
bool fieldmask_has(const fieldmask_t *m, const char *name);

/** Copies the named fields from `src` onto `dst` (both of the mask's descriptor), shallowly:
 *  strings, sub-messages and repeated arrays are shared with `src`, which must outlive `dst`'s
 *  use. A oneof member named in the mask is set on `dst` when `src` has it, and clears the
 *  oneof on `dst` when `dst` had that member and `src` has not. */
void fieldmask_apply(const fieldmask_t *m, ProtobufCMessage *dst, const ProtobufCMessage *src);

#endif
