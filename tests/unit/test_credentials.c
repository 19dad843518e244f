/* test_credentials.c -- the credential file's format, lookup by the token's SHA-256, and the
 * role and merchant decisions (lib/credentials.c); the process-wide set's reload. */
#include "credentials.h"

#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* sha256("test") and sha256("abc") (FIPS 180-2 example), and sha256 of "shop2-token". */
#define SHA_TEST "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
#define SHA_ABC "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"

static bool is_ok(status_t st) {
    return st.code == STATUS_OK;
}

static const cred_entry_t *find_token(const cred_set_t *set, const char *token) {
    uint8_t d[CRED_DIGEST_BYTES];
    cred_digest(token, strlen(token), d);
    return cred_set_find(set, d);
}

Test(credentials, digest_is_sha256) {
    uint8_t d[CRED_DIGEST_BYTES];
    cred_digest("abc", 3, d);
    char hex[2 * CRED_DIGEST_BYTES + 1];
    for (int i = 0; i < CRED_DIGEST_BYTES; i++) {
        snprintf(hex + 2 * i, 3, "%02x", d[i]);
    }
    cr_assert_str_eq(hex, SHA_ABC);
}

Test(credentials, parses_the_documented_format) {
    const char *text = "# id          role        merchants        sha256(token), hex\n"
                       "\n"
                       "shop1-web     storefront  shop-1           " SHA_TEST "\n"
                       "  ops-team\tadmin  *  " SHA_ABC "   # the operators\n"
                       "shop23-admin admin shop-3,shop-2 " SHA_TEST "x\n";
    cred_set_t *set = NULL;
    status_t st = cred_set_parse(text, &set);
    cr_assert_eq(st.code, STATUS_INVALID_ARGUMENT, "a 65-digit hash is refused");
    cr_assert(strstr(st.message, "line 5") != NULL, "%s", st.message);
    cr_assert_null(set);

    text = "# id          role        merchants        sha256(token), hex\n"
           "shop1-web     storefront  shop-1           " SHA_TEST "\n"
           "  ops-team\tadmin  *  " SHA_ABC "   # the operators\r\n";
    st = cred_set_parse(text, &set);
    cr_assert(status_is_ok(&st), "%s", st.message);
    cr_assert_eq(cred_set_count(set), 2);
    const cred_entry_t *shop = find_token(set, "test");
    cr_assert_not_null(shop);
    cr_assert_str_eq(shop->id, "shop1-web");
    cr_assert_eq(shop->role, CRED_ROLE_STOREFRONT);
    cr_assert_eq(shop->merchant_count, 1);
    cr_assert_str_eq(shop->merchants[0], "shop-1");
    const cred_entry_t *ops = find_token(set, "abc");
    cr_assert_not_null(ops);
    cr_assert_eq(ops->role, CRED_ROLE_ADMIN);
    cr_assert(ops->every_merchant);
    cr_assert_null(find_token(set, "tesT"));
    cr_assert_null(find_token(set, ""));
    cr_assert_null(find_token(set, SHA_TEST), "the hash itself is not the token");
    cred_set_free(set);
}

Test(credentials, refuses_bad_lines_naming_them) {
    const char *bad[] = {
        "a storefront x y " SHA_TEST "\n",                            /* 5 fields */
        "a storefront " SHA_TEST "\n",                                /* 3 fields */
        "a owner shop-1 " SHA_TEST "\n",                              /* unknown role */
        "a storefront * " SHA_TEST "\n",                              /* * for a storefront */
        "a admin shop-1,* " SHA_TEST "\n",                            /* * not alone */
        "a admin shop/1 " SHA_TEST "\n",                              /* bad merchant id */
        "a/b admin shop-1 " SHA_TEST "\n",                            /* bad id */
        "service admin shop-1 " SHA_TEST "\n",                        /* the shared token's id */
        "a admin shop-1 " SHA_TEST "\nb admin shop-2 " SHA_TEST "\n", /* the same token */
        "a admin shop-1 " SHA_TEST "\na admin shop-2 " SHA_ABC "\n",  /* the same id */
        "a admin shop-1 " SHA_TEST "0\n",                             /* 65 digits */
        "a admin shop-1 zz" SHA_TEST "\n",                            /* not hex */
        "a admin , " SHA_TEST "\n",                                   /* no merchant */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cred_set_t *set = NULL;
        status_t st = cred_set_parse(bad[i], &set);
        cr_assert_eq(st.code, STATUS_INVALID_ARGUMENT, "case %zu: %s", i, bad[i]);
        cr_assert_str_eq(st.reason, "INVALID_CREDENTIALS");
        cr_assert(strncmp(st.message, "line ", 5) == 0, "%s", st.message);
        cr_assert_null(set);
    }
    cred_set_t *set = NULL;
    status_t st = cred_set_parse("a admin shop-2,,shop-1 " SHA_TEST, &set);
    cr_assert(status_is_ok(&st), "%s", st.message);
    cr_assert_eq(find_token(set, "test")->merchant_count, 2);
    cred_set_free(set);
}

