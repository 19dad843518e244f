/* ids.c -- time-ordered ids and random tokens from getrandom(2). */
#include "ids.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

static const char crockford[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

void id_random_bytes(void *buf, size_t n) {
    unsigned char *p = buf;
    while (n > 0) {
        ssize_t got = getrandom(p, n, 0);
        if (got < 0) {
            if (errno == EINTR) {
                continue;
            }
            abort(); /* no entropy source: nothing safe to fall back to */
        }
        p += got;
        n -= (size_t)got;
    }
}

/* Per thread, ids are strictly increasing: within one millisecond (or if the clock steps back)
 * the previous id's random part is incremented instead of drawn again, so rows written by one
 * call in sequence keep their order when sorted by id. */
static __thread uint64_t t_last_ms;
static __thread unsigned char t_last_random[10];

void id_generate(const char *prefix, char out[ID_MAX]) {
    size_t plen = strlen(prefix);
    assert(plen >= 1 && plen <= ID_PREFIX_MAX);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t ms = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
    unsigned char bytes[16];
    if (ms <= t_last_ms) {
        ms = t_last_ms;
        for (int i = 9; i >= 0; i--) { /* +1 with carry; 2^80 ids per ms cannot overflow */
            if (++t_last_random[i] != 0) {
                break;
            }
        }
    } else {
        id_random_bytes(t_last_random, sizeof t_last_random);
        t_last_random[0] &= 0x7f; /* headroom for increments */
        t_last_ms = ms;
    }
    for (int i = 0; i < 6; i++) {
        bytes[i] = (unsigned char)(ms >> (40 - 8 * i));
    }
    memcpy(bytes + 6, t_last_random, sizeof t_last_random);
    memcpy(out, prefix, plen);
    out[plen] = '_';
    char *p = out + plen + 1;
    /* 128 bits as 26 base32 digits, most significant first (the first digit carries 3 bits). */
    for (int i = 0; i < 26; i++) {
        int bit = 128 - 5 * (26 - i); /* index of the digit's lowest bit from the top, may be <0 */
        unsigned int v = 0;
        for (int b = 0; b < 5; b++) {
            int pos = bit + b; /* bit position from the most significant end */
            if (pos < 0) {
                continue;
            }
            unsigned int bitval = (bytes[pos / 8] >> (7 - pos % 8)) & 1u;
            v = (v << 1) | bitval;
        }
        p[i] = crockford[v & 31u];
    }
    p[26] = '\0';
}

void id_random_token(const char *alphabet, size_t n, char *out) {
    size_t k = strlen(alphabet);
    assert(k >= 2 && k <= 256);
    unsigned int limit = 256u - (256u % (unsigned int)k); /* reject above to avoid bias */
    size_t i = 0;
    while (i < n) {
        unsigned char buf[64];
        id_random_bytes(buf, sizeof buf);
        for (size_t j = 0; j < sizeof buf && i < n; j++) {
            if (buf[j] < limit) {
                out[i++] = alphabet[buf[j] % k];
            }
        }
    }
    out[n] = '\0';
}
