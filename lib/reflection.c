/* reflection.c -- grpc.reflection v1/v1alpha from the embedded FileDescriptorSet.
 *
 * The set is walked in its wire format (a FileDescriptorSet is `repeated FileDescriptorProto
 * file = 1`), so no descriptor.proto code is generated or linked: the walk takes the few fields
 * an index needs (names, package, dependencies, nested types, enum values, methods and their
 * streaming flags) and answers with the files' original bytes, never re-encoded. Symbols live
 * in one sorted array searched by bsearch. */
#include "reflection.h"

#include "pb.h"

#include "grpc/reflection/v1/reflection.pb-c.h"
#include "grpc/reflection/v1alpha/reflection.pb-c.h"

#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REFLECTION_DEPS_MAX 64
#define REFLECTION_SYMBOLS_MAX 65536
#define REFLECTION_NESTING_MAX 32 /* message nesting depth the walk follows */

typedef struct refl_file {
    char *name;
    const unsigned char *bytes;
    size_t len;
    int deps[REFLECTION_DEPS_MAX];
    int dep_count;
} refl_file_t;

typedef struct refl_symbol {
    char *name;
    int file;
    signed char streaming; /* methods: 0 unary, 1 streaming; -1 for other symbols */
} refl_symbol_t;

static struct {
    refl_file_t files[REFLECTION_FILES_MAX];
    int file_count;
    refl_symbol_t *symbols;
    size_t symbol_count;
    size_t symbol_cap;
    const char *services[REFLECTION_SERVICES_MAX];
    int service_count;
} g_refl;

/* ---- protobuf wire format, just what descriptors use ---- */

typedef struct wire {
    const unsigned char *p;
    const unsigned char *end;
} wire_t;

/* One field: its number, and either its varint or its bytes (length-delimited). */
typedef struct wire_field {
    uint32_t number;
    uint64_t varint;
    const unsigned char *data;
    size_t len;
} wire_field_t;

static bool wire_varint(wire_t *w, uint64_t *out) {
    uint64_t v = 0;
    for (int shift = 0; shift < 64 && w->p < w->end; shift += 7) {
        unsigned char b = *w->p++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if ((b & 0x80) == 0) {
            *out = v;
            return true;
        }
    }
    return false;
}

/* 1: a field was read into *f; 0: the end; -1: malformed (groups are malformed here). */
static int wire_next(wire_t *w, wire_field_t *f) {
    if (w->p == w->end) {
        return 0;
    }
    uint64_t key;
    if (!wire_varint(w, &key) || (key >> 3) == 0 || (key >> 3) > UINT32_MAX) {
        return -1;
    }
    memset(f, 0, sizeof *f);
    f->number = (uint32_t)(key >> 3);
    uint64_t len;
    switch (key & 7) {
    case 0:
        return wire_varint(w, &f->varint) ? 1 : -1;
    case 1:
    case 5: {
        size_t n = (key & 7) == 1 ? 8 : 4;
        if ((size_t)(w->end - w->p) < n) {
            return -1;
        }
        w->p += n;
        return 1;
    }
    case 2:
        if (!wire_varint(w, &len) || len > (uint64_t)(w->end - w->p)) {
            return -1;
        }
        f->data = w->p;
        f->len = (size_t)len;
        w->p += len;
        return 1;
    default:
        return -1;
    }
}

/* The first length-delimited field `number` of a message, as a NUL-terminated copy in `out`
 * ("" when absent); false when malformed or longer than the buffer. */
static bool wire_string(const unsigned char *data, size_t len, uint32_t number, char *out,
                        size_t out_size) {
    wire_t w = {data, data + len};
    wire_field_t f;
    int r;
    out[0] = '\0';
    while ((r = wire_next(&w, &f)) == 1) {
        if (f.number == number && f.data != NULL) {
            if (f.len >= out_size || memchr(f.data, '\0', f.len) != NULL) {
                return false;
            }
            memcpy(out, f.data, f.len);
            out[f.len] = '\0';
            return true;
        }
    }
    return r == 0;
}

/* ---- the index ---- */

