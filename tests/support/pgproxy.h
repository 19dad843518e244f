/* pgproxy.h -- integration-test support: a TCP proxy between a service and PostgreSQL that
 * forwards bytes both ways until the service sends a chosen text (a saga step's name, say) for
 * the n-th time; then it cuts every connection before those bytes reach the server, and refuses
 * every new connection until the test restores it -- what a service sees when its database
 * fails over in the middle of a write. One proxy per test process, on its own thread. */
#ifndef LOYALTY_TEST_PGPROXY_H
#define LOYALTY_TEST_PGPROXY_H

#include <stdbool.h>

#define PGPROXY_TRIGGER_MAX 96

/** Starts the proxy on a free loopback port in front of `upstream_port` on 127.0.0.1; returns
 *  the port it listens on. Aborts the test on failure. */
int pgproxy_start(int upstream_port);

/** From now on, cut everything when the client side has sent `text` `nth` times (counted from
 *  this call; 1 = the first time). */
void pgproxy_arm(const char *text, int nth);

/** True once an armed trigger fired (and the proxy refuses connections). */
bool pgproxy_cut(void);

/** Accepts and forwards again; disarms the trigger. */
void pgproxy_restore(void);

/** Stops the thread and closes every socket. */
void pgproxy_stop(void);

/** `dsn` with its port replaced by `port` (static memory, valid until the next call). */
const char *pgproxy_dsn(const char *dsn, int port);

/** The `port=` of a libpq key/value DSN (5432 when absent). */
int pgproxy_dsn_port(const char *dsn);

#endif
