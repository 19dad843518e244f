/* member_rules.h -- pure rules of member profiles: validation and normalisation of what
 * callers send, and applying an update mask. No I/O; unit-tested in tests/unit. */
#ifndef MEMBER_RULES_H
#define MEMBER_RULES_H

#include "arena.h"
#include "google/protobuf/field_mask.pb-c.h"
#include "loyalty/v1/member.pb-c.h"
#include "status.h"

#include <stdint.h>

enum {
    MEMBER_FIELD_NAME = 1u << 0,
    MEMBER_FIELD_PHONE = 1u << 1,
    MEMBER_FIELD_EMAIL = 1u << 2,
    MEMBER_FIELD_BIRTHDAY = 1u << 3,
    MEMBER_FIELD_GENDER = 1u << 4,
    MEMBER_FIELD_ADDRESS = 1u << 5,
    MEMBER_FIELD_OCCUPATION = 1u << 6,
    MEMBER_FIELD_INTERESTS = 1u << 7,
    MEMBER_FIELD_CUSTOM_ATTRIBUTES = 1u << 8,
    MEMBER_FIELD_TAGS = 1u << 9,
    MEMBER_FIELD_ALL = (1u << 10) - 1,
};

#define MEMBER_NAME_MAX 100
#define MEMBER_OCCUPATION_MAX 100
#define MEMBER_ADDRESS_FIELD_MAX 200
#define MEMBER_LIST_MAX 32
#define MEMBER_INTEREST_MAX 64
#define MEMBER_TAG_MAX 32
#define MEMBER_ATTR_KEY_MAX 64
#define MEMBER_ATTR_VALUE_MAX 512
#define MEMBER_EXTERNAL_ID_MAX 128

/** Turns an update mask of MemberProfile fields into MEMBER_FIELD_* bits; an empty mask or an
 *  unknown name is INVALID_ARGUMENT (lib/fieldmask.h: UPDATE_MASK_REQUIRED,
 *  UPDATE_MASK_UNKNOWN_FIELD). */
status_t member_rules_parse_mask(const Google__Protobuf__FieldMask *update_mask, unsigned *mask);

/** Validates the fields of `in` selected by `fields` and writes their normalised values into
 *  `out` (phone to E.164, e-mail lower-cased, tags lower-cased, strings copied into `a`);
 *  fields not selected are left as they are in `out`. The name is required when selected.
 *  `today_days` (days since 1970-01-01) bounds the birthday. `in` may be NULL (all empty). */
status_t member_rules_normalize_profile(arena_t *a, const Loyalty__V1__MemberProfile *in,
                                        unsigned fields, int64_t today_days,
                                        Loyalty__V1__MemberProfile *out);

/** Validates a caller's external id: empty, or a token of at most MEMBER_EXTERNAL_ID_MAX. */
status_t member_rules_check_external_id(const char *external_id);

#endif
