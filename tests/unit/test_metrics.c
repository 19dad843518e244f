/* test_metrics.c -- unit tests of the metrics registry: text exposition of each type, label
 * escaping, float spelling, and counts added up over threads that are alive or have ended.
 * Criterion runs every test in a process of its own, so each starts with an empty registry. */
#include "metrics.h"

#include <criterion/criterion.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static metrics_family_t requests =
    METRICS_COUNTER("test_requests_total", "Requests served.", "method", "code");
static metrics_family_t temperature = METRICS_GAUGE("test_temperature_celsius", "Heat.\nSecond");
static const double buckets[] = {0.1, 1, 10};
static metrics_family_t latency =
    METRICS_HISTOGRAM("test_latency_seconds", "Latency.", buckets, "method");

static char *render(void) {
    size_t len = 0;
    char *text = metrics_render(&len);
    cr_assert_not_null(text);
    cr_assert_eq(strlen(text), len);
    return text;
}

Test(metrics, counter_renders_help_type_and_labels) {
    /* Goal: a counter family renders HELP, TYPE and one line per label combination, in the
     * order the combinations were first recorded, with the exact counts. */
    metrics_inc(&requests, (const char *[]){"Get", "OK"});
    metrics_inc(&requests, (const char *[]){"Get", "OK"});
    metrics_inc(&requests, (const char *[]){"Put", "NotFound"});
    metrics_series_add(metrics_series(&requests, (const char *[]){"Get", "OK"}), 40);
    char *text = render();
    cr_assert_str_eq(text, "# HELP test_requests_total Requests served.\n"
                           "# TYPE test_requests_total counter\n"
                           "test_requests_total{method=\"Get\",code=\"OK\"} 42\n"
                           "test_requests_total{method=\"Put\",code=\"NotFound\"} 1\n");
    free(text);
}

Test(metrics, histogram_renders_cumulative_buckets_sum_and_count) {
    /* Goal: buckets are cumulative with `le` (an observation equal to a bound falls in it),
     * +Inf holds everything, _sum adds the values, _count equals +Inf. */
    const char *m[] = {"Get"};
    metrics_observe(&latency, m, 0.05);
    metrics_observe(&latency, m, 0.1);
    metrics_observe(&latency, m, 5);
    metrics_observe(&latency, m, 50);
    char *text = render();
    cr_assert_str_eq(text, "# HELP test_latency_seconds Latency.\n"
                           "# TYPE test_latency_seconds histogram\n"
                           "test_latency_seconds_bucket{method=\"Get\",le=\"0.1\"} 2\n"
                           "test_latency_seconds_bucket{method=\"Get\",le=\"1\"} 2\n"
                           "test_latency_seconds_bucket{method=\"Get\",le=\"10\"} 3\n"
                           "test_latency_seconds_bucket{method=\"Get\",le=\"+Inf\"} 4\n"
                           "test_latency_seconds_sum{method=\"Get\"} 55.15\n"
                           "test_latency_seconds_count{method=\"Get\"} 4\n");
    free(text);
}

Test(metrics, gauge_set_and_add_and_help_escaping) {
    /* Goal: a label-less family shows 0 once registered; set and add combine; a newline in
     * HELP is escaped. */
    metrics_register(&temperature);
    char *text = render();
    cr_assert_str_eq(text, "# HELP test_temperature_celsius Heat.\\nSecond\n"
                           "# TYPE test_temperature_celsius gauge\n"
                           "test_temperature_celsius 0\n");
    free(text);
    metrics_set(&temperature, NULL, 20.5);
    metrics_gauge_add(&temperature, NULL, -3);
    text = render();
    cr_assert(strstr(text, "\ntest_temperature_celsius 17.5\n") != NULL, "%s", text);
    free(text);
}

Test(metrics, label_values_are_escaped) {
    /* Goal: backslash, double quote and newline in a label value are escaped as the format
     * says; other bytes pass unchanged; the returned length is the whole escaped length. */
    char out[64];
    cr_assert_eq(metrics_escape_label_value("a\\b\"c\nd", out, sizeof out), 10);
    cr_assert_str_eq(out, "a\\\\b\\\"c\\nd");
    cr_assert_eq(metrics_escape_label_value("abcdef", out, 4), 6); /* truncated, terminated */
    cr_assert_str_eq(out, "abc");
    metrics_inc(&requests, (const char *[]){"say \"hi\"\n", "C:\\"});
    char *text = render();
    cr_assert(strstr(text, "test_requests_total{method=\"say \\\"hi\\\"\\n\",code=\"C:\\\\\"} 1\n"),
              "%s", text);
    free(text);
}

Test(metrics, long_label_values_are_cut_consistently) {
    /* Goal: a value longer than METRICS_LABEL_VALUE_MAX - 1 is cut, and two values equal in
     * their first METRICS_LABEL_VALUE_MAX - 1 characters share one series. */
    char a[300], b[300];
    memset(a, 'x', sizeof a - 1);
    a[sizeof a - 1] = '\0';
    memcpy(b, a, sizeof b);
    b[250] = 'y';
    metrics_inc(&requests, (const char *[]){a, "OK"});
    metrics_inc(&requests, (const char *[]){b, "OK"});
    cr_assert_eq(metrics_series(&requests, (const char *[]){a, "OK"}),
                 metrics_series(&requests, (const char *[]){b, "OK"}));
    char *text = render();
    cr_assert(strstr(text, "\"} 2\n") != NULL, "%s", text);
    free(text);
}