static bool refl_add_symbol(const char *scope, const char *name, int file, int streaming) {
    if (name[0] == '\0' || g_refl.symbol_count == REFLECTION_SYMBOLS_MAX) {
        return false;
    }
    char full[REFLECTION_NAME_MAX];
    int n = snprintf(full, sizeof full, "%s%s%s", scope, scope[0] ? "." : "", name);
    if (n < 0 || (size_t)n >= sizeof full) {
        return false;
    }
    if (g_refl.symbol_count == g_refl.symbol_cap) {
        size_t cap = g_refl.symbol_cap ? g_refl.symbol_cap * 2 : 256;
        refl_symbol_t *grown = realloc(g_refl.symbols, cap * sizeof *grown);
        if (grown == NULL) {
            abort();
        }
        g_refl.symbols = grown;
        g_refl.symbol_cap = cap;
    }
    char *copy = strdup(full);
    if (copy == NULL) {
        abort();
    }
    g_refl.symbols[g_refl.symbol_count++] = (refl_symbol_t){copy, file, (signed char)streaming};
    return true;
}

/* EnumDescriptorProto: the enum in `scope`; its values are siblings of the enum (protobuf's
 * scoping: loyalty.v1.GENDER_FEMALE, not loyalty.v1.Gender.GENDER_FEMALE). */
static bool refl_walk_enum(const char *scope, const unsigned char *data, size_t len, int file) {
    char name[REFLECTION_NAME_MAX];
    char value[REFLECTION_NAME_MAX];
    if (!wire_string(data, len, 1, name, sizeof name) || !refl_add_symbol(scope, name, file, -1)) {
        return false;
    }
    wire_t w = {data, data + len};
    wire_field_t f;
    int r;
    while ((r = wire_next(&w, &f)) == 1) {
        if (f.number == 2 && f.data != NULL &&
            (!wire_string(f.data, f.len, 1, value, sizeof value) ||
             !refl_add_symbol(scope, value, file, -1))) {
            return false;
        }
    }
    return r == 0;
}

/* DescriptorProto: the message, its fields, oneofs, extensions, enums and nested messages.
 * Recursion follows the nesting of the .proto, bounded by REFLECTION_NESTING_MAX. */
static bool refl_walk_message(const char *scope, const unsigned char *data, size_t len, int file,
                              int depth) {
    char name[REFLECTION_NAME_MAX];
    char full[REFLECTION_NAME_MAX];
    char member[REFLECTION_NAME_MAX];
    if (depth > REFLECTION_NESTING_MAX || !wire_string(data, len, 1, name, sizeof name) ||
        !refl_add_symbol(scope, name, file, -1)) {
        return false;
    }
    snprintf(full, sizeof full, "%s", g_refl.symbols[g_refl.symbol_count - 1].name);
    wire_t w = {data, data + len};
    wire_field_t f;
    int r;
    while ((r = wire_next(&w, &f)) == 1) {
        if (f.data == NULL) {
            continue;
        }
        bool ok = true;
        switch (f.number) {
        case 2: /* field */
        case 6: /* extension */
        case 8: /* oneof_decl */
            ok = wire_string(f.data, f.len, 1, member, sizeof member) &&
                 refl_add_symbol(full, member, file, -1);
            break;
        case 3: /* nested_type */
            ok = refl_walk_message(full, f.data, f.len, file, depth + 1);
            break;
        case 4: /* enum_type */
            ok = refl_walk_enum(full, f.data, f.len, file);
            break;
        default:
            break;
        }
        if (!ok) {
            return false;
        }
    }
    return r == 0;
}

/* ServiceDescriptorProto: the service and its methods with their streaming flags. */
static bool refl_walk_service(const char *scope, const unsigned char *data, size_t len, int file) {
    char name[REFLECTION_NAME_MAX];
    char full[REFLECTION_NAME_MAX];
    char method[REFLECTION_NAME_MAX];
    if (!wire_string(data, len, 1, name, sizeof name) || !refl_add_symbol(scope, name, file, -1)) {
        return false;
    }
    snprintf(full, sizeof full, "%s", g_refl.symbols[g_refl.symbol_count - 1].name);
    wire_t w = {data, data + len};
    wire_field_t f;
    int r;
    while ((r = wire_next(&w, &f)) == 1) {
        if (f.number != 2 || f.data == NULL) {
            continue;
        }
        bool streaming = false;
        wire_t mw = {f.data, f.data + f.len};
        wire_field_t mf;
        int mr;
        while ((mr = wire_next(&mw, &mf)) == 1) {
            if ((mf.number == 5 || mf.number == 6) && mf.data == NULL && mf.varint != 0) {
                streaming = true; /* client_streaming or server_streaming */
            }
        }
        if (mr != 0 || !wire_string(f.data, f.len, 1, method, sizeof method) ||
            !refl_add_symbol(full, method, file, streaming)) {
            return false;
        }
    }
    return r == 0;
}

