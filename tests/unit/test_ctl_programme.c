/* test_ctl_programme.c -- loyaltyctl's programme files without a gateway: both examples parse,
 * and printing what was parsed gives a file that parses and prints to the same bytes; the
 * values the services normalise are normalised; malformed files are refused with their line
 * and column. (Applying them: tests/integration/test_loyaltyctl_programme.c.) */
#include "ctl_programme.h"
#include "pb.h"

#include <criterion/criterion.h>

#include <stdio.h>
#include <string.h>
#include <unistd.h>

static arena_t a;
static char dir[64];

static void setup(void) {
    arena_init(&a);
    snprintf(dir, sizeof dir, "/tmp/ctl-prog-unit-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
    arena_free(&a);
}

TestSuite(ctl_programme, .init = setup, .fini = teardown);

/* The whole of `path` in the arena. */
static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s", path);
    char *buf = arena_alloc(&a, 1 << 20);
    size_t n = fread(buf, 1, (1 << 20) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static const char *spill(const char *name, const char *text) {
    char *path = arena_printf(&a, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    fputs(text, f);
    cr_assert_eq(fclose(f), 0);
    return path;
}

/* Prints p (its given sections) into `name` and returns the text. */
static char *print_to(const char *name, prog_t *p) {
    char *path = arena_printf(&a, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    prog_print_yaml(f, p, p->merchant ? p->merchant : "m");
    cr_assert_eq(fclose(f), 0);
    return slurp(path);
}

static void round_trips(const char *example) {
    prog_t p, q;
    const char *path = arena_printf(&a, "%s/examples/%s", LOYALTY_TEST_SOURCE_DIR, example);
    cr_assert(prog_parse_file(&a, path, &p), "%s does not parse", example);
    char *first = print_to("first.yaml", &p);
    cr_assert(prog_parse_file(&a, arena_printf(&a, "%s/first.yaml", dir), &q), "%s", first);
    char *second = print_to("second.yaml", &q);
    cr_assert_str_eq(second, first);
}

Test(ctl_programme, examples_parse_and_print_back_the_same) {
    round_trips("storeberry.yaml");
    round_trips("hishop.yaml");
    prog_t p;
    cr_assert(prog_parse_file(
        &a, arena_printf(&a, "%s/examples/storeberry.yaml", LOYALTY_TEST_SOURCE_DIR), &p));
    cr_assert_str_eq(p.merchant, "storeberry");
    int settings = prog_section_index("settings");
    cr_assert(p.parts[settings].given);
    cr_assert_str_eq(pb_get_string_field(p.parts[settings].items[0].msg, "time_zone"),
                     "Asia/Singapore");
    cr_assert_str_eq(pb_get_string_field(p.parts[settings].items[0].msg, "currency"), "SGD");
    int tiers = prog_section_index("tiers");
    cr_assert(p.parts[tiers].given);
    cr_assert_eq(p.parts[tiers].n_items, 6);
    cr_assert_str_eq(pb_get_string_field(p.parts[tiers].items[5].msg, "name"), "Diamond");
    cr_assert_eq(p.parts[tiers].items[5].line, 52, "line %d", p.parts[tiers].items[5].line);
}

Test(ctl_programme, values_are_normalised_as_the_services_store_them) {
    const char *path = spill("n.yaml", "tag_rules:\n  - tag: Big_Spender\n"
                                       "points:\n  event_rules:\n"
                                       "    - {kind: REGISTRATION, points: 5}\n"
                                       "    - {kind: BIRTHDAY, points: 0}\n"
                                       "    - {kind: CHECK_IN, points: 1}\n");
    prog_t p;
    cr_assert(prog_parse_file(&a, path, &p));
    char *text = print_to("n-out.yaml", &p);
    cr_assert_not_null(strstr(text, "tag: \"big_spender\""), "%s", text);
    cr_assert_not_null(strstr(text, "  event_rules:\n"
                                    "    - kind: CHECK_IN\n"
                                    "      points: 1\n"
                                    "    - kind: REGISTRATION\n"
                                    "      points: 5\n"),
                       "%s", text);
}

/* Parses `text` and expects a refusal whose message (stderr, caught in a file) has
 * "FILE:where". */
static void refused(const char *text, const char *where) {
    const char *path = spill("bad.yaml", text);
    const char *err_path = arena_printf(&a, "%s/err", dir);
    fflush(stderr);
    int saved = dup(2);
    cr_assert_geq(saved, 0);
    cr_assert_not_null(freopen(err_path, "w", stderr));
    prog_t p;
    bool ok = prog_parse_file(&a, path, &p);
    fflush(stderr);
    cr_assert_geq(dup2(saved, 2), 0);
    close(saved);
    cr_assert_not(ok, "accepted:\n%s", text);
    char *got = slurp(err_path);
    char *want = arena_printf(&a, "%s:%s", path, where);
    cr_assert_not_null(strstr(got, want), "want %s in: %s", want, got);
}

Test(ctl_programme, malformed_files_name_line_and_column) {
    refused("points:\n  earn_unit_cents: 100\n  earn_points: 2\n", "3:3: unknown key");
    refused("tiers:\n  - name: Gold\n    rank: \"3\"\n", "3:11: rank: a whole number");
    refused("tiers:\n  - name: Gold\n    rank: 0\n", "3:11: rank: 0 is out of range (1..10)");
    refused("tiers:\n  - rank: 1\n", "2:5: tiers: every item needs its name");
    refused("tiers:\n  - name: A\n    rank: 1\n  - name: A\n    rank: 2\n",
            "4:5: tiers: name \"A\" appears twice");
    refused("points:\n  earn_unit_cents: [1]\n", "2:20: earn_unit_cents: a single value");
    refused("wallet: [\n", "2:1: ");
    refused("merchant: a\nmerchant: b\n", "2:1: merchant is given twice");
    refused("", "1:1: the file is empty");
    refused("promotions:\n  - name: P\n    priority: 1001\n", "3:15: priority: 1001 is out");
}

Test(ctl_programme, settings_locale_is_cased_as_the_gateway_stores_it) {
    const char *path = spill("l.yaml", "settings:\n  time_zone: Asia/Shanghai\n"
                                       "  currency: CNY\n  locale: ZH-hans-cn-u-CA-chinese\n");
    prog_t p;
    cr_assert(prog_parse_file(&a, path, &p));
    char *text = print_to("l-out.yaml", &p);
    cr_assert_not_null(strstr(text, "settings:\n  time_zone: \"Asia/Shanghai\"\n"
                                    "  currency: \"CNY\"\n  locale: \"zh-Hans-CN-u-ca-chinese\"\n"),
                       "%s", text);
}
