/* rpc_count.c -- an LD_PRELOAD library for bench/checkout_bench.sh: counts the gRPC calls a
 * process serves and makes, so that the benchmark can print RPCs per checkout for each service
 * without a counter in the services themselves. It wraps grpc_call_start_batch (the one entry
 * point through which the runtime starts every operation of a call): a batch that sends the
 * server's status ends one call served, a batch that receives the status on the client side
 * ends one call made. The two counts live in a file of two native 64-bit integers named by
 * $BENCH_RPC_COUNT_FILE, mapped shared, so that a reader (`od -An -t u8`) sees them at any time
 * while the process runs. Without that variable the library only passes calls through. */
#define _GNU_SOURCE
#include <grpc/grpc.h>

#include <dlfcn.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

typedef grpc_call_error (*start_batch_fn)(grpc_call *call, const grpc_op *ops, size_t nops,
                                          void *tag, void *reserved);

enum { COUNT_SERVED, COUNT_MADE, COUNT_N };

static start_batch_fn g_next;
static _Atomic uint64_t *g_counts;

__attribute__((constructor)) static void rpc_count_open(void) {
    g_next = (start_batch_fn)dlsym(RTLD_NEXT, "grpc_call_start_batch");
    const char *path = getenv("BENCH_RPC_COUNT_FILE");
    if (path == NULL || path[0] == '\0') {
        return;
    }
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        perror("rpc_count: open");
        return;
    }
    size_t len = sizeof(uint64_t) * COUNT_N;
    if (ftruncate(fd, (off_t)len) != 0) {
        perror("rpc_count: ftruncate");
        close(fd);
        return;
    }
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (p == MAP_FAILED) {
        perror("rpc_count: mmap");
        return;
    }
    g_counts = p;
}

grpc_call_error grpc_call_start_batch(grpc_call *call, const grpc_op *ops, size_t nops, void *tag,
                                      void *reserved) {
    if (g_counts != NULL) {
        for (size_t i = 0; i < nops; i++) {
            if (ops[i].op == GRPC_OP_SEND_STATUS_FROM_SERVER) {
                atomic_fetch_add_explicit(&g_counts[COUNT_SERVED], 1, memory_order_relaxed);
            } else if (ops[i].op == GRPC_OP_RECV_STATUS_ON_CLIENT) {
                atomic_fetch_add_explicit(&g_counts[COUNT_MADE], 1, memory_order_relaxed);
            }
        }
    }
    if (g_next == NULL) {
        /* Only when the process does not link libgrpc: nothing can have a call to start. */
        abort();
    }
    return g_next(call, ops, nops, tag, reserved);
}