/* FileDescriptorProto: name and package first, then what it defines; dependencies are
 * resolved to indexes once every file is known. */
static bool refl_walk_file(const unsigned char *data, size_t len, int file) {
    char name[REFLECTION_NAME_MAX];
    char package[REFLECTION_NAME_MAX];
    if (!wire_string(data, len, 1, name, sizeof name) || name[0] == '\0' ||
        !wire_string(data, len, 2, package, sizeof package)) {
        return false;
    }
    refl_file_t *rf = &g_refl.files[file];
    rf->name = strdup(name);
    if (rf->name == NULL) {
        abort();
    }
    rf->bytes = data;
    rf->len = len;
    wire_t w = {data, data + len};
    wire_field_t f;
    int r;
    while ((r = wire_next(&w, &f)) == 1) {
        if (f.data == NULL) {
            continue;
        }
        bool ok = true;
        char member[REFLECTION_NAME_MAX];
        switch (f.number) {
        case 4:
            ok = refl_walk_message(package, f.data, f.len, file, 0);
            break;
        case 5:
            ok = refl_walk_enum(package, f.data, f.len, file);
            break;
        case 6:
            ok = refl_walk_service(package, f.data, f.len, file);
            break;
        case 7: /* extension */
            ok = wire_string(f.data, f.len, 1, member, sizeof member) &&
                 refl_add_symbol(package, member, file, -1);
            break;
        default:
            break;
        }
        if (!ok) {
            return false;
        }
    }
    return r == 0;
}

static bool refl_resolve_deps(int file) {
    refl_file_t *rf = &g_refl.files[file];
    wire_t w = {rf->bytes, rf->bytes + rf->len};
    wire_field_t f;
    int r;
    while ((r = wire_next(&w, &f)) == 1) {
        if (f.number != 3 || f.data == NULL) {
            continue;
        }
        char dep[REFLECTION_NAME_MAX];
        if (f.len >= sizeof dep || rf->dep_count == REFLECTION_DEPS_MAX) {
            return false;
        }
        memcpy(dep, f.data, f.len);
        dep[f.len] = '\0';
        int idx = reflection_find_file(dep);
        if (idx < 0) {
            return false; /* --include_imports puts every dependency in the set */
        }
        rf->deps[rf->dep_count++] = idx;
    }
    return r == 0;
}

static int refl_symbol_cmp(const void *a, const void *b) {
    return strcmp(((const refl_symbol_t *)a)->name, ((const refl_symbol_t *)b)->name);
}

void reflection_dispose(void) {
    for (int i = 0; i < g_refl.file_count; i++) {
        free(g_refl.files[i].name);
    }
    for (size_t i = 0; i < g_refl.symbol_count; i++) {
        free(g_refl.symbols[i].name);
    }
    free(g_refl.symbols);
    memset(&g_refl, 0, sizeof g_refl);
}

status_t reflection_init(const unsigned char *set, size_t len) {
    reflection_dispose();
    wire_t w = {set, set + len};
    wire_field_t f;
    int r;
    bool ok = true;
    while (ok && (r = wire_next(&w, &f)) == 1) {
        if (f.number != 1 || f.data == NULL) {
            continue;
        }
        ok = g_refl.file_count < REFLECTION_FILES_MAX &&
             refl_walk_file(f.data, f.len, g_refl.file_count);
        g_refl.file_count++;
    }
    for (int i = 0; ok && i < g_refl.file_count; i++) {
        ok = refl_resolve_deps(i);
    }
    if (!ok || r != 0) {
        reflection_dispose();
        return status_make(STATUS_INTERNAL, REASON_BAD_DESCRIPTOR_SET,
                           "the embedded descriptor set is malformed or over the limits");
    }
    if (g_refl.symbol_count > 0) {
        qsort(g_refl.symbols, g_refl.symbol_count, sizeof *g_refl.symbols, refl_symbol_cmp);
    }
    return status_ok();
}

void reflection_register_service(const char *full_name) {
    for (int i = 0; i < g_refl.service_count; i++) {
        if (strcmp(g_refl.services[i], full_name) == 0) {
            return;
        }
    }
    if (g_refl.service_count < REFLECTION_SERVICES_MAX) {
        g_refl.services[g_refl.service_count++] = full_name;
    }
}

