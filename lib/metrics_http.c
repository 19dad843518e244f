/* metrics_http.c -- /metrics, /livez and /readyz on libmicrohttpd. */
#include "metrics_http.h"

#include "health.h"
#include "log.h"
#include "metrics.h"

#include <microhttpd.h>

#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#define HTTP_CONNECTIONS_MAX 64
#define HTTP_CONNECTION_TIMEOUT_S 10

static struct MHD_Daemon *g_daemon;
static int g_port;

static enum MHD_Result http_send(struct MHD_Connection *conn, unsigned int code,
                                 const char *content_type, void *body, size_t len,
                                 enum MHD_ResponseMemoryMode mode) {
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, body, mode);
    if (resp == NULL) {
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    enum MHD_Result ret = MHD_queue_response(conn, code, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result http_text(struct MHD_Connection *conn, unsigned int code, const char *text) {
    return http_send(conn, code, "text/plain; charset=utf-8", (void *)text, strlen(text),
                     MHD_RESPMEM_PERSISTENT);
}

/* One request: answered at once (GET carries no body to wait for). */
static enum MHD_Result http_handle(void *cls, struct MHD_Connection *conn, const char *url,
                                   const char *method, const char *version, const char *upload_data,
                                   size_t *upload_data_size, void **req_cls) {
    (void)cls;
    (void)version;
    (void)upload_data;
    (void)req_cls;
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0) {
        return http_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET\n");
    }
    if (*upload_data_size != 0) {
        *upload_data_size = 0; /* a body on a GET is ignored */
        return MHD_YES;
    }
    if (strcmp(url, "/livez") == 0) {
        return http_text(conn, MHD_HTTP_OK, "ok\n");
    }
    if (strcmp(url, "/readyz") == 0) {
        return health_is_serving() ? http_text(conn, MHD_HTTP_OK, "ready\n")
                                   : http_text(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "not ready\n");
    }
    if (strcmp(url, "/metrics") == 0) {
        size_t len = 0;
        char *text = metrics_render(&len);
        if (text == NULL) {
            return http_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
        }
        /* MUST_FREE: libmicrohttpd frees it with free() once sent */
        return http_send(conn, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", text, len,
                         MHD_RESPMEM_MUST_FREE);
    }
    return http_text(conn, MHD_HTTP_NOT_FOUND, "not found: /metrics, /livez, /readyz\n");
}

static void http_log(void *cls, const char *fmt, va_list ap) {
    (void)cls;
    char line[512];
    vsnprintf(line, sizeof line, fmt, ap);
    size_t n = strlen(line);
    while (n > 0 && line[n - 1] == '\n') {
        line[--n] = '\0';
    }
    log_msg(LOG_WARN, "metrics http: %s", line);
}

/* Splits "host:port" / "[v6]:port" and resolves it for listening. */
static status_t http_resolve(const char *addr, struct sockaddr_storage *out, socklen_t *out_len) {
    char host[256];
    const char *colon = strrchr(addr, ':');
    if (colon == NULL || (size_t)(colon - addr) >= sizeof host) {
        return status_make(STATUS_INVALID_ARGUMENT, REASON_INVALID_CONFIG,
                           "METRICS_ADDR: expected host:port");
    }
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = '\0';
    char *h = host;
    size_t hl = strlen(h);
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
        h[hl - 1] = '\0';
        h++;
    }
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
    struct addrinfo *res = NULL;
    int err = getaddrinfo(h[0] ? h : NULL, colon + 1, &hints, &res);
    if (err != 0 || res == NULL) {
        return status_make(STATUS_INVALID_ARGUMENT, REASON_INVALID_CONFIG,
                           "METRICS_ADDR: cannot resolve %s: %s", addr, gai_strerror(err));
    }
    memcpy(out, res->ai_addr, res->ai_addrlen);
    *out_len = res->ai_addrlen;
    freeaddrinfo(res);
    return status_ok();
}

status_t metrics_http_start(const char *addr) {
    if (g_daemon != NULL) {
        return status_make(STATUS_INTERNAL, REASON_ALREADY_STARTED, "metrics http already serving");
    }
    struct sockaddr_storage sa;
    socklen_t sa_len = 0;
    status_t st = http_resolve(addr, &sa, &sa_len);
    if (!status_is_ok(&st)) {
        return st;
    }
    unsigned int flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG;
    if (sa.ss_family == AF_INET6) {
        flags |= MHD_USE_IPv6;
    }
    g_daemon = MHD_start_daemon(flags, 0, NULL, NULL, http_handle, NULL, MHD_OPTION_EXTERNAL_LOGGER,
                                http_log, NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
                                MHD_OPTION_CONNECTION_LIMIT, (unsigned int)HTTP_CONNECTIONS_MAX,
                                MHD_OPTION_CONNECTION_TIMEOUT,
                                (unsigned int)HTTP_CONNECTION_TIMEOUT_S, MHD_OPTION_END);
    if (g_daemon == NULL) {
        return status_make(STATUS_UNAVAILABLE, REASON_LISTEN_FAILED,
                           "cannot listen on METRICS_ADDR %s", addr);
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(g_daemon, MHD_DAEMON_INFO_BIND_PORT);
    g_port = info ? info->port : 0;
    return status_ok();
}

int metrics_http_port(void) {
    return g_port;
}

void metrics_http_stop(void) {
    if (g_daemon != NULL) {
        MHD_stop_daemon(g_daemon);
        g_daemon = NULL;
        g_port = 0;
    }
}
