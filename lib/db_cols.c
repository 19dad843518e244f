/* db_cols.c -- the store kit's column tables: a row type declared once as the list of its
 * columns (what each holds, where it goes: a struct member or a message field by name) and read
 * by one function, so a store says what its rows mean next to the statement's column list
 * instead of a run of per-cell getter calls for every row type. */
#include "db.h"
#include "pb.h"
#include "pgarray.h"

#include <stdio.h>
#include <string.h>

/* Where one column's value goes: resolved from the table (offset and size) or from the
 * message's descriptor (the field's offset, its type's width, its count and presence). */
typedef struct col_dest {
    char *value;
    size_t size;
    size_t *count;           /* arrays */
    protobuf_c_boolean *has; /* proto2 `optional` scalars: present unless NULL */
    uint32_t *oneof_case;    /* a oneof member (proto3 `optional` too): the one set unless NULL */
    uint32_t field_id;
    bool is_pb_bool;                           /* a protobuf_c_boolean rather than a C bool */
    const ProtobufCMessageDescriptor *message; /* DB_COL_MESSAGE */
} col_dest_t;

static status_t col_error(const db_cols_t *cols, int c, const char *what) {
    const db_col_t *col = &cols->cols[c];
    return status_make(STATUS_INTERNAL, REASON_DATABASE_ERROR, "column %d (%s) of %s: %s",
                       cols->first + c, col->field ? col->field : "a struct member",
                       cols->message ? cols->message->name : "a row", what);
}

/* Whether a field of type t may take a column of kind k, and how wide its value is. */
static bool field_fits(db_col_kind_t k, const ProtobufCFieldDescriptor *f, size_t *size) {
    bool repeated = f->label == PROTOBUF_C_LABEL_REPEATED;
    *size = pb_value_size(f->type);
    switch (k) {
    case DB_COL_TEXT:
    case DB_COL_TEXT_OR_NULL:
        return !repeated && f->type == PROTOBUF_C_TYPE_STRING;
    case DB_COL_TEXT_IN:
        return false; /* message strings are pointers */
    case DB_COL_INT:
    case DB_COL_INT_OR:
        return !repeated && f->type != PROTOBUF_C_TYPE_STRING && f->type != PROTOBUF_C_TYPE_BYTES &&
               f->type != PROTOBUF_C_TYPE_MESSAGE && f->type != PROTOBUF_C_TYPE_BOOL &&
               f->type != PROTOBUF_C_TYPE_FLOAT && f->type != PROTOBUF_C_TYPE_DOUBLE;
    case DB_COL_BOOL:
        return !repeated && f->type == PROTOBUF_C_TYPE_BOOL;
    case DB_COL_BYTEA:
        return !repeated && f->type == PROTOBUF_C_TYPE_BYTES;
    case DB_COL_TEXT_ARRAY:
        return repeated && f->type == PROTOBUF_C_TYPE_STRING;
    case DB_COL_INT_ARRAY:
        return repeated && (f->type == PROTOBUF_C_TYPE_INT64 || f->type == PROTOBUF_C_TYPE_SINT64 ||
                            f->type == PROTOBUF_C_TYPE_SFIXED64);
    case DB_COL_MESSAGE:
        return !repeated && f->type == PROTOBUF_C_TYPE_MESSAGE;
    case DB_COL_SKIP:
        return true;
    }
    return false;
}

