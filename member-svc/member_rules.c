/* member_rules.c -- profile validation, normalisation and update masks. */
#include "member_rules.h"

#include "fieldmask.h"
#include "validate.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

/* The profile fields an update can change, and their bits. */
static const struct {
    const char *name;
    unsigned bit;
} mask_names[] = {
    {"name", MEMBER_FIELD_NAME},
    {"phone", MEMBER_FIELD_PHONE},
    {"email", MEMBER_FIELD_EMAIL},
    {"birthday", MEMBER_FIELD_BIRTHDAY},
    {"gender", MEMBER_FIELD_GENDER},
    {"address", MEMBER_FIELD_ADDRESS},
    {"occupation", MEMBER_FIELD_OCCUPATION},
    {"interests", MEMBER_FIELD_INTERESTS},
    {"custom_attributes", MEMBER_FIELD_CUSTOM_ATTRIBUTES},
    {"tags", MEMBER_FIELD_TAGS},
};

status_t member_rules_parse_mask(const Google__Protobuf__FieldMask *update_mask, unsigned *mask) {
    *mask = 0;
    fieldmask_t m;
    status_t st = fieldmask_parse(update_mask, &loyalty__v1__member_profile__descriptor, NULL, &m);
    if (!status_is_ok(&st)) {
        return st;
    }
    for (size_t k = 0; k < sizeof mask_names / sizeof mask_names[0]; k++) {
        if (fieldmask_has(&m, mask_names[k].name)) {
            *mask |= mask_names[k].bit;
        }
    }
    return status_ok();
}

static status_t check_address(arena_t *a, const Loyalty__V1__Address *in,
                              Loyalty__V1__Address **out) {
    *out = NULL;
    if (in == NULL) {
        return status_ok();
    }
    const char *fields[] = {in->line1, in->line2, in->city, in->region, in->postal_code};
    const char *names[] = {"profile.address.line1", "profile.address.line2", "profile.address.city",
                           "profile.address.region", "profile.address.postal_code"};
    for (size_t i = 0; i < 5; i++) {
        status_t st = validate_text(names[i], fields[i], 0, MEMBER_ADDRESS_FIELD_MAX);
        if (!status_is_ok(&st)) {
            return st;
        }
    }
    const char *cc = in->country_code;
    if (cc[0] != '\0' &&
        (strlen(cc) != 2 || !isupper((unsigned char)cc[0]) || !isupper((unsigned char)cc[1]))) {
        return status_invalid_field("profile.address.country_code",
                                    "expected ISO 3166-1 alpha-2 in upper case, e.g. SG");
    }
    Loyalty__V1__Address *addr = arena_alloc(a, sizeof *addr);
    loyalty__v1__address__init(addr);
    addr->line1 = arena_strdup(a, in->line1);
    addr->line2 = arena_strdup(a, in->line2);
    addr->city = arena_strdup(a, in->city);
    addr->region = arena_strdup(a, in->region);
    addr->postal_code = arena_strdup(a, in->postal_code);
    addr->country_code = arena_strdup(a, cc);
    *out = addr;
    return status_ok();
}

/* Copies a list of strings after checking each one; `tag` lists are tokens, lower-cased. */
static status_t check_list(arena_t *a, const char *field, char *const *items, size_t n,
                           size_t item_max, bool tag, char ***out, size_t *out_n) {
    if (n > MEMBER_LIST_MAX) {
        return status_invalid_field(field, "at most %d entries", MEMBER_LIST_MAX);
    }
    char **copy = arena_alloc(a, (n ? n : 1) * sizeof *copy);
    for (size_t i = 0; i < n; i++) {
        char item_field[64];
        snprintf(item_field, sizeof item_field, "%s[%zu]", field, i);
        status_t st = tag ? validate_token(item_field, items[i], item_max)
                          : validate_text(item_field, items[i], 1, item_max);
        if (!status_is_ok(&st)) {
            return st;
        }
        copy[i] = arena_strdup(a, items[i]);
        if (tag) {
            for (char *p = copy[i]; *p; p++) {
                *p = (char)tolower((unsigned char)*p);
            }
        }
        for (size_t k = 0; k < i; k++) {
            if (strcmp(copy[k], copy[i]) == 0) {
                return status_invalid_field(item_field, "duplicate entry");
            }
        }
    }
    *out = copy;
    *out_n = n;
    return status_ok();
}