Test(metrics, floats_use_the_shortest_exact_spelling) {
    /* Goal: the spellings Prometheus parses: shortest round trip, +Inf, -Inf, NaN. */
    char out[64];
    metrics_format_double(0.005, out, sizeof out);
    cr_assert_str_eq(out, "0.005");
    metrics_format_double(2.5, out, sizeof out);
    cr_assert_str_eq(out, "2.5");
    metrics_format_double(1e21, out, sizeof out);
    cr_assert_str_eq(out, "1e+21");
    metrics_format_double(1.0 / 0.0, out, sizeof out);
    cr_assert_str_eq(out, "+Inf");
    metrics_format_double(-1.0 / 0.0, out, sizeof out);
    cr_assert_str_eq(out, "-Inf");
    metrics_format_double(0.0 / 0.0, out, sizeof out);
    cr_assert_str_eq(out, "NaN");
}

#define THREADS 8
#define PER_THREAD 20000

typedef struct worker_arg {
    pthread_barrier_t *recorded; /* NULL: record and end */
    pthread_barrier_t *scraped;
} worker_arg_t;

static void *worker(void *arg) {
    const worker_arg_t *w = arg;
    for (int i = 0; i < PER_THREAD; i++) {
        metrics_inc(&requests, (const char *[]){"Get", "OK"});
        metrics_observe(&latency, (const char *[]){"Get"}, 0.5);
        metrics_gauge_add(&temperature, NULL, i % 2 ? -1 : 2); /* nets +1 per two */
    }
    if (w->recorded) {
        pthread_barrier_wait(w->recorded);
        pthread_barrier_wait(w->scraped);
    }
    return NULL;
}

Test(metrics, shards_of_living_and_ended_threads_add_up) {
    /* Goal: a scrape adds up the shards of threads still running and of threads that have
     * ended (their counts kept), with nothing lost to concurrent recording. */
    pthread_t ended[THREADS], living[THREADS];
    worker_arg_t done_arg = {NULL, NULL};
    for (int i = 0; i < THREADS; i++) {
        cr_assert_eq(pthread_create(&ended[i], NULL, worker, &done_arg), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(ended[i], NULL);
    }
    pthread_barrier_t recorded, scraped;
    pthread_barrier_init(&recorded, NULL, THREADS + 1);
    pthread_barrier_init(&scraped, NULL, THREADS + 1);
    worker_arg_t live_arg = {&recorded, &scraped};
    for (int i = 0; i < THREADS; i++) {
        cr_assert_eq(pthread_create(&living[i], NULL, worker, &live_arg), 0);
    }
    pthread_barrier_wait(&recorded);
    char *text = render();
    pthread_barrier_wait(&scraped);
    for (int i = 0; i < THREADS; i++) {
        pthread_join(living[i], NULL);
    }
    char want[128];
    snprintf(want, sizeof want, "test_requests_total{method=\"Get\",code=\"OK\"} %d\n",
             2 * THREADS * PER_THREAD);
    cr_assert(strstr(text, want) != NULL, "%s", text);
    snprintf(want, sizeof want, "test_latency_seconds_count{method=\"Get\"} %d\n",
             2 * THREADS * PER_THREAD);
    cr_assert(strstr(text, want) != NULL, "%s", text);
    snprintf(want, sizeof want, "test_latency_seconds_sum{method=\"Get\"} %d\n",
             THREADS * PER_THREAD);
    cr_assert(strstr(text, want) != NULL, "%s", text);
    snprintf(want, sizeof want, "test_temperature_celsius %d\n", THREADS * PER_THREAD);
    cr_assert(strstr(text, want) != NULL, "%s", text);
    free(text);
    /* and again after every thread has ended: the same totals */
    text = render();
    snprintf(want, sizeof want, "test_requests_total{method=\"Get\",code=\"OK\"} %d\n",
             2 * THREADS * PER_THREAD);
    cr_assert(strstr(text, want) != NULL, "%s", text);
    free(text);
}

Test(metrics, disabled_records_nothing) {
    /* Goal: with recording off no series is created and nothing is counted. */
    metrics_set_enabled(false);
    metrics_inc(&requests, (const char *[]){"Get", "OK"});
    cr_assert_null(metrics_series(&requests, (const char *[]){"Get", "OK"}));
    metrics_set_enabled(true);
    char *text = render();
    cr_assert(strstr(text, "test_requests_total{") == NULL, "%s", text);
    free(text);
}

static int collector_runs;
static void collect(void) {
    collector_runs++;
    metrics_set(&temperature, NULL, (double)collector_runs);
}

Test(metrics, collectors_run_before_each_render) {
    /* Goal: a collector sets its gauges at every scrape; registered twice it runs once. */
    metrics_add_collector(collect);
    metrics_add_collector(collect);
    free(render());
    char *text = render();
    cr_assert_eq(collector_runs, 2);
    cr_assert(strstr(text, "\ntest_temperature_celsius 2\n") != NULL, "%s", text);
    free(text);
}