static const refl_symbol_t *refl_lookup(const char *symbol) {
    if (g_refl.symbol_count == 0) {
        return NULL;
    }
    refl_symbol_t key = {(char *)symbol, 0, 0};
    return bsearch(&key, g_refl.symbols, g_refl.symbol_count, sizeof key, refl_symbol_cmp);
}

int reflection_find_symbol(const char *symbol) {
    const refl_symbol_t *s = refl_lookup(symbol);
    return s ? s->file : -1;
}

int reflection_find_file(const char *name) {
    for (int i = 0; i < g_refl.file_count; i++) {
        if (g_refl.files[i].name && strcmp(g_refl.files[i].name, name) == 0) {
            return i;
        }
    }
    return -1;
}

size_t reflection_file_closure(int file, int *out, size_t max) {
    /* Breadth-first over the dependency graph with `out` as the queue: no recursion, each file
     * once. */
    bool seen[REFLECTION_FILES_MAX] = {false};
    if (file < 0 || file >= g_refl.file_count || max == 0) {
        return 0;
    }
    size_t n = 0;
    out[n++] = file;
    seen[file] = true;
    for (size_t head = 0; head < n; head++) {
        const refl_file_t *rf = &g_refl.files[out[head]];
        for (int d = 0; d < rf->dep_count && n < max; d++) {
            if (!seen[rf->deps[d]]) {
                seen[rf->deps[d]] = true;
                out[n++] = rf->deps[d];
            }
        }
    }
    return n;
}

const unsigned char *reflection_file_bytes(int file, size_t *len_out) {
    assert(file >= 0 && file < g_refl.file_count);
    *len_out = g_refl.files[file].len;
    return g_refl.files[file].bytes;
}

const char *reflection_file_name(int file) {
    assert(file >= 0 && file < g_refl.file_count);
    return g_refl.files[file].name;
}

int reflection_method_streaming(const char *path) {
    char symbol[REFLECTION_NAME_MAX];
    const char *slash = path[0] == '/' ? strchr(path + 1, '/') : NULL;
    if (slash == NULL || strlen(path) >= sizeof symbol) {
        return -1;
    }
    snprintf(symbol, sizeof symbol, "%.*s.%s", (int)(slash - path - 1), path + 1, slash + 1);
    const refl_symbol_t *s = refl_lookup(symbol);
    return s ? s->streaming : -1;
}

/* ---- ServerReflectionInfo ---- */

typedef Grpc__Reflection__V1__ServerReflectionRequest refl_request_t;
typedef Grpc__Reflection__V1__ServerReflectionResponse refl_response_t;

static void refl_error(refl_response_t *resp, arena_t *a, status_code_t code, const char *what,
                       const char *name) {
    Grpc__Reflection__V1__ErrorResponse *e =
        pb_new(a, &grpc__reflection__v1__error_response__descriptor);
    e->error_code = (int32_t)code;
    e->error_message = arena_printf(a, "%s %.*s", what, REFLECTION_NAME_MAX, name);
    resp->message_response_case =
        GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ERROR_RESPONSE;
    resp->error_response = e;
}

static void refl_files(refl_response_t *resp, arena_t *a, int file) {
    int closure[REFLECTION_FILES_MAX];
    size_t n = reflection_file_closure(file, closure, REFLECTION_FILES_MAX);
    Grpc__Reflection__V1__FileDescriptorResponse *fr =
        pb_new(a, &grpc__reflection__v1__file_descriptor_response__descriptor);
    fr->file_descriptor_proto = arena_alloc(a, n * sizeof *fr->file_descriptor_proto);
    for (size_t i = 0; i < n; i++) {
        size_t len;
        const unsigned char *bytes = reflection_file_bytes(closure[i], &len);
        fr->file_descriptor_proto[i].data = (uint8_t *)bytes; /* borrowed; only encoded */
        fr->file_descriptor_proto[i].len = len;
    }
    fr->n_file_descriptor_proto = n;
    resp->message_response_case =
        GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_FILE_DESCRIPTOR_RESPONSE;
    resp->file_descriptor_response = fr;
}

