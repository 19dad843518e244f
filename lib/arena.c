/* arena.c -- bump allocator with an inline first block and overflow chunks: standard chunks
 * from malloc (a few kept for reuse up to ARENA_RETAINED_BYTES_MAX), large ones mapped. */
#include "arena.h"

#include <assert.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

struct arena_chunk {
    arena_chunk_t *next;
    size_t cap;
    size_t used;
    bool mapped; /* from mmap: returned to the system by munmap, never kept */
    _Alignas(16) unsigned char data[];
};

static void *arena_pb_alloc(void *data, size_t n) {
    return arena_alloc(data, n);
}

static void arena_pb_free(void *data, void *p) {
    (void)data;
    (void)p; /* released with the arena */
}

void arena_init(arena_t *a) {
    a->head = NULL;
    a->spare = NULL;
    a->spare_bytes = 0;
    a->bytes_total = 0;
    a->inline_used = 0;
    a->pb.alloc = arena_pb_alloc;
    a->pb.free = arena_pb_free;
    a->pb.allocator_data = a;
}

static void arena_chunk_release(arena_chunk_t *c) {
    if (c->mapped) {
        int rc = munmap(c, sizeof *c + c->cap);
        assert(rc == 0);
        (void)rc;
    } else {
        free(c);
    }
}

static void arena_release_list(arena_chunk_t *c) {
    while (c != NULL) {
        arena_chunk_t *next = c->next;
        arena_chunk_release(c);
        c = next;
    }
}

void arena_free(arena_t *a) {
    arena_release_list(a->head);
    arena_release_list(a->spare);
    a->head = NULL;
    a->spare = NULL;
    a->spare_bytes = 0;
    a->inline_used = 0;
    a->bytes_total = 0;
}

void arena_reset(arena_t *a) {
    arena_chunk_t *c = a->head;
    while (c != NULL) {
        arena_chunk_t *next = c->next;
        /* Keep standard chunks for the next message up to the cap; whatever a large request
         * needed beyond it goes back now, so a burst of big requests leaves no memory held. */
        if (!c->mapped && c->cap == ARENA_CHUNK_BYTES &&
            a->spare_bytes + c->cap <= ARENA_RETAINED_BYTES_MAX) {
            c->used = 0;
            c->next = a->spare;
            a->spare = c;
            a->spare_bytes += c->cap;
        } else {
            arena_chunk_release(c);
        }
        c = next;
    }
    a->head = NULL;
    a->inline_used = 0;
    a->bytes_total = 0;
}

size_t arena_retained_bytes(const arena_t *a) {
    return a->spare_bytes;
}

static size_t arena_round(size_t n) {
    return (n + 15u) & ~(size_t)15u;
}

static arena_chunk_t *arena_chunk_new(arena_t *a, size_t need) {
    if (need <= ARENA_CHUNK_BYTES && a->spare != NULL) {
        arena_chunk_t *c = a->spare;
        a->spare = c->next;
        a->spare_bytes -= c->cap;
        return c;
    }
    size_t cap = need > ARENA_CHUNK_BYTES ? need : ARENA_CHUNK_BYTES;
    arena_chunk_t *c;
    if (cap > ARENA_CHUNK_BYTES) {
        /* Mapped directly: malloc would keep a freed large block in its heap (its mmap
         * threshold grows after every large free), which is how RSS stayed up after 1 MB
         * requests. */
        void *p = mmap(NULL, sizeof *c + cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                       -1, 0);
        c = p == MAP_FAILED ? NULL : p;
    } else {
        c = malloc(sizeof *c + cap);
    }
    if (c == NULL) {
        fprintf(stderr, "arena: out of memory allocating %zu bytes\n", cap);
        abort();
    }
    c->cap = cap;
    c->mapped = cap > ARENA_CHUNK_BYTES;
    return c;
}

void *arena_alloc(arena_t *a, size_t n) {
    size_t need = arena_round(n ? n : 1);
    assert(need >= n);
    a->bytes_total += need;
    if (a->inline_used + need <= ARENA_INLINE_BYTES) {
        void *p = a->inline_buf + a->inline_used;
        a->inline_used += need;
        memset(p, 0, need);
        return p;
    }
    if (a->head == NULL || a->head->used + need > a->head->cap) {
        arena_chunk_t *c = arena_chunk_new(a, need);
        c->used = 0;
        c->next = a->head;
        a->head = c;
    }
    void *p = a->head->data + a->head->used;
    a->head->used += need;
    memset(p, 0, need);
    return p;
}

char *arena_strndup(arena_t *a, const char *s, size_t n) {
    char *p = arena_alloc(a, n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *arena_strdup(arena_t *a, const char *s) {
    return arena_strndup(a, s, strlen(s));
}

char *arena_printf(arena_t *a, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    assert(n >= 0);
    char *p = arena_alloc(a, (size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}

ProtobufCAllocator *arena_pb_allocator(arena_t *a) {
    return &a->pb;
}
