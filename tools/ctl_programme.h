/* ctl_programme.h -- what the parts of `loyaltyctl programme` share: the sections of a programme
 * file (ctl_programme_sections.c: which message each holds, how it is read and written through
 * the gateway), the file as parsed (ctl_programme_yaml.c: libyaml into protobuf-c messages,
 * with the line and column of every value; messages out as YAML in a fixed order), and the
 * generic field access both use. */
#ifndef LOYALTY_CTL_PROGRAMME_H
#define LOYALTY_CTL_PROGRAMME_H

#include "ctl.h"

#include <protobuf-c/protobuf-c.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* How a section's items are written. */
typedef enum prog_write {
    PROG_WRITE_MASK,    /* Update*(id?, item, update_mask): only the changed fields */
    PROG_WRITE_REPLACE, /* Set*(item): the whole item (current with the changes) */
    PROG_WRITE_ACTIVE,  /* only the `active` field, by a Set*Active(id, active) call */
    PROG_WRITE_END,     /* only `active` true -> false, by an End*(id) call */
} prog_write_t;

/* A field that names another section's item by its id in the services and by its name in the
 * file ("tier_id" -> `tier: Gold`), in any message of a programme. */
typedef struct prog_ref {
    const ProtobufCMessageDescriptor *message;
    const char *field;     /* the message's field: "tier_id", "tier_ids" (repeated) */
    const char *yaml_name; /* its key in the file: "tier", "tiers" */
    const char *target;    /* the key of the section it names items of: "tiers" */
} prog_ref_t;

extern const prog_ref_t prog_refs[];
extern const int prog_n_refs;

/* One section of the file: a top-level key. */
typedef struct prog_section {
    const char *key;                           /* "tiers" */
    const ProtobufCServiceDescriptor *service; /* whose RPCs */
    bool on_gateway;                           /* the gateway's own service: no relay */
    const ProtobufCMessageDescriptor *item;    /* the message one item is */
    bool is_list;                              /* a list of items, matched by key_field */
    bool whole_list;                           /* a list replaced as a whole (tag rules) */
    const char *key_field;                     /* list: "name" */
    const char *order_field;  /* list: exported in this int field's order ("rank"), else by key */
    const char *const *skip;  /* output-only fields: never in the file, never compared */
    const char *const *fixed; /* fields that cannot change once created ("create another") */
    bool codes;               /* its items may hold `codes:` (prog_codes_t; promotions) */
    /* Reading. */
    const char *read_method; /* "GetSettings", "ListTiers" */
    const char *read_field;  /* the answer's field holding it: "tiers" */
    const ProtobufCMessageDescriptor *read_req;
    const char *read_flag; /* a bool of the read request to set ("include_inactive") */
    /* Creating (lists): the request takes the item as `create_field`, or (NULL) its fields
     * by name. */
    const char *create_method;
    const char *create_field;
    const char *create_answer; /* the answer's field holding the created item */
    /* Changing. */
    prog_write_t write;
    const char *write_method;
    const char *write_id_field;   /* the request's field naming the item: "tier_id" */
    const char *write_item_field; /* the request's field holding the item: "tier" */
    const char *id_field;         /* the item's own id field: "id" (also set in the item sent
                                     when there is no write_id_field) */
    /* A field changed by calls of its own, not by write_method (a promotion's status): when it
     * differs, toggle_off_method(id) if the file has toggle_off_value, else toggle_on_method. */
    const char *toggle_field;
    int toggle_off_value;
    const char *toggle_on_method, *toggle_off_method, *toggle_id_field;
} prog_section_t;

extern const prog_section_t prog_sections[];
extern const int prog_n_sections;

/* A promotion's unique codes: `codes:` of a promotions item, no field of Promotion. The file:
 * one batch of batch_size codes, each prefix and 12 random characters, generated
 * (GeneratePromoCodes) when the promotion has no codes. The services: the promotion's codes
 * (ListPromoCodes) as one batch: their number and the prefix of the first. */
