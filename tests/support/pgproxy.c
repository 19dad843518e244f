/* pgproxy.c -- the database-outage proxy of the integration tests (pgproxy.h): one thread polls
 * the listening socket and every connection pair, copies bytes across, and watches what the
 * client side sends for the armed text. */
#define _GNU_SOURCE
#include "pgproxy.h"

#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define PAIRS_MAX 128
#define CHUNK_BYTES 65536

typedef struct pair {
    int client_fd, server_fd; /* -1 when free */
    char tail[PGPROXY_TRIGGER_MAX]; /* the last bytes the client sent: a match may span reads */
    size_t tail_len;
} pair_t;

static struct {
    pthread_t thread;
    pthread_mutex_t mu;
    int listen_fd;
    int upstream_port;
    bool running, stop;
    char trigger[PGPROXY_TRIGGER_MAX];
    int nth, seen;
    bool cut;
    pair_t pairs[PAIRS_MAX];
} px = {.mu = PTHREAD_MUTEX_INITIALIZER, .listen_fd = -1};

static void pair_close(pair_t *p) {
    if (p->client_fd >= 0) {
        close(p->client_fd);
    }
    if (p->server_fd >= 0) {
        close(p->server_fd);
    }
    p->client_fd = p->server_fd = -1;
    p->tail_len = 0;
}

static bool write_all(int fd, const char *buf, size_t len) {
    while (len > 0) {
        ssize_t w = send(fd, buf, len, MSG_NOSIGNAL);
        if (w <= 0) {
            return false;
        }
        buf += w;
        len -= (size_t)w;
    }
    return true;
}

static int dial_upstream(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
        return -1;
    }
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)px.upstream_port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void accept_one(void) {
    int fd = accept(px.listen_fd, NULL, NULL);
    if (fd < 0) {
        return;
    }
    pthread_mutex_lock(&px.mu);
    bool refuse = px.cut;
    pthread_mutex_unlock(&px.mu);
    int up = refuse ? -1 : dial_upstream();
    if (up < 0) {
        close(fd); /* the database is "down": the service sees its connection refused */
        return;
    }
    for (int i = 0; i < PAIRS_MAX; i++) {
        if (px.pairs[i].client_fd < 0) {
            px.pairs[i].client_fd = fd;
            px.pairs[i].server_fd = up;
            px.pairs[i].tail_len = 0;
            return;
        }
    }
    close(fd);
    close(up);
}

/* Counts the trigger in what the client sent (with the tail of its previous bytes); true when
 * the armed count is reached: the bytes must not be forwarded. */
static bool trigger_fires(pair_t *p, const char *data, size_t len) {
    pthread_mutex_lock(&px.mu);
    size_t tlen = strlen(px.trigger);
    bool fire = false;
    if (tlen > 0 && !px.cut) {
        size_t blen = p->tail_len + len;
        char *buf = malloc(blen);
        cr_assert_not_null(buf);
        memcpy(buf, p->tail, p->tail_len);
        memcpy(buf + p->tail_len, data, len);
        /* The tail is shorter than the trigger, so no match lies wholly in it (none counts
         * twice). */
        for (const char *at = buf; (at = memmem(at, blen - (size_t)(at - buf), px.trigger, tlen));
             at++) {
            if (++px.seen >= px.nth) {
                fire = true;
                break;
            }
        }
        size_t keep = tlen - 1 < blen ? tlen - 1 : blen;
        memcpy(p->tail, buf + blen - keep, keep);
        p->tail_len = keep;
        free(buf);
        if (fire) {
            px.cut = true;
        }
    }
    pthread_mutex_unlock(&px.mu);
    return fire;
}

static void cut_all(void) {
    for (int i = 0; i < PAIRS_MAX; i++) {
        pair_close(&px.pairs[i]);
    }
}

/* Moves what is readable on one side of a pair to the other; false when the pair ended. */
static bool pump(pair_t *p, bool from_client, char *buf) {
    int from = from_client ? p->client_fd : p->server_fd;
    int to = from_client ? p->server_fd : p->client_fd;
    ssize_t r = recv(from, buf, CHUNK_BYTES, 0);
    if (r <= 0) {
        return false;
    }
    if (from_client && trigger_fires(p, buf, (size_t)r)) {
        cut_all();
        return true;
    }
    return write_all(to, buf, (size_t)r);
}

