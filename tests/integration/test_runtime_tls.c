/* test_runtime_tls.c -- TLS between callers and services (docs/architecture.md#conventions): with a
 * certificate and key configured the service speaks only TLS; a client trusting the issuing CA gets
 * through, a plaintext client does not. Certificates are made for the test with the openssl CLI. */
#include "config.h"
#include "harness.h"
#include "loyalty/v1/member.pb-c.h"

#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[256];

static void setup(void) {
    snprintf(dir, sizeof dir, "/tmp/loyalty-tls-%d", (int)getpid());
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "set -e; mkdir -p %s; cd %s; "
             "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=loyalty-test-ca "
             " -keyout ca.key -out ca.pem 2>/dev/null; "
             "openssl req -newkey rsa:2048 -nodes -subj /CN=member-svc -keyout svc.key "
             " -out svc.csr 2>/dev/null; "
             "printf 'subjectAltName=IP:127.0.0.1,DNS:localhost' > ext.cnf; "
             "openssl x509 -req -in svc.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 "
             " -extfile ext.cnf -out svc.pem 2>/dev/null",
             dir, dir);
    cr_assert_eq(system(cmd), 0, "openssl could not make the test certificates");
}

static void teardown(void) {
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_expect_eq(system(cmd), 0);
}

TestSuite(runtime_tls, .init = setup, .fini = teardown, .timeout = 60);

/* Runs loyalty-health with `env_and_args` around it; its exit code. */
static int health_tool(const char *env, const char *args) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "env %s %s/tools/loyalty-health %s >/dev/null 2>&1", env,
             LOYALTY_TEST_BUILD_DIR, args);
    int ws = system(cmd);
    cr_assert(ws != -1 && WIFEXITED(ws), "%s did not run", cmd);
    return WEXITSTATUS(ws);
}

static status_t get_member(const char *addr, arena_t *arena, bool wait_for_ready) {
    Loyalty__V1__GetMemberRequest req = LOYALTY__V1__GET_MEMBER_REQUEST__INIT;
    req.merchant_id = "tls";
    req.lookup_case = LOYALTY__V1__GET_MEMBER_REQUEST__LOOKUP_MEMBER_ID;
    req.member_id = "mbr_none";
    rpc_call_opts_t opts = {.timeout_ms = 2000, .wait_for_ready = wait_for_ready};
    return rpc_call(rpc_channel_get(addr), &loyalty__v1__member_service__descriptor, "GetMember",
                    &req.base, arena, NULL, &opts);
}

Test(runtime_tls, service_serves_tls_to_clients_that_trust_its_ca) {
    /* Goal: the TLS-configured service answers a TLS client (NOT_FOUND for an unknown member
     * proves the call went through), and refuses a plaintext one. */
    char cert[320], key[320], ca[320];
    snprintf(cert, sizeof cert, "LOYALTY_TLS_CERT=%s/svc.pem", dir);
    snprintf(key, sizeof key, "LOYALTY_TLS_KEY=%s/svc.key", dir);
    const char *env[] = {cert, key, NULL};
    /* The harness probes health in plaintext, so start the process by hand and probe TLS. */
    harness_init();
    config_t cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.client_timeout_ms = 2000;
    cfg.max_message_bytes = 4194304;
    snprintf(ca, sizeof ca, "%s/ca.pem", dir);
    snprintf(cfg.tls_ca_path, sizeof cfg.tls_ca_path, "%s", ca);
    rpc_client_init(&cfg);

    static svc_proc_t svc; /* tracked by the harness, so a failed assertion cannot orphan it */
    memset(&svc, 0, sizeof svc);
    snprintf(svc.name, sizeof svc.name, "member-svc");
    svc.port = harness_free_port();
    snprintf(svc.addr, sizeof svc.addr, "localhost:%d", svc.port);
    snprintf(svc.log_path, sizeof svc.log_path, "%s/member-svc.log", dir);
    svc.env[0] = env[0];
    svc.env[1] = env[1];
    char listen[64];
    snprintf(listen, sizeof listen, "LISTEN_ADDR=127.0.0.1:%d", svc.port);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        freopen(svc.log_path, "w", stdout);
        putenv(listen);
        putenv(cert);
        putenv(key);
        execl(LOYALTY_TEST_BUILD_DIR "/member-svc/member-svc", "member-svc", (char *)NULL);
        _exit(127);
    }
    svc.pid = pid;
    harness_track(&svc);
    arena_t arena;
    arena_init(&arena);
    status_t st = status_make(STATUS_UNAVAILABLE, REASON_NONE, "not tried");
    for (int i = 0; i < 100 && st.code != STATUS_NOT_FOUND; i++) {
        st = get_member(svc.addr, &arena, true); /* waits while the service starts */
        if (st.code != STATUS_NOT_FOUND) {
            usleep(100 * 1000);
        }
    }
    cr_assert_eq(st.code, STATUS_NOT_FOUND, "TLS call: %s %s", status_code_name(st.code),
                 st.message);
    rpc_client_shutdown();

    /* The probe tool: --tls trusting LOYALTY_TLS_CA gets SERVING, by address or by
     * LISTEN_ADDR's port on 127.0.0.1; plaintext gets nothing; --tls without a CA is a usage
     * error, not a silent fallback. */
    char ca_env[400], args[160], listen_env[64], ip_addr[64];
    snprintf(ca_env, sizeof ca_env, "LOYALTY_TLS_CA=%s", ca);
    /* By IP (the certificate names it too): resolving a name leaks in c-ares under LSan. */
    snprintf(ip_addr, sizeof ip_addr, "127.0.0.1:%d", svc.port);
    snprintf(args, sizeof args, "--tls %s", ip_addr);
    cr_assert_eq(health_tool(ca_env, args), 0, "loyalty-health --tls %s", ip_addr);
    snprintf(listen_env, sizeof listen_env, "LISTEN_ADDR=127.0.0.1:%d", svc.port);
    char both_env[500];
    snprintf(both_env, sizeof both_env, "%s %s", ca_env, listen_env);
    cr_assert_eq(health_tool(both_env, "--tls"), 0, "loyalty-health --tls on LISTEN_ADDR");
    cr_assert_eq(health_tool(ca_env, ip_addr), 1, "plaintext must not get SERVING");
    cr_assert_eq(health_tool("-u LOYALTY_TLS_CA", args), 2);
    cr_assert_eq(health_tool("LOYALTY_TLS_CA=/nonexistent/ca.pem", args), 2);

    rpc_client_init(NULL); /* plaintext from here on */
    char plain_addr[64];
    snprintf(plain_addr, sizeof plain_addr, "127.0.0.1:%d", svc.port);
    st = get_member(plain_addr, &arena, false);
    cr_assert_eq(st.code, STATUS_UNAVAILABLE, "a plaintext call must not get through: %s",
                 status_code_name(st.code));
    cr_assert_eq(harness_stop(&svc), 0);
    arena_free(&arena);
    harness_fini();
}
