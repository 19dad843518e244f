/* test_reflection.c -- unit tests of the reflection index: symbols of every kind resolve to
 * their file, dependency closures are complete and duplicate-free, streaming flags come from
 * the descriptors, malformed sets are refused; on a test set with a diamond of imports
 * (tests/unit/protos) and on the runtime's own embedded set. */
#include "reflection.h"

#include <criterion/criterion.h>

#include <stdlib.h>
#include <string.h>

extern const embed_file_t refltest_descriptor_set[];

static void init_testset(void) {
    status_t st = reflection_init(refltest_descriptor_set[0].data, refltest_descriptor_set[0].len);
    cr_assert(status_is_ok(&st), "%s", st.message);
}

static const char *file_of(const char *symbol) {
    int f = reflection_find_symbol(symbol);
    return f < 0 ? "(none)" : reflection_file_name(f);
}

Test(reflection, symbols_of_every_kind_resolve_to_their_file, .init = init_testset,
     .fini = reflection_dispose) {
    /* Goal: what grpcurl describes (services, methods, messages, nested ones, fields, oneofs,
     * enums, enum values in protobuf's scoping) finds the defining file; near misses do not. */
    cr_assert_str_eq(file_of("refltest.Shop"), "refltest/a.proto");
    cr_assert_str_eq(file_of("refltest.Shop.Watch"), "refltest/a.proto");
    cr_assert_str_eq(file_of("refltest.mid.Cart"), "refltest/b.proto");
    cr_assert_str_eq(file_of("refltest.mid.Cart.Line"), "refltest/b.proto");
    cr_assert_str_eq(file_of("refltest.mid.Cart.Line.sku"), "refltest/b.proto");
    cr_assert_str_eq(file_of("refltest.mid.Cart.Line.Kind"), "refltest/b.proto");
    cr_assert_str_eq(file_of("refltest.mid.Cart.Line.KIND_GOODS"), "refltest/b.proto");
    cr_assert_str_eq(file_of("refltest.mid.Cart.who"), "refltest/b.proto");
    cr_assert_str_eq(file_of("refltest.mid.Cart.member_id"), "refltest/b.proto");
    cr_assert_str_eq(file_of("refltest.base.Money"), "refltest/c.proto");
    cr_assert_str_eq(file_of("refltest.base.Color"), "refltest/c.proto");
    cr_assert_str_eq(file_of("refltest.base.COLOR_RED"), "refltest/c.proto");
    cr_assert_eq(reflection_find_symbol("refltest.base.Color.COLOR_RED"), -1);
    cr_assert_eq(reflection_find_symbol("refltest.Shop.Nope"), -1);
    cr_assert_eq(reflection_find_symbol("refltest"), -1);
    cr_assert_eq(reflection_find_symbol(".refltest.Shop"), -1);
    cr_assert_eq(reflection_find_symbol(""), -1);
}

Test(reflection, closure_holds_each_transitive_dependency_once, .init = init_testset,
     .fini = reflection_dispose) {
    /* Goal: a.proto imports b and c, b imports c: the answer for a is a, then b and c, each
     * once; for c it is c alone; out-of-range indexes and a zero budget give nothing. */
    int out[REFLECTION_FILES_MAX];
    int a = reflection_find_file("refltest/a.proto");
    int b = reflection_find_file("refltest/b.proto");
    int c = reflection_find_file("refltest/c.proto");
    cr_assert(a >= 0 && b >= 0 && c >= 0);
    size_t n = reflection_file_closure(a, out, REFLECTION_FILES_MAX);
    cr_assert_eq(n, 3);
    cr_assert_eq(out[0], a);
    cr_assert((out[1] == b && out[2] == c) || (out[1] == c && out[2] == b));
    n = reflection_file_closure(b, out, REFLECTION_FILES_MAX);
    cr_assert_eq(n, 2);
    cr_assert_eq(out[0], b);
    cr_assert_eq(out[1], c);
    cr_assert_eq(reflection_file_closure(c, out, REFLECTION_FILES_MAX), 1);
    cr_assert_eq(reflection_file_closure(a, out, 2), 2);
    cr_assert_eq(reflection_file_closure(a, out, 0), 0);
    cr_assert_eq(reflection_file_closure(-1, out, REFLECTION_FILES_MAX), 0);
    cr_assert_eq(reflection_file_closure(99, out, REFLECTION_FILES_MAX), 0);
    cr_assert_eq(reflection_find_file("refltest/d.proto"), -1);
    size_t len = 0;
    const unsigned char *bytes = reflection_file_bytes(c, &len);
    cr_assert(len > 0 && bytes[0] == 0x0a); /* field 1 (name), length-delimited */
}

