/* ctl_args.c -- loyaltyctl's argument parsing for one command (its own options, the options
 * every command takes, positional arguments), usage errors (exit 2) and `<cmd> --help`. */
#include "ctl.h"

#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* The options a command may declare, with their help line. */
static const struct {
    unsigned bit;
    const char *name;
    const char *help;
} ctl_options[] = {
    {CTL_OPT_MERCHANT, "--merchant", "--merchant M          the merchant id"},
    {CTL_OPT_STATE, "--state",
     "--state S             a saga state: BEGINNING, RESERVED, "
     "COMPLETING, COMPLETED,\n                        CANCELLING, "
     "CANCELLED, NEEDS_ATTENTION"},
    {CTL_OPT_KIND, "--kind",
     "--kind K              a saga kind: REGISTRATION, CHECKOUT, REFUND, "
     "TOP_UP,\n                        REDEEM_REWARD, CHECK_IN, "
     "REFERRAL_RELEASE"},
    {CTL_OPT_OLDER_THAN, "--older-than",
     "--older-than D        only sagas last updated at least D ago (90s, 15m, 2h, 3d)"},
    {CTL_OPT_LIMIT, "--limit", "--limit N             at most N rows (1..10000, default 100)"},
    {CTL_OPT_KEY, "--idempotency-key",
     "--idempotency-key K   the request's idempotency key (default: a new one)"},
    {CTL_OPT_BY, "--by",
     "--by id|phone|external-id\n                        what the argument "
     "is (default: a phone when it starts with +, else\n"
     "                        a member id, then an external id)"},
    {CTL_OPT_FILE, "-f", "-f FILE               the programme file (YAML; see examples/)"},
    {CTL_OPT_TIME_ZONE, "--time-zone",
     "--time-zone Z         an IANA time zone (Asia/Singapore); a merchant's first\n"
     "                        settings need one"},
    {CTL_OPT_CURRENCY, "--currency",
     "--currency C          an ISO 4217 code of three capital letters (SGD)"},
    {CTL_OPT_LOCALE, "--locale", "--locale L            a BCP 47 language tag (en-SG, zh-Hans-CN)"},
    {CTL_OPT_SINCE, "--since",
     "--since D|UNIX_SECONDS\n                        only what was recorded in the last D "
     "(90s, 15m, 2h, 3d), or at\n                        or after that instant (unix seconds)"},
};

#define CTL_LIMIT_MAX 10000

void ctl_print_command_help(const ctl_command_t *cmd) {
    printf("usage: loyaltyctl %s %s\n\n%s\n%s\noptions:\n", cmd->name, cmd->synopsis, cmd->summary,
           cmd->help);
    for (size_t i = 0; i < sizeof ctl_options / sizeof ctl_options[0]; i++) {
        if (cmd->options & ctl_options[i].bit) {
            printf("  %s\n", ctl_options[i].help);
        }
    }
    printf("  -o table|json         output format (default table)\n"
           "  --gateway HOST:PORT   the gateway (default $LOYALTY_GATEWAY_ADDR)\n"
           "  --timeout SECONDS     the call's deadline (default %lld)\n"
           "  -h, --help            this help\n",
           (long long)(cmd->default_timeout_ms / 1000));
}

int ctl_usage_error(const ctl_command_t *cmd, const char *fmt, ...) {
    fprintf(stderr, "loyaltyctl %s: ", cmd->name);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nusage: loyaltyctl %s %s (see loyaltyctl %s --help)\n", cmd->name,
            cmd->synopsis, cmd->name);
    return CTL_EXIT_USAGE;
}

/* The value of option argv[*i], advancing *i; NULL when it is missing. */
static const char *option_value(int argc, char **argv, int *i) {
    if (*i + 1 >= argc) {
        return NULL;
    }
    return argv[++*i];
}

int ctl_parse_args(ctl_t *c, const ctl_command_t *cmd, int argc, char **argv, ctl_args_t *a) {
    memset(a, 0, sizeof *a);
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            ctl_print_command_help(cmd);
            return -1;
        }
        if (arg[0] != '-' || strcmp(arg, "-") == 0) {
            if (a->n_positional >= cmd->positional_max) {
                return ctl_usage_error(cmd, "unexpected argument %s", arg);
            }
            a->positional[a->n_positional++] = arg;
            continue;
        }
        const char *v = option_value(argc, argv, &i);
        if (v == NULL) {
            return ctl_usage_error(cmd, "%s needs a value", arg);
        }
        if (strcmp(arg, "-o") == 0 || strcmp(arg, "--output") == 0) {
            if (strcmp(v, "json") != 0 && strcmp(v, "table") != 0) {
                return ctl_usage_error(cmd, "-o takes table or json, not %s", v);
            }
            c->json = strcmp(v, "json") == 0;
            continue;
        }
        if (strcmp(arg, "--gateway") == 0) {
            c->gateway = v;
            continue;
        }
        if (strcmp(arg, "--timeout") == 0) {
            int64_t s = 0;
            if (!config_parse_int(v, 1, 3600, &s)) {
                return ctl_usage_error(cmd, "--timeout takes 1..3600 seconds, not %s", v);
            }
            c->timeout_ms = s * 1000;
            continue;
        }
        unsigned bit = 0;
        for (size_t k = 0; k < sizeof ctl_options / sizeof ctl_options[0]; k++) {
            if (strcmp(arg, ctl_options[k].name) == 0) {
                bit = ctl_options[k].bit;
            }
        }
        if ((cmd->options & bit) == 0) {
            return ctl_usage_error(cmd, "unknown option %s", arg);
        }
        switch (bit) {
        case CTL_OPT_MERCHANT:
            a->merchant = v;
            break;
        case CTL_OPT_STATE:
            a->state = v;
            break;
        case CTL_OPT_KIND:
            a->kind = v;
            break;
        case CTL_OPT_OLDER_THAN:
            a->older_than = v;
            break;
        case CTL_OPT_KEY:
            a->key = v;
            break;
        case CTL_OPT_BY:
            a->by = v;
            break;
        case CTL_OPT_SINCE:
            a->since = v;
            break;
        case CTL_OPT_FILE:
            a->file = v;
            break;
        case CTL_OPT_TIME_ZONE:
            a->time_zone = v;
            break;
        case CTL_OPT_CURRENCY:
            a->currency = v;
            break;
        case CTL_OPT_LOCALE:
            a->locale = v;
            break;
        case CTL_OPT_LIMIT:
            if (!config_parse_int(v, 1, CTL_LIMIT_MAX, &a->limit)) {
                return ctl_usage_error(cmd, "--limit takes 1..%d, not %s", CTL_LIMIT_MAX, v);
            }
            break;
        default:
            return ctl_usage_error(cmd, "unknown option %s", arg);
        }
    }
    if (a->n_positional < cmd->positional_min) {
        return ctl_usage_error(cmd, "missing argument");
    }
    if (cmd->merchant_required && (a->merchant == NULL || a->merchant[0] == '\0')) {
        return ctl_usage_error(cmd, "--merchant is required");
    }
    if (cmd->file_required && (a->file == NULL || a->file[0] == '\0')) {
        return ctl_usage_error(cmd, "-f FILE is required");
    }
    return CTL_EXIT_OK;
}
