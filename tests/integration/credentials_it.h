/* credentials_it.h -- for suites that run the stack with a credential file: the test process
 * calls as the service credential (it_cred_client), the file holds one admin of one merchant
 * (it_cred_start_with_admin), and teardown removes it (it_cred_teardown). Include after
 * gateway_it.h. */
#ifndef CREDENTIALS_IT_H
#define CREDENTIALS_IT_H

#include "config.h"
#include "credentials.h"
#include "gateway_it.h"

#include <unistd.h>

static const char *it_cred_service_token;
static char it_cred_path[128];
static char it_cred_env[192];

static inline const char *it_cred_client_env(const char *name, void *arg) {
    (void)arg;
    return strcmp(name, "LOYALTY_AUTH_TOKEN") == 0 ? it_cred_service_token : NULL;
}

/* The suite's set-up: the helpers of gateway_it.h then call with `service_token`, the service
 * credential (a string literal: kept for the suite). */
static inline void it_cred_setup(const char *service_token) {
    it_setup();
    it_cred_service_token = service_token;
    config_t cfg;
    status_t st = config_load(&cfg, "test", 1, it_cred_client_env, NULL);
    cr_assert(status_is_ok(&st), "%s", st.message);
    rpc_client_init(&cfg);
}

static inline void it_cred_teardown(void) {
    it_teardown();
    gw_extra_env[0] = NULL;
    if (it_cred_path[0]) {
        unlink(it_cred_path);
    }
}

/* The six services with the service token and a credential file holding one admin of `m`,
 * "shop-admin", whose token is `admin_token`; `tag` names the file. */
static inline void it_cred_start_with_admin(const char *tag, const char *m,
                                            const char *admin_token) {
    snprintf(it_cred_path, sizeof it_cred_path, "/tmp/loyalty-%s-creds-%d", tag, (int)getpid());
    FILE *f = fopen(it_cred_path, "w");
    cr_assert_not_null(f);
    uint8_t d[CRED_DIGEST_BYTES];
    cred_digest(admin_token, strlen(admin_token), d);
    fprintf(f, "shop-admin admin %s ", m);
    for (int i = 0; i < CRED_DIGEST_BYTES; i++) {
        fprintf(f, "%02x", d[i]);
    }
    fprintf(f, "\n");
    cr_assert_eq(fclose(f), 0);
    static char token_env[160];
    snprintf(token_env, sizeof token_env, "LOYALTY_AUTH_TOKEN=%s", it_cred_service_token);
    snprintf(it_cred_env, sizeof it_cred_env, "LOYALTY_CREDENTIALS_FILE=%s", it_cred_path);
    stack_start_with((const char *[]){token_env, it_cred_env, NULL});
}

#endif
