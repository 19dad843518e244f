/* arena.h -- a per-request bump allocator. Everything allocated for one RPC (the decoded
 * request, the response, strings built by handlers and the store) lives in the call's arena and
 * is released at once when the call completes (house style: memory contexts). Not thread-safe:
 * an arena belongs to one call at a time. */
#ifndef LOYALTY_ARENA_H
#define LOYALTY_ARENA_H

#include <protobuf-c/protobuf-c.h>

#include <stdbool.h>
#include <stddef.h>

#define ARENA_INLINE_BYTES 4096
/* Standard chunk size; a larger allocation gets a chunk of its own, mapped with mmap and
 * unmapped when the call (or stream message) ends, so it never stays in malloc's heap. */
#define ARENA_CHUNK_BYTES 16384
/* What an arena keeps between the messages of a stream (arena_reset) for reuse: at most this
 * many bytes of standard chunks; everything above it is freed when the message ends. */
#define ARENA_RETAINED_BYTES_MAX 65536

typedef struct arena_chunk arena_chunk_t;

typedef struct arena {
    arena_chunk_t *head;  /* most recent chunk */
    arena_chunk_t *spare; /* standard chunks kept by arena_reset for reuse */
    size_t spare_bytes;   /* their capacity, at most ARENA_RETAINED_BYTES_MAX */
    size_t bytes_total;  /* allocated so far, for limits and metrics */
    ProtobufCAllocator pb;
    _Alignas(16) unsigned char inline_buf[ARENA_INLINE_BYTES];
    size_t inline_used;
} arena_t;

void arena_init(arena_t *a);
/** Releases every chunk; the arena can be reused after arena_init. */
void arena_free(arena_t *a);
/** Ends one use of the arena (one stream message): every allocation is gone, standard chunks
 *  up to ARENA_RETAINED_BYTES_MAX are kept for the next use and the rest is freed. */
void arena_reset(arena_t *a);
/** Bytes of chunks kept for reuse (never above ARENA_RETAINED_BYTES_MAX). */
size_t arena_retained_bytes(const arena_t *a);
/** Zeroed, 16-byte aligned memory valid until arena_free. Aborts when memory is exhausted. */
void *arena_alloc(arena_t *a, size_t n);
char *arena_strdup(arena_t *a, const char *s);
char *arena_strndup(arena_t *a, const char *s, size_t n);
char *arena_printf(arena_t *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/** A protobuf-c allocator drawing from the arena; its free is a no-op. */
ProtobufCAllocator *arena_pb_allocator(arena_t *a);

#endif
