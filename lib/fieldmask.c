/* fieldmask.c -- parsing update masks against a message descriptor and applying them by
 * protobuf-c reflection, so that no service keeps its own list of names. */
#include "fieldmask.h"

#include "pb.h"

#include <assert.h>
#include <string.h>

/* The longest path quoted back in a refusal. */
#define PATH_QUOTE_MAX 60

static bool name_in(const char *const *names, const char *name) {
    for (size_t i = 0; names[i]; i++) {
        if (strcmp(names[i], name) == 0) {
            return true;
        }
    }
    return false;
}

status_t fieldmask_parse(const Google__Protobuf__FieldMask *mask,
                         const ProtobufCMessageDescriptor *desc, const char *const *updatable,
                         fieldmask_t *out) {
    assert(desc->n_fields <= FIELDMASK_FIELDS_MAX);
    *out = (fieldmask_t){.desc = desc, .fields = 0};
    if (mask == NULL || mask->n_paths == 0) {
        return status_make(STATUS_INVALID_ARGUMENT, REASON_UPDATE_MASK_REQUIRED,
                           "update_mask: name the fields of %s to change", desc->short_name);
    }
    for (size_t i = 0; i < mask->n_paths; i++) {
        const char *path = mask->paths[i];
        const ProtobufCFieldDescriptor *f =
            protobuf_c_message_descriptor_get_field_by_name(desc, path);
        if (f == NULL) {
            return status_make(STATUS_INVALID_ARGUMENT, REASON_UPDATE_MASK_UNKNOWN_FIELD,
                               "update_mask: '%.*s' is no field of %s", PATH_QUOTE_MAX, path,
                               desc->short_name);
        }
        if (updatable && !name_in(updatable, f->name)) {
            return status_make(STATUS_INVALID_ARGUMENT, REASON_UPDATE_MASK_IMMUTABLE_FIELD,
                               "update_mask: %s.%s cannot be changed by an update",
                               desc->short_name, f->name);
        }
        out->fields |= UINT64_C(1) << (unsigned)(f - desc->fields);
    }
    return status_ok();
}

bool fieldmask_has(const fieldmask_t *m, const char *name) {
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field_by_name(m->desc, name);
    assert(f != NULL); /* a handler asks only about its own message's fields */
    return (m->fields >> (unsigned)(f - m->desc->fields)) & 1u;
}

void fieldmask_apply(const fieldmask_t *m, ProtobufCMessage *dst, const ProtobufCMessage *src) {
    assert(dst->descriptor == m->desc && src->descriptor == m->desc);
    for (unsigned i = 0; i < m->desc->n_fields; i++) {
        if (!((m->fields >> i) & 1u)) {
            continue;
        }
        const ProtobufCFieldDescriptor *f = &m->desc->fields[i];
        char *d = (char *)dst + f->offset;
        const char *s = (const char *)src + f->offset;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            memcpy((char *)dst + f->quantifier_offset, (const char *)src + f->quantifier_offset,
                   sizeof(size_t));
            memcpy(d, s, sizeof(void *));
            continue;
        }
        if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
            uint32_t *dst_case = (uint32_t *)((char *)dst + f->quantifier_offset);
            const uint32_t *src_case = (const uint32_t *)((const char *)src + f->quantifier_offset);
            if (*src_case == f->id) {
                *dst_case = f->id;
                memcpy(d, s, pb_value_size(f->type));
            } else if (*dst_case == f->id) {
                *dst_case = 0;
            }
            continue;
        }
        if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->quantifier_offset != 0) {
            /* proto2-style presence flag (not generated for proto3, kept for completeness) */
            memcpy((char *)dst + f->quantifier_offset, (const char *)src + f->quantifier_offset,
                   sizeof(protobuf_c_boolean));
        }
        memcpy(d, s, pb_value_size(f->type));
    }
}