static status_t check_attributes(arena_t *a, const Loyalty__V1__MemberProfile *in,
                                 Loyalty__V1__MemberProfile *out) {
    size_t n = in->n_custom_attributes;
    if (n > MEMBER_LIST_MAX) {
        return status_invalid_field("profile.custom_attributes", "at most %d entries",
                                    MEMBER_LIST_MAX);
    }
    Loyalty__V1__MemberProfile__CustomAttributesEntry **copy =
        arena_alloc(a, (n ? n : 1) * sizeof *copy);
    for (size_t i = 0; i < n; i++) {
        const Loyalty__V1__MemberProfile__CustomAttributesEntry *e = in->custom_attributes[i];
        status_t st = validate_token("profile.custom_attributes.key", e->key, MEMBER_ATTR_KEY_MAX);
        if (status_is_ok(&st)) {
            st = validate_text("profile.custom_attributes.value", e->value, 0,
                               MEMBER_ATTR_VALUE_MAX);
        }
        if (!status_is_ok(&st)) {
            return st;
        }
        for (size_t k = 0; k < i; k++) {
            if (strcmp(copy[k]->key, e->key) == 0) {
                return status_invalid_field("profile.custom_attributes", "duplicate key '%.64s'",
                                            e->key);
            }
        }
        copy[i] = arena_alloc(a, sizeof *copy[i]);
        loyalty__v1__member_profile__custom_attributes_entry__init(copy[i]);
        copy[i]->key = arena_strdup(a, e->key);
        copy[i]->value = arena_strdup(a, e->value);
    }
    out->custom_attributes = copy;
    out->n_custom_attributes = n;
    return status_ok();
}

static status_t check_scalars(arena_t *a, const Loyalty__V1__MemberProfile *in, unsigned fields,
                              int64_t today_days, Loyalty__V1__MemberProfile *out) {
    status_t st = status_ok();
    if (fields & MEMBER_FIELD_NAME) {
        st = validate_text("profile.name", in->name, 1, MEMBER_NAME_MAX);
        if (!status_is_ok(&st)) {
            return st;
        }
        out->name = arena_strdup(a, in->name);
    }
    if (fields & MEMBER_FIELD_PHONE) {
        char phone[PHONE_MAX + 1] = "";
        if (in->phone[0] != '\0') {
            st = validate_phone("profile.phone", in->phone, phone);
            if (!status_is_ok(&st)) {
                return st;
            }
        }
        out->phone = arena_strdup(a, phone);
    }
    if (fields & MEMBER_FIELD_EMAIL) {
        char email[EMAIL_MAX + 1] = "";
        if (in->email[0] != '\0') {
            st = validate_email("profile.email", in->email, email);
            if (!status_is_ok(&st)) {
                return st;
            }
        }
        out->email = arena_strdup(a, email);
    }
    if (fields & MEMBER_FIELD_BIRTHDAY) {
        if (in->birthday[0] != '\0') {
            int y, m, d;
            st = validate_date("profile.birthday", in->birthday, &y, &m, &d);
            if (!status_is_ok(&st)) {
                return st;
            }
            if (date_days_from_civil(y, m, d) > today_days) {
                return status_invalid_field("profile.birthday", "in the future");
            }
        }
        out->birthday = arena_strdup(a, in->birthday);
    }
    if (fields & MEMBER_FIELD_GENDER) {
        if (in->gender < LOYALTY__V1__GENDER__GENDER_UNSPECIFIED ||
            in->gender > LOYALTY__V1__GENDER__GENDER_OTHER) {
            return status_invalid_field("profile.gender", "unknown value %d", (int)in->gender);
        }
        out->gender = in->gender;
    }
    if (fields & MEMBER_FIELD_OCCUPATION) {
        st = validate_text("profile.occupation", in->occupation, 0, MEMBER_OCCUPATION_MAX);
        if (!status_is_ok(&st)) {
            return st;
        }
        out->occupation = arena_strdup(a, in->occupation);
    }
    return st;
}

status_t member_rules_normalize_profile(arena_t *a, const Loyalty__V1__MemberProfile *in,
                                        unsigned fields, int64_t today_days,
                                        Loyalty__V1__MemberProfile *out) {
    Loyalty__V1__MemberProfile empty = LOYALTY__V1__MEMBER_PROFILE__INIT;
    if (in == NULL) {
        in = &empty;
    }
    status_t st = check_scalars(a, in, fields, today_days, out);
    if (status_is_ok(&st) && (fields & MEMBER_FIELD_ADDRESS)) {
        st = check_address(a, in->address, &out->address);
    }
    if (status_is_ok(&st) && (fields & MEMBER_FIELD_INTERESTS)) {
        st = check_list(a, "profile.interests", in->interests, in->n_interests, MEMBER_INTEREST_MAX,
                        false, &out->interests, &out->n_interests);
    }
    if (status_is_ok(&st) && (fields & MEMBER_FIELD_TAGS)) {
        st = check_list(a, "profile.tags", in->tags, in->n_tags, MEMBER_TAG_MAX, true, &out->tags,
                        &out->n_tags);
    }
    if (status_is_ok(&st) && (fields & MEMBER_FIELD_CUSTOM_ATTRIBUTES)) {
        st = check_attributes(a, in, out);
    }
    return st;
}

status_t member_rules_check_external_id(const char *external_id) {
    if (external_id[0] == '\0') {
        return status_ok();
    }
    return validate_token("external_id", external_id, MEMBER_EXTERNAL_ID_MAX);
}