static void refl_list(refl_response_t *resp, arena_t *a) {
    Grpc__Reflection__V1__ListServiceResponse *l =
        pb_new(a, &grpc__reflection__v1__list_service_response__descriptor);
    l->service = arena_alloc(a, (size_t)g_refl.service_count * sizeof *l->service);
    for (int i = 0; i < g_refl.service_count; i++) {
        Grpc__Reflection__V1__ServiceResponse *s =
            pb_new(a, &grpc__reflection__v1__service_response__descriptor);
        s->name = (char *)g_refl.services[i];
        l->service[i] = s;
    }
    l->n_service = (size_t)g_refl.service_count;
    resp->message_response_case =
        GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_LIST_SERVICES_RESPONSE;
    resp->list_services_response = l;
}

static void refl_extensions(refl_response_t *resp, arena_t *a, const char *type) {
    const refl_symbol_t *s = refl_lookup(type);
    if (s == NULL) {
        refl_error(resp, a, STATUS_NOT_FOUND, "unknown type", type);
        return;
    }
    /* The suite's protos declare no extensions: the list is empty. */
    Grpc__Reflection__V1__ExtensionNumberResponse *e =
        pb_new(a, &grpc__reflection__v1__extension_number_response__descriptor);
    e->base_type_name = (char *)type;
    resp->message_response_case =
        GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ALL_EXTENSION_NUMBERS_RESPONSE;
    resp->all_extension_numbers_response = e;
}

/* One request, one response; lookup failures are answered in-band (error_response), as the
 * protocol says, and the stream goes on. v1alpha messages are wire-identical to v1: they are
 * re-read as v1 and the answer re-read as v1alpha, so one code path serves both. */
static status_t reflection_info(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                                ProtobufCMessage *resp_msg) {
    arena_t *a = ctx->arena;
    bool alpha =
        resp_msg->descriptor == &grpc__reflection__v1alpha__server_reflection_response__descriptor;
    const refl_request_t *req = (const refl_request_t *)req_msg;
    if (alpha) {
        size_t len;
        unsigned char *bytes = pb_pack_arena(a, req_msg, &len);
        req = (const refl_request_t *)pb_unpack_arena(
            a, &grpc__reflection__v1__server_reflection_request__descriptor, bytes, len);
        assert(req != NULL);
    }
    refl_response_t *resp =
        pb_new(a, &grpc__reflection__v1__server_reflection_response__descriptor);
    resp->valid_host = req->host;
    resp->original_request = (refl_request_t *)req;
    int file;
    switch (req->message_request_case) {
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_BY_FILENAME:
        file = reflection_find_file(req->file_by_filename);
        if (file < 0) {
            refl_error(resp, a, STATUS_NOT_FOUND, "unknown file", req->file_by_filename);
        } else {
            refl_files(resp, a, file);
        }
        break;
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_SYMBOL:
        file = reflection_find_symbol(req->file_containing_symbol);
        if (file < 0) {
            refl_error(resp, a, STATUS_NOT_FOUND, "unknown symbol", req->file_containing_symbol);
        } else {
            refl_files(resp, a, file);
        }
        break;
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_EXTENSION:
        refl_error(resp, a, STATUS_NOT_FOUND, "no extensions of",
                   req->file_containing_extension && req->file_containing_extension->containing_type
                       ? req->file_containing_extension->containing_type
                       : "");
        break;
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_ALL_EXTENSION_NUMBERS_OF_TYPE:
        refl_extensions(resp, a, req->all_extension_numbers_of_type);
        break;
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_LIST_SERVICES:
        refl_list(resp, a);
        break;
    default:
        refl_error(resp, a, STATUS_INVALID_ARGUMENT, "empty request", "");
        break;
    }
    const ProtobufCMessage *out = &resp->base;
    if (alpha) {
        size_t len;
        unsigned char *bytes = pb_pack_arena(a, out, &len);
        out = pb_unpack_arena(a, resp_msg->descriptor, bytes, len);
        assert(out != NULL);
    }
    return rpc_stream_send(ctx, out);
}

static const rpc_method_t reflection_methods[] = {
    {"ServerReflectionInfo", reflection_info, RPC_STREAM},
    {NULL, NULL, RPC_READ},
};

const rpc_service_t reflection_v1_service = {&grpc__reflection__v1__server_reflection__descriptor,
                                             reflection_methods, NULL};
const rpc_service_t reflection_v1alpha_service = {
    &grpc__reflection__v1alpha__server_reflection__descriptor, reflection_methods, NULL};