static status_t col_resolve(const db_cols_t *cols, int c, void *item, col_dest_t *d) {
    const db_col_t *col = &cols->cols[c];
    memset(d, 0, sizeof *d);
    if (col->field == NULL) {
        d->value = (char *)item + col->offset;
        d->size = col->size;
        d->count = col->kind == DB_COL_TEXT_ARRAY || col->kind == DB_COL_INT_ARRAY
                       ? (size_t *)(void *)((char *)item + col->count_offset)
                       : NULL;
        d->message = col->message;
        /* A C bool is one byte; a protobuf_c_boolean member (an int) is read as one. */
        d->is_pb_bool = col->kind == DB_COL_BOOL && col->size == sizeof(protobuf_c_boolean);
        return status_ok();
    }
    if (cols->message == NULL) {
        return col_error(cols, c, "a field name without a message type");
    }
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field_by_name(cols->message, col->field);
    if (f == NULL || !field_fits(col->kind, f, &d->size)) {
        return col_error(cols, c, "no field of that name and kind");
    }
    d->value = (char *)item + f->offset;
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
        d->count = (size_t *)(void *)((char *)item + f->quantifier_offset);
        d->size = sizeof(void *);
    } else if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
        d->oneof_case = (uint32_t *)(void *)((char *)item + f->quantifier_offset);
        d->field_id = f->id;
    } else if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->type != PROTOBUF_C_TYPE_STRING &&
               f->type != PROTOBUF_C_TYPE_MESSAGE) {
        d->has = (protobuf_c_boolean *)(void *)((char *)item + f->quantifier_offset);
    }
    d->is_pb_bool = f->type == PROTOBUF_C_TYPE_BOOL;
    d->message = f->type == PROTOBUF_C_TYPE_MESSAGE ? f->descriptor : NULL;
    return status_ok();
}

static bool store_int(char *v, size_t size, int64_t x) {
    switch (size) {
    case 1: {
        int8_t y = (int8_t)x;
        memcpy(v, &y, 1);
        return true;
    }
    case 2: {
        int16_t y = (int16_t)x;
        memcpy(v, &y, 2);
        return true;
    }
    case 4: {
        int32_t y = (int32_t)x;
        memcpy(v, &y, 4);
        return true;
    }
    case 8:
        memcpy(v, &x, 8);
        return true;
    default:
        return false;
    }
}

static status_t col_read(arena_t *a, const db_cols_t *cols, int c, const PGresult *r, int row,
                         void *item) {
    const db_col_t *col = &cols->cols[c];
    if (col->kind == DB_COL_SKIP) {
        return status_ok();
    }
    col_dest_t d;
    status_t st = col_resolve(cols, c, item, &d);
    if (!status_is_ok(&st)) {
        return st;
    }
    int cell = cols->first + c;
    bool null = db_is_null(r, row, cell);
    if (d.has != NULL) {
        *d.has = !null;
    }
    if (d.oneof_case != NULL) {
        if (null) {
            return status_ok(); /* another member, or none, stays the one set */
        }
        *d.oneof_case = d.field_id;
    }
    switch (col->kind) {
    case DB_COL_TEXT:
    case DB_COL_TEXT_OR_NULL: {
        if (d.size != sizeof(char *)) {
            break;
        }
        char *s = col->kind == DB_COL_TEXT ? db_dup_str(a, r, row, cell)
                                           : db_dup_str_or_null(a, r, row, cell);
        memcpy(d.value, &s, sizeof s);
        return status_ok();
    }
    case DB_COL_TEXT_IN: {
        if (d.size == 0 || col->field != NULL) {
            break;
        }
        snprintf(d.value, d.size, "%s", db_get_str(r, row, cell));
        return status_ok();
    }
    case DB_COL_INT:
    case DB_COL_INT_OR: {
        int64_t x = null && col->kind == DB_COL_INT_OR ? col->none : db_get_int(r, row, cell);
        if (!store_int(d.value, d.size, x)) {
            break;
        }
        return status_ok();
    }
    case DB_COL_BOOL: {
        bool x = db_get_bool(r, row, cell);
        if (d.is_pb_bool) {
            protobuf_c_boolean y = x;
            memcpy(d.value, &y, sizeof y);
        } else if (d.size == sizeof(bool)) {
            memcpy(d.value, &x, sizeof x);
        } else {
            break;
        }
        return status_ok();
    }
    case DB_COL_BYTEA: {
        if (d.size != sizeof(ProtobufCBinaryData)) {
            break;
        }
        ProtobufCBinaryData b = {0};
        if (!null) {
            b.data = db_get_bytea(a, r, row, cell, &b.len);
            if (b.data == NULL) {
                return col_error(cols, c, "a bytea cell that cannot be read");
            }
        }
        memcpy(d.value, &b, sizeof b);
        return status_ok();
    }
    case DB_COL_TEXT_ARRAY:
    case DB_COL_INT_ARRAY: {
        if (d.size != sizeof(void *) || d.count == NULL) {
            break;
        }
        void *items = NULL;
        size_t n = 0;
        if (!null) {
            bool ok =
                col->kind == DB_COL_TEXT_ARRAY
                    ? pgarray_decode(a, db_get_str(r, row, cell), (char ***)&items, &n)
                    : pgarray_decode_int64(a, db_get_str(r, row, cell), (int64_t **)&items, &n);
            if (!ok) {
                return col_error(cols, c, "a malformed array");
            }
        }
        memcpy(d.value, &items, sizeof items);
        *d.count = n;
        return status_ok();
    }
    case DB_COL_MESSAGE: {
        if (d.size != sizeof(void *) || d.message == NULL) {
            break;
        }
        ProtobufCMessage *m = null ? NULL : db_get_message(a, d.message, r, row, cell);
        if (m == NULL && !null) {
            return col_error(cols, c, "not a packed message of its type");
        }
        memcpy(d.value, &m, sizeof m);
        return status_ok();
    }
    case DB_COL_SKIP:
        return status_ok();
    }
    return col_error(cols, c, "a destination whose size does not fit the column's kind");
}