Test(reflection, streaming_flags_come_from_the_descriptors, .init = init_testset,
     .fini = reflection_dispose) {
    /* Goal: protobuf-c cannot tell streaming methods; the index can, in both directions. */
    cr_assert_eq(reflection_method_streaming("/refltest.Shop/Quote"), 0);
    cr_assert_eq(reflection_method_streaming("/refltest.Shop/Watch"), 1);
    cr_assert_eq(reflection_method_streaming("/refltest.Shop/Upload"), 1);
    cr_assert_eq(reflection_method_streaming("/refltest.Shop/Nope"), -1);
    cr_assert_eq(reflection_method_streaming("/refltest.mid.Cart/sku"), -1);
    cr_assert_eq(reflection_method_streaming("refltest.Shop/Quote"), -1);
    cr_assert_eq(reflection_method_streaming("/refltest.Shop.Quote"), -1);
}

Test(reflection, the_runtime_set_describes_every_served_protocol, .fini = reflection_dispose) {
    /* Goal: the embedded set holds health, both reflection versions and loyalty.v1, with the
     * flags the server checks its handler tables against. */
    const embed_file_t *set = &runtime_descriptor_set[0];
    cr_assert_str_eq(set->name, "loyalty.desc");
    status_t st = reflection_init(set->data, set->len);
    cr_assert(status_is_ok(&st), "%s", st.message);
    cr_assert_eq(reflection_method_streaming("/grpc.health.v1.Health/Check"), 0);
    cr_assert_eq(reflection_method_streaming("/grpc.health.v1.Health/Watch"), 1);
    cr_assert_eq(
        reflection_method_streaming("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"),
        1);
    cr_assert_eq(reflection_method_streaming(
                     "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"),
                 1);
    cr_assert_eq(reflection_method_streaming("/loyalty.v1.MemberService/CreateMember"), 0);
    cr_assert_str_eq(file_of("loyalty.v1.MemberService"), "loyalty/v1/member.proto");
    cr_assert_str_eq(file_of("loyalty.v1.PageRequest"), "loyalty/v1/common.proto");
}

Test(reflection, malformed_sets_are_refused, .fini = reflection_dispose) {
    /* Goal: a truncated or garbled set, a nameless file, a dependency missing from the set and
     * a group are errors that leave an empty index, never a crash or a half index; an empty
     * set is valid and knows nothing. */
    const embed_file_t *set = &runtime_descriptor_set[0];
    status_t st = reflection_init(set->data, set->len - 1);
    cr_assert_eq(st.code, STATUS_INTERNAL);
    cr_assert_eq(reflection_find_file("loyalty/v1/member.proto"), -1);
    static const unsigned char bad_key[] = {0x0a, 0x05, 0xff, 0xff, 0xff, 0xff, 0xff};
    static const unsigned char nameless[] = {0x0a, 0x00};
    static const unsigned char group[] = {0x0b, 0x0c};
    static const unsigned char missing_dep[] = {0x0a, 0x12, 0x0a, 0x07, 'x',  '.',  'p',
                                                'r',  'o',  't',  'o',  0x1a, 0x07, 'y',
                                                '.',  'p',  'r',  'o',  't',  'o'};
    static const unsigned char long_len[] = {0x0a, 0x7f, 0x0a};
    const struct {
        const unsigned char *bytes;
        size_t len;
    } cases[] = {{bad_key, sizeof bad_key},
                 {nameless, sizeof nameless},
                 {group, sizeof group},
                 {missing_dep, sizeof missing_dep},
                 {long_len, sizeof long_len}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        st = reflection_init(cases[i].bytes, cases[i].len);
        cr_assert_eq(st.code, STATUS_INTERNAL, "case %zu", i);
        cr_assert_eq(reflection_find_file("x.proto"), -1, "case %zu", i);
    }
    /* The same file with its dependency present is fine: the check above is the dependency. */
    static const unsigned char with_dep[] = {
        0x0a, 0x09, 0x0a, 0x07, 'y', '.', 'p',  'r',  'o', 't', 'o', 0x0a, 0x12, 0x0a, 0x07, 'x',
        '.',  'p',  'r',  'o',  't', 'o', 0x1a, 0x07, 'y', '.', 'p', 'r',  'o',  't',  'o'};
    st = reflection_init(with_dep, sizeof with_dep);
    cr_assert(status_is_ok(&st), "%s", st.message);
    cr_assert_eq(reflection_find_file("x.proto"), 1);
    st = reflection_init(with_dep, 0);
    cr_assert(status_is_ok(&st));
    cr_assert_eq(reflection_find_file("x.proto"), -1);
    cr_assert_eq(reflection_find_symbol("loyalty.v1.MemberService"), -1);
}
