/* test_consume.c -- unit tests of the event consumer's payload reader (consume.h): integers at
 * the top level of a JSON object as jsonw writes them, never a key inside a string or a nested
 * object, nothing for a missing key or a value that is no integer. */
#include "consume.h"
#include "jsonw.h"

#include <criterion/criterion.h>

Test(consume, payload_int_reads_top_level_integers) {
    /* Goal: what points-svc writes is read back, negative and large values included. */
    char buf[256];
    jsonw_t w;
    jsonw_begin(&w, buf, sizeof buf);
    jsonw_str(&w, "member_id", "mbr_1");
    jsonw_int(&w, "available", -300);
    jsonw_int(&w, "version", 9007199254740993LL);
    jsonw_end(&w);
    int64_t v = 0;
    cr_assert(consume_payload_int(buf, "available", &v));
    cr_assert_eq(v, -300);
    cr_assert(consume_payload_int(buf, "version", &v));
    cr_assert_eq(v, 9007199254740993LL);
}

Test(consume, payload_int_ignores_keys_in_strings_and_nested_objects) {
    /* Goal: a string value that spells a key (quotes escaped) or a nested object's member is not
     * taken for the top-level key; a missing key, a string value or a malformed object is no
     * integer. */
    int64_t v = 0;
    cr_assert_not(consume_payload_int("{\"reference\":\"\\\"version\\\":5\"}", "version", &v));
    cr_assert_not(consume_payload_int("{\"inner\":{\"version\":5}}", "version", &v));
    cr_assert(consume_payload_int("{\"inner\":{\"version\":5},\"version\":6}", "version", &v));
    cr_assert_eq(v, 6);
    cr_assert_not(consume_payload_int("{\"version\":\"7\"}", "version", &v));
    cr_assert_not(consume_payload_int("{\"versions\":7}", "version", &v));
    cr_assert_not(consume_payload_int("{\"version", "version", &v));
    cr_assert_not(consume_payload_int("", "version", &v));
}