status_t db_cols_read(arena_t *a, const db_cols_t *cols, const PGresult *r, int row, void *item) {
    db_cols_t after = *cols;
    void *dest = item;
    if (cols->message != NULL && cols->packed) {
        /* The stored message first; the table's columns follow it. */
        after.first = cols->first + 1;
        dest = db_is_null(r, row, cols->first)
                   ? NULL
                   : db_get_message(a, cols->message, r, row, cols->first);
        if (dest == NULL) {
            return status_make(STATUS_INTERNAL, REASON_DATABASE_ERROR,
                               "column %d of a row: not a packed %s", cols->first,
                               cols->message->name);
        }
    } else if (cols->message != NULL) {
        dest = pb_new(a, cols->message);
    }
    if (PQnfields(r) < after.first + after.n) {
        return status_make(STATUS_INTERNAL, REASON_DATABASE_ERROR,
                           "a row of %d columns read as %d from column %d", PQnfields(r), after.n,
                           after.first);
    }
    for (int c = 0; c < after.n; c++) {
        status_t st = col_read(a, &after, c, r, row, dest);
        if (!status_is_ok(&st)) {
            return st;
        }
    }
    if (cols->message != NULL) {
        memcpy(item, &dest, sizeof dest);
    }
    return status_ok();
}

status_t db_row_read(void *ctx, arena_t *a, const PGresult *r, int row, void *item) {
    return db_cols_read(a, ctx, r, row, item);
}

status_t db_rows_cols(db_t *db, arena_t *a, const char *sql, const db_params_t *params,
                      const db_cols_t *cols, db_rows_t *rows) {
    /* db_row_read only reads through ctx. */
    return db_rows(db, a, sql, params, db_row_read, (void *)cols, rows);
}

/* db_row_get and db_row_find hand the row to fn with ctx as the item too: the table and the
 * item travel together. */
typedef struct cols_item {
    const db_cols_t *cols;
    void *item;
} cols_item_t;

static status_t cols_item_read(void *ctx, arena_t *a, const PGresult *r, int row, void *unused) {
    (void)unused;
    const cols_item_t *x = ctx;
    return db_cols_read(a, x->cols, r, row, x->item);
}

status_t db_row_get_cols(db_t *db, arena_t *a, const char *sql, const db_params_t *params,
                         const db_cols_t *cols, void *item, status_code_t missing_code,
                         reason_id_t missing_reason, const char *missing_message) {
    cols_item_t x = {cols, item};
    return db_row_get(db, a, sql, params, cols_item_read, &x, missing_code, missing_reason,
                      missing_message);
}

status_t db_row_find_cols(db_t *db, arena_t *a, const char *sql, const db_params_t *params,
                          const db_cols_t *cols, void *item, bool *found) {
    cols_item_t x = {cols, item};
    return db_row_find(db, a, sql, params, cols_item_read, &x, found);
}