Test(credentials, the_service_token_joins_as_service_of_every_merchant) {
    cred_set_t *set = NULL;
    status_t st = cred_set_parse("shop1 storefront shop-1 " SHA_TEST "\n", &set);
    cr_assert(status_is_ok(&st));
    st = cred_set_add_service(set, "abc");
    cr_assert(status_is_ok(&st), "%s", st.message);
    const cred_entry_t *svc = find_token(set, "abc");
    cr_assert_not_null(svc);
    cr_assert_str_eq(svc->id, CRED_SERVICE_ID);
    cr_assert_eq(svc->role, CRED_ROLE_SERVICE);
    cr_assert(svc->every_merchant);
    st = cred_set_add_service(set, "test");
    cr_assert_eq(st.code, STATUS_INVALID_ARGUMENT, "a file credential with the shared token");
    cred_set_free(set);
}

static status_t authorize(const cred_set_t *set, const char *token, cred_access_t access,
                          const char *merchant) {
    return cred_authorize(find_token(set, token), access, merchant);
}

static void expect(status_t st, status_code_t code, const char *reason) {
    cr_assert_eq(st.code, code, "%s: %s", st.reason, st.message);
    cr_assert_str_eq(st.reason, reason);
}

Test(credentials, roles_and_merchants_decide) {
    cred_set_t *set = NULL;
    status_t st = cred_set_parse(
        "shopA storefront m-a " SHA_TEST "\n"
        "adminA admin m-c,m-a " SHA_ABC "\n"
        "ops admin * 2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824\n",
        &set);
    cr_assert(status_is_ok(&st), "%s", st.message);
    cr_assert(is_ok((st = cred_set_add_service(set, "svc-token"))));
    /* "hello" is the ops token (sha256 above). */
    expect(authorize(set, "nope", CRED_ACCESS_STOREFRONT, "m-a"), STATUS_UNAUTHENTICATED,
           "UNAUTHENTICATED");
    expect(authorize(set, "test", CRED_ACCESS_STOREFRONT, "m-a"), STATUS_OK, "");
    expect(authorize(set, "test", CRED_ACCESS_STOREFRONT, "m-b"), STATUS_PERMISSION_DENIED,
           "MERCHANT_NOT_ALLOWED");
    expect(authorize(set, "test", CRED_ACCESS_ADMIN, "m-a"), STATUS_PERMISSION_DENIED,
           "ROLE_NOT_ALLOWED");
    expect(authorize(set, "test", CRED_ACCESS_ADMIN, "m-b"), STATUS_PERMISSION_DENIED,
           "ROLE_NOT_ALLOWED");
    expect(authorize(set, "test", CRED_ACCESS_ANY, ""), STATUS_OK, "");
    expect(authorize(set, "abc", CRED_ACCESS_ADMIN, "m-a"), STATUS_OK, "");
    expect(authorize(set, "abc", CRED_ACCESS_ADMIN, "m-c"), STATUS_OK, "");
    expect(authorize(set, "abc", CRED_ACCESS_STOREFRONT, "m-c"), STATUS_OK, "");
    expect(authorize(set, "abc", CRED_ACCESS_ADMIN, "m-b"), STATUS_PERMISSION_DENIED,
           "MERCHANT_NOT_ALLOWED");
    expect(authorize(set, "abc", CRED_ACCESS_ADMIN, "m-"), STATUS_PERMISSION_DENIED,
           "MERCHANT_NOT_ALLOWED");
    expect(authorize(set, "abc", CRED_ACCESS_ADMIN, ""), STATUS_PERMISSION_DENIED,
           "MERCHANT_NOT_ALLOWED");
    expect(authorize(set, "hello", CRED_ACCESS_ADMIN, ""), STATUS_OK, "");
    expect(authorize(set, "hello", CRED_ACCESS_ADMIN, "m-zzz"), STATUS_OK, "");
    expect(authorize(set, "svc-token", CRED_ACCESS_ADMIN, "m-zzz"), STATUS_OK, "");
    expect(authorize(set, "svc-token", CRED_ACCESS_STOREFRONT, "m-zzz"), STATUS_OK, "");
    expect(authorize(set, "svc-token", CRED_ACCESS_ADMIN, ""), STATUS_PERMISSION_DENIED,
           "ROLE_NOT_ALLOWED");
    expect(authorize(set, "test", CRED_ACCESS_STOREFRONT, ""), STATUS_PERMISSION_DENIED,
           "ROLE_NOT_ALLOWED");
    cred_set_free(set);
}