static void *proxy_main(void *arg) {
    (void)arg;
    char *buf = malloc(CHUNK_BYTES);
    cr_assert_not_null(buf);
    for (;;) {
        pthread_mutex_lock(&px.mu);
        bool stop = px.stop;
        pthread_mutex_unlock(&px.mu);
        if (stop) {
            break;
        }
        struct pollfd fds[1 + 2 * PAIRS_MAX];
        int who[1 + 2 * PAIRS_MAX];
        nfds_t n = 0;
        fds[n] = (struct pollfd){.fd = px.listen_fd, .events = POLLIN};
        who[n++] = -1;
        for (int i = 0; i < PAIRS_MAX; i++) {
            if (px.pairs[i].client_fd >= 0) {
                fds[n] = (struct pollfd){.fd = px.pairs[i].client_fd, .events = POLLIN};
                who[n++] = 2 * i;
                fds[n] = (struct pollfd){.fd = px.pairs[i].server_fd, .events = POLLIN};
                who[n++] = 2 * i + 1;
            }
        }
        if (poll(fds, n, 50) <= 0) {
            continue;
        }
        for (nfds_t k = 0; k < n; k++) {
            if (fds[k].revents == 0) {
                continue;
            }
            if (who[k] < 0) {
                accept_one();
                continue;
            }
            pair_t *p = &px.pairs[who[k] / 2];
            if (p->client_fd < 0) {
                continue; /* cut earlier in this round */
            }
            if (!pump(p, who[k] % 2 == 0, buf)) {
                pair_close(p);
            }
        }
    }
    free(buf);
    return NULL;
}

int pgproxy_start(int upstream_port) {
    cr_assert(!px.running, "one proxy per test");
    for (int i = 0; i < PAIRS_MAX; i++) {
        px.pairs[i].client_fd = px.pairs[i].server_fd = -1;
    }
    px.upstream_port = upstream_port;
    px.stop = px.cut = false;
    px.trigger[0] = '\0';
    px.listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert(px.listen_fd >= 0);
    int one = 1;
    setsockopt(px.listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(bind(px.listen_fd, (struct sockaddr *)&sa, sizeof sa), 0);
    cr_assert_eq(listen(px.listen_fd, 128), 0);
    socklen_t len = sizeof sa;
    cr_assert_eq(getsockname(px.listen_fd, (struct sockaddr *)&sa, &len), 0);
    cr_assert_eq(pthread_create(&px.thread, NULL, proxy_main, NULL), 0);
    px.running = true;
    return ntohs(sa.sin_port);
}

void pgproxy_arm(const char *text, int nth) {
    cr_assert(nth >= 1 && strlen(text) > 0 && strlen(text) < PGPROXY_TRIGGER_MAX);
    pthread_mutex_lock(&px.mu);
    snprintf(px.trigger, sizeof px.trigger, "%s", text);
    px.nth = nth;
    px.seen = 0;
    px.cut = false;
    pthread_mutex_unlock(&px.mu);
}

bool pgproxy_cut(void) {
    pthread_mutex_lock(&px.mu);
    bool cut = px.cut;
    pthread_mutex_unlock(&px.mu);
    return cut;
}

void pgproxy_restore(void) {
    pthread_mutex_lock(&px.mu);
    px.trigger[0] = '\0';
    px.cut = false;
    pthread_mutex_unlock(&px.mu);
}

void pgproxy_stop(void) {
    if (!px.running) {
        return;
    }
    pthread_mutex_lock(&px.mu);
    px.stop = true;
    pthread_mutex_unlock(&px.mu);
    pthread_join(px.thread, NULL);
    cut_all();
    close(px.listen_fd);
    px.listen_fd = -1;
    px.running = false;
}

int pgproxy_dsn_port(const char *dsn) {
    const char *p = strstr(dsn, "port=");
    return p ? atoi(p + strlen("port=")) : 5432;
}

const char *pgproxy_dsn(const char *dsn, int port) {
    static char out[640];
    const char *p = strstr(dsn, "port=");
    if (p == NULL) {
        snprintf(out, sizeof out, "%s port=%d", dsn, port);
        return out;
    }
    const char *end = p + strlen("port=");
    while (*end >= '0' && *end <= '9') {
        end++;
    }
    snprintf(out, sizeof out, "%.*sport=%d%s", (int)(p - dsn), dsn, port, end);
    return out;
}