#define PROG_CODES_BATCH_MAX 10000
#define PROG_CODES_PREFIX_MAX 8

typedef struct prog_codes {
    bool given; /* the file has `codes:`, or the promotion has codes */
    int32_t batch_size;
    const char *prefix; /* upper case; "" for none */
    int line, column;
} prog_codes_t;

/* The file or the services' state, one section. */
typedef struct prog_item {
    ProtobufCMessage *msg;
    prog_codes_t codes; /* promotions only */
    uint64_t present;   /* bit i: field i of the item's descriptor was given (file only) */
    int line, column;   /* where the item starts in the file (1-based; 0 for the services') */
} prog_item_t;

typedef struct prog_part {
    bool given; /* the file has this section (or the services have it: always) */
    prog_item_t *items;
    size_t n_items;
    int line, column;
} prog_part_t;

#define PROG_SECTIONS_MAX 20

typedef struct prog {
    const char *merchant; /* from the file (may be NULL) */
    prog_part_t parts[PROG_SECTIONS_MAX];
} prog_t;

/* ---- generic field access (ctl_programme_yaml.c) ---- */

/** A pointer to field f's storage in m. */
void *prog_field_ptr(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f);
/** The number of values of a repeated field. */
size_t prog_repeated_count(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f);
/** Whether a singular field carries a value worth writing (a oneof member: it is the one set;
 *  a message: non-NULL; other fields always). */
bool prog_field_set(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f);
/** Whether field f has the same value in a and b. */
bool prog_field_equal(const ProtobufCMessage *a, const ProtobufCMessage *b,
                      const ProtobufCFieldDescriptor *f);
/** Copies field f of src onto dst (shallow), with a oneof's case. */
void prog_field_copy(ProtobufCMessage *dst, const ProtobufCMessage *src,
                     const ProtobufCFieldDescriptor *f);
/** Sets a string field by name; false when m has no such field. */
bool prog_set_string(ProtobufCMessage *m, const char *name, const char *value);
/** Sets a singular message field by name. */
bool prog_set_message(ProtobufCMessage *m, const char *name, ProtobufCMessage *value);
/** Sets a bool field by name. */
bool prog_set_bool(ProtobufCMessage *m, const char *name, bool value);
/** A singular message field by name (NULL when unset or none). */
ProtobufCMessage *prog_get_message(const ProtobufCMessage *m, const char *name);
/** Whether `name` is in the NULL-terminated list (NULL = empty). */
bool prog_in_list(const char *const *list, const char *name);

/** A deep copy of m in the arena (strings, sub-messages and arrays copied). */
ProtobufCMessage *prog_copy(arena_t *a, const ProtobufCMessage *m);

/** The value of field f of m as one line of YAML flow ("100", "\"Gold\"", "[1, 2]",
 *  "{kind: CHECK_IN, points: 5}"), in the arena. For a ref field, ids are shown as they are. */
const char *prog_value_text(arena_t *a, const ProtobufCMessage *m,
                            const ProtobufCFieldDescriptor *f);

/* ---- the file ---- */

/** Parses FILE into p (every section's items as messages, ref fields holding names). On a
 *  problem prints "FILE:LINE:COLUMN: what" to stderr and returns false. */
bool prog_parse_file(arena_t *a, const char *path, prog_t *p);

/** Writes p as a programme file to `out`: every field of the services' state (refs as names),
 *  or, for items read from a file, the fields it gave (`present`). */
void prog_print_yaml(FILE *out, const prog_t *p, const char *merchant);

/** The ref for field f of messages of d, or NULL. */
const prog_ref_t *prog_ref_of(const ProtobufCMessageDescriptor *d,
                              const ProtobufCFieldDescriptor *f);
/** The name of field f of d as the file spells it (a ref's yaml_name, else the field's name). */
const char *prog_yaml_name(const ProtobufCMessageDescriptor *d, const ProtobufCFieldDescriptor *f);
/** The section whose key is `key` (-1 when none). */
int prog_section_index(const char *key);

#endif