static void write_file(const char *path, const char *text) {
    char tmp[256];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    cr_assert_eq(fclose(f), 0);
    cr_assert_eq(rename(tmp, path), 0);
}

static status_t header_authorize(const char *header, const char *merchant, char *id) {
    uint8_t d[CRED_DIGEST_BYTES];
    status_t st = credentials_authenticate(header, strlen(header), d);
    if (!status_is_ok(&st)) {
        return st;
    }
    return credentials_authorize(d, CRED_ACCESS_STOREFRONT, merchant, id);
}

Test(credentials, the_process_set_reloads_and_keeps_the_last_good_file) {
    char dir[] = "/tmp/loyalty-cred-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/credentials", dir);
    write_file(path, "shop1 storefront m-a " SHA_TEST "\n");
    status_t st = credentials_start(path, "svc-token");
    cr_assert(status_is_ok(&st), "%s", st.message);
    cr_assert(credentials_enabled());
    char id[CRED_ID_MAX + 1] = "";
    cr_assert(is_ok((st = header_authorize("Bearer test", "m-a", id))), "%s", st.message);
    cr_assert_str_eq(id, "shop1");
    cr_assert(is_ok((st = header_authorize("bearer  svc-token", "m-q", id))));
    cr_assert_str_eq(id, CRED_SERVICE_ID);
    expect(header_authorize("Bearer abc", "m-a", id), STATUS_UNAUTHENTICATED, "UNAUTHENTICATED");
    expect(header_authorize("Basic test", "m-a", id), STATUS_UNAUTHENTICATED, "UNAUTHENTICATED");

    write_file(path, "shop1 storefront m-a " SHA_ABC "\n");
    cr_assert(is_ok((st = credentials_reload())), "%s", st.message);
    expect(header_authorize("Bearer test", "m-a", id), STATUS_UNAUTHENTICATED, "UNAUTHENTICATED");
    cr_assert(is_ok((st = header_authorize("Bearer abc", "m-a", id))));

    write_file(path, "shop1 storefront * " SHA_TEST "\n");
    st = credentials_reload();
    cr_assert_eq(st.code, STATUS_INVALID_ARGUMENT, "a bad file is refused");
    cr_assert(is_ok((st = header_authorize("Bearer abc", "m-a", id))),
              "and the last good set stays");

    /* The watcher notices a change by itself (polled: no fixed sleep decides the outcome). */
    write_file(path, "shop1 storefront m-a " SHA_TEST "\n");
    bool seen = false;
    for (int i = 0; i < 600 && !seen; i++) {
        seen = is_ok((st = header_authorize("Bearer test", "m-a", id)));
        if (!seen) {
            usleep(50 * 1000);
        }
    }
    cr_assert(seen, "the watcher re-read the changed file");
    credentials_stop();
    cr_assert_not(credentials_enabled());
    unlink(path);
    rmdir(dir);
}

Test(credentials, a_bad_file_at_start_is_an_error) {
    status_t st = credentials_start("/nonexistent/credentials", "t");
    cr_assert_eq(st.code, STATUS_INVALID_ARGUMENT);
    cr_assert_not(credentials_enabled());
    st = credentials_start("", "t");
    cr_assert(status_is_ok(&st));
    cr_assert_not(credentials_enabled(), "no file, no credentials: the shared token alone");
}
