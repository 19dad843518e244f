/* reasons.c -- the reason catalogue's table, built from lib/reasons.def. */
#include "reasons.h"

#include <assert.h>
#include <string.h>

static const reason_info_t reasons[REASON_COUNT] = {
#define REASON(name, code, meaning) [REASON_##name] = {#name, STATUS_##code, meaning},
#define REASON_FAMILY(prefix, code, meaning)
#include "reasons.def"
#undef REASON_FAMILY
#undef REASON
};

static const char *const family_prefixes[] = {
#define REASON(name, code, meaning)
#define REASON_FAMILY(prefix, code, meaning) #prefix,
#include "reasons.def"
#undef REASON_FAMILY
#undef REASON
};

const reason_info_t *reason_info(reason_id_t id) {
    assert(id > REASON_NONE && (unsigned)id < REASON_COUNT);
    return &reasons[id];
}

const char *reason_name(reason_id_t id) {
    if (id <= REASON_NONE || (unsigned)id >= REASON_COUNT) {
        return ""; /* no reason; an id outside the enum is a bug the compiler mostly prevents */
    }
    return reasons[id].name;
}

const reason_info_t *reason_find(const char *name) {
    for (size_t i = REASON_NONE + 1; i < REASON_COUNT; i++) {
        if (strcmp(reasons[i].name, name) == 0) {
            return &reasons[i];
        }
    }
    return NULL;
}

bool reason_is_known(const char *name) {
    if (reason_find(name) != NULL) {
        return true;
    }
    for (size_t i = 0; i < sizeof family_prefixes / sizeof family_prefixes[0]; i++) {
        size_t n = strlen(family_prefixes[i]);
        if (strncmp(name, family_prefixes[i], n) == 0 && name[n] != '\0') {
            return true;
        }
    }
    return false;
}
