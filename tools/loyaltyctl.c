/* loyaltyctl.c -- the operators' command-line tool (README "loyaltyctl"): the command table,
 * `loyaltyctl --help`, the connection to the gateway (the only service it talks to) on the
 * shared runtime's client -- bearer token, TLS roots, a deadline and a request id on every call
 * -- and the call that reports a refusal (exit 1). The commands live in ctl_*.c by area. */
#include "config.h"
#include "ctl.h"
#include "ids.h"
#include "loyalty/v1/gateway.pb-c.h"
#include "rpc_client.h"
#include "status.h"

#include <grpc/grpc.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CTL_DEFAULT_TIMEOUT_MS 30000
#define CTL_VERIFY_TIMEOUT_MS 120000

/* What the three programme commands share in their help. */
#define PROGRAMME_HELP                                                                             \
    "A programme file (YAML; examples/ holds two) holds a merchant's configuration in\n"           \
    "sections, each the message of the service that keeps it (docs/api.md), by field name:\n"      \
    "  merchant          the merchant id (--merchant overrides it)\n"                              \
    "  settings          the merchant settings record (Gateway.UpdateMerchantSettings):\n"         \
    "                    time_zone, currency, locale; every service uses it (a merchant's\n"       \
    "                    first settings need time_zone)\n"                                         \
    "  member            MemberSettings: tier_basis, lifecycle\n"                                  \
    "  tiers             MemberTier list, by name: thresholds, express upgrade, benefits\n"        \
    "  membership_plans  MemberPlan list, by name (paid cards); tier: a tier's name\n"             \
    "  tag_rules         MemberTagRule list, replaced as a whole\n"                                \
    "  points            PointsSettings: earn, event rules (check-in...), expiry, redeem, "        \
    "growth\n"                                                                                     \
    "  points_campaigns  PointsCampaign list, by name (double points); tiers: tier names\n"        \
    "  referral          ReferralProgram: levels and their rules, welcome points, share links\n"   \
    "  wallet            WalletSettings: deposit expiry, refund grace\n"                           \
    "  top_up_plans      WalletTopUpPlan list, by name (pay X, get X + bonus)\n"                   \
    "  promo             PromoSettings: what full refunds give back\n"                             \
    "  promotions        Promotion list, by name: trigger, rule, conditions, limits, status\n"     \
    "                    (ACTIVE or PAUSED); tier ids as tier names; codes: {batch_size,\n"        \
    "                    prefix}: one batch of unique codes, generated once\n"                     \
    "  coupon_templates  PromoCouponTemplate list, by name\n"                                      \
    "  campaigns         Campaign list, by kind (birthday, win-back...); coupon_template: a\n"     \
    "                    template's name\n"                                                        \
    "  gateway           welcome_coupon_templates: template names issued on registration\n"        \
    "A field left out of the file is not managed (it keeps its value); items the merchant\n"       \
    "has and the file does not name are left as they are (nothing is deleted). Fields fixed\n"     \
    "once created (a top-up plan's amounts, a coupon template's terms, a points campaign's\n"      \
    "window) cannot change: give the item a new name. A file that is not valid YAML, has an\n"     \
    "unknown key, a value of the wrong type or out of range, or names an unknown tier or\n"        \
    "template is refused with FILE:LINE:COLUMN before anything is written (exit 2).\n"             \
    "Needs an admin credential of the merchant: the gateway relays the participants' calls\n"      \
    "(Gateway.Relay).\n\n"

static const ctl_command_t ctl_commands[] = {
    {"health", "[--merchant M] [-o json]", "Every service's readiness in one table.",
     "The gateway checks each participant's readiness (grpc.health.v1 Check) and its own\n"
     "PostgreSQL and Redis (Gateway.CheckHealth). Exit 0 when all six services are ready,\n"
     "1 when one is not (or the gateway cannot be reached). Without --merchant this is the\n"
     "operators' view: with a credential file, an admin credential of every merchant (`*`).\n",
     CTL_OPT_MERCHANT, 0, 0, false, CTL_DEFAULT_TIMEOUT_MS, ctl_cmd_health, false},
    {"sagas list", "[--merchant M] [--state S] [--kind K] [--older-than D] [--limit N] [-o json]",
     "The sagas, newest first (Gateway.ListSagas).",
     "Without --merchant, every merchant's (an admin credential of every merchant when a\n"
     "credential file is in use). What is stuck right now: --state NEEDS_ATTENTION, or\n"
     "--state COMPLETING --older-than 15m.\n",
     CTL_OPT_MERCHANT | CTL_OPT_STATE | CTL_OPT_KIND | CTL_OPT_OLDER_THAN | CTL_OPT_LIMIT, 0, 0,
     false, CTL_DEFAULT_TIMEOUT_MS, ctl_cmd_sagas_list, false},
    {"saga show", "ID --merchant M [-o json]",
     "One saga: its state, reason, and every step (Gateway.GetSaga).",
     "Each step with its direction, state, attempts, start and duration, and the participant's\n"
     "answer: OK, or the gRPC code, reason and message it refused with.\n",
     CTL_OPT_MERCHANT, 1, 1, true, CTL_DEFAULT_TIMEOUT_MS, ctl_cmd_saga_show, false},
    {"saga retry", "ID --merchant M [--idempotency-key K] [-o json]",
     "Drives a NEEDS_ATTENTION saga forward again (Gateway.RetrySaga).",
     "Fix the cause first (the reason `saga show` prints). Its failed steps are called again\n"
     "with the same idempotency keys, so nothing is applied twice. Prints the saga as it is\n"
     "then (COMPLETING or CANCELLING; the recovery job finishes it). A saga that does not need\n"
     "attention is refused: FAILED_PRECONDITION SAGA_NOT_RETRYABLE (exit 1).\n",
     CTL_OPT_MERCHANT | CTL_OPT_KEY, 1, 1, true, CTL_DEFAULT_TIMEOUT_MS, ctl_cmd_saga_retry, false},
    {"ledger verify", "--merchant M [-o json]",
     "Checks the merchant's points and wallet ledgers (Gateway.VerifyLedgers).",
     "Runs PointsService.VerifyLedger and WalletService.VerifyLedger for every member of the\n"
     "merchant and lists every difference found. Exit 0 when both are clean, 1 on any finding.\n"
     "Takes a while on a large merchant: the default deadline is 120 s.\n",
     CTL_OPT_MERCHANT, 0, 0, true, CTL_VERIFY_TIMEOUT_MS, ctl_cmd_ledger_verify, false},
    {"member show", "--merchant M (MEMBER_ID | PHONE | EXTERNAL_ID) [--by KIND] [-o json]",
     "One member: profile, balances, tier and its history, recent orders.",
     "Gateway.GetMemberDetail: the storefront's overview (tier, points, wallet, coupons,\n"
     "referral code), order statistics, the last 20 tier changes and the last 10 checkouts\n"
     "and refunds. A section whose service did not answer is named under `unavailable`.\n",
     CTL_OPT_MERCHANT | CTL_OPT_BY, 1, 1, true, CTL_DEFAULT_TIMEOUT_MS, ctl_cmd_member_show, false},
    {"audit", "--merchant M [--since D|UNIX_SECONDS] [--limit N] [-o json]",
     "The merchant's configuration changes, newest first (Gateway.ListAuditLog).",
     "The audit trail of all six services merged: for each call its time, the service that\n"
     "recorded it, the RPC, the credential id and the idempotency key, then one line per row\n"
     "it changed: the table, INSERT, UPDATE or DELETE, and the changed fields before -> after\n"
     "as JSON (- for none). Pages are followed until --limit entries (default 100) or the\n"
     "end. Needs an admin credential of the merchant (or the services' token).\n",
     CTL_OPT_MERCHANT | CTL_OPT_SINCE | CTL_OPT_LIMIT, 0, 0, true, CTL_DEFAULT_TIMEOUT_MS,
     ctl_cmd_audit, false},
    {"programme plan", "-f FILE [--merchant M]",
     "What a programme file would change, field by field.",
     PROGRAMME_HELP
     "Prints one line per changed field (~ section[item].field: now -> in the file), and for\n"
     "each new item + section[item] with its fields; then the count, or \"No changes\".\n",
     CTL_OPT_MERCHANT | CTL_OPT_FILE, 0, 0, false, CTL_DEFAULT_TIMEOUT_MS, ctl_cmd_programme_plan,
     true},
    {"programme apply", "-f FILE [--merchant M]",
     "Makes the merchant's programme what the file says.",
     PROGRAMME_HELP
     "Prints the plan, then writes only what differs: Update* calls name exactly the changed\n"
     "fields in their update_mask, whole-value Set* calls (referral programme, campaigns,\n"
     "tag rules) send the current value with the changes, new items are created. Applying\n"
     "the same file again changes nothing. When a service refuses a change, apply stops\n"
     "there, prints the refusal and the changes applied and not applied (exit 1); fix the\n"
     "cause and run it again: only what is still missing is written.\n",
     CTL_OPT_MERCHANT | CTL_OPT_FILE, 0, 0, false, CTL_DEFAULT_TIMEOUT_MS, ctl_cmd_programme_apply,
     true},
    {"programme export", "--merchant M", "The merchant's programme as a file apply takes back.",
     PROGRAMME_HELP
     "Every section, in the order above, every field the merchant can set; strings quoted.\n"
     "Exporting, applying the export to another merchant and exporting that gives the same\n"
     "file (but for the merchant line).\n",
     CTL_OPT_MERCHANT, 0, 0, true, CTL_DEFAULT_TIMEOUT_MS, ctl_cmd_programme_export, false},
    {"merchant settings", "--merchant M [-o json]",
     "The merchant settings record and where each service stands with it.",
     "Gateway.GetMerchantSettings: the merchant's time zone, currency and locale, the record's\n"
     "version (0: never set) and when it last changed; then, once it is set, one line per\n"
     "service that keeps a copy (member, points, wallet, promo): the version it confirmed,\n"
     "whether it is in sync, the next attempt and the last error of a push still pending.\n",
     CTL_OPT_MERCHANT, 0, 0, true, CTL_DEFAULT_TIMEOUT_MS, ctl_cmd_merchant_settings, false},
    {"merchant set",
     "--merchant M [--time-zone Z] [--currency C] [--locale L] [--idempotency-key K] [-o json]",
     "Changes the merchant settings record (only the fields given).",
     "Gateway.UpdateMerchantSettings with an update_mask naming just the options given: what\n"
     "is not given stays as it is. The record is written at once; the gateway then pushes it\n"
     "to the services (merchant settings shows them). A merchant's first settings need\n"
     "--time-zone. A value the gateway refuses (an unknown time zone, a currency that is not\n"
     "three capital letters, a malformed locale) exits 1 with its reason; nothing is written.\n"
     "The programme file's `settings` section sets the same record.\n",
     CTL_OPT_MERCHANT | CTL_OPT_TIME_ZONE | CTL_OPT_CURRENCY | CTL_OPT_LOCALE | CTL_OPT_KEY, 0, 0,
     true, CTL_DEFAULT_TIMEOUT_MS, ctl_cmd_merchant_set, false},
};

#define CTL_N_COMMANDS (sizeof ctl_commands / sizeof ctl_commands[0])

static void print_help(void) {
    printf("usage: loyaltyctl [--gateway HOST:PORT] [--timeout SECONDS] [-o table|json] COMMAND "
           "[ARGS]\n\n"
           "Operates the loyalty suite through its gateway.\n\ncommands:\n");
    for (size_t i = 0; i < CTL_N_COMMANDS; i++) {
        printf("  %-17s %s\n", ctl_commands[i].name, ctl_commands[i].summary);
    }
    printf("\n`loyaltyctl COMMAND --help` shows a command's arguments. Every command takes\n"
           "--gateway and --timeout, before or after its name, and every command but the\n"
           "programme ones (YAML files and their diffs) -o json: one JSON object on stdout.\n\n"
           "environment:\n"
           "  LOYALTY_GATEWAY_ADDR  the gateway's HOST:PORT when --gateway is not given\n"
           "  LOYALTY_TOKEN         the bearer token (a credential's token); when unset,\n"
           "                        LOYALTY_AUTH_TOKEN (the shared token the services use)\n"
           "  LOYALTY_TLS_CA        speak TLS to the gateway, trusting this CA (PEM)\n\n"
           "exit codes:\n"
           "  0  done\n"
           "  1  refused (the gRPC code, reason and message are printed), the gateway could not\n"
           "     be reached, or a check found something (health, ledger verify)\n"
           "  2  usage error, or a programme file that cannot be applied as written\n");
}

/* The command named by argv[0] (and argv[1] for two-word commands); *words gets how many. */
static const ctl_command_t *find_command(int argc, char **argv, int *words) {
    for (size_t i = 0; i < CTL_N_COMMANDS; i++) {
        const char *name = ctl_commands[i].name;
        const char *space = strchr(name, ' ');
        if (space == NULL) {
            if (strcmp(argv[0], name) == 0) {
                *words = 1;
                return &ctl_commands[i];
            }
        } else if (argc >= 2 && strncmp(argv[0], name, (size_t)(space - name)) == 0 &&
                   argv[0][space - name] == '\0' && strcmp(argv[1], space + 1) == 0) {
            *words = 2;
            return &ctl_commands[i];
        }
    }
    return NULL;
}

/* The client's defaults for every call: token, TLS roots, message limit. */
static bool client_setup(const ctl_command_t *cmd) {
    static config_t cfg; /* rpc_client_init keeps reading it */
    memset(&cfg, 0, sizeof cfg);
    cfg.client_timeout_ms = CTL_DEFAULT_TIMEOUT_MS;
    cfg.max_message_bytes = 4194304;
    const char *token = getenv("LOYALTY_TOKEN");
    if (token == NULL || token[0] == '\0') {
        token = getenv("LOYALTY_AUTH_TOKEN");
    }
    if (token != NULL && (size_t)snprintf(cfg.auth_token, sizeof cfg.auth_token, "%s", token) >=
                             sizeof cfg.auth_token) {
        ctl_usage_error(cmd, "the token is too long");
        return false;
    }
    const char *ca = getenv("LOYALTY_TLS_CA");
    if (ca != NULL && ca[0] != '\0') {
        FILE *f = fopen(ca, "rb");
        if (f == NULL) {
            ctl_usage_error(cmd, "cannot read LOYALTY_TLS_CA %s", ca);
            return false;
        }
        fclose(f);
        if ((size_t)snprintf(cfg.tls_ca_path, sizeof cfg.tls_ca_path, "%s", ca) >=
            sizeof cfg.tls_ca_path) {
            ctl_usage_error(cmd, "LOYALTY_TLS_CA is too long");
            return false;
        }
    }
    rpc_client_init(&cfg);
    return true;
}

/* Set once in main: the command's deadline. */
static int64_t g_timeout_ms;

static int call_gateway(ctl_t *c, const ctl_command_t *cmd,
                        const ProtobufCServiceDescriptor *service, const char *method,
                        const ProtobufCMessage *req, ProtobufCMessage **resp, int *code_out,
                        bool report) {
    char request_id[ID_MAX];
    id_generate("ctl", request_id);
    rpc_call_opts_t opts = {.timeout_ms = g_timeout_ms, .request_id = request_id};
    status_t st =
        rpc_call(rpc_channel_get(c->gateway), service, method, req, &c->arena, resp, &opts);
    if (code_out != NULL) {
        *code_out = st.code;
    }
    if (status_is_ok(&st)) {
        return CTL_EXIT_OK;
    }
    if (!report) {
        return CTL_EXIT_REFUSED;
    }
    fprintf(stderr, "loyaltyctl %s: refused: %s %s: %s (gateway %s, request id %s)\n", cmd->name,
            status_code_name(st.code), st.reason[0] ? st.reason : "-", st.message, c->gateway,
            request_id);
    return CTL_EXIT_REFUSED;
}

int ctl_call(ctl_t *c, const ctl_command_t *cmd, const char *method, const ProtobufCMessage *req,
             ProtobufCMessage **resp, int *code_out) {
    return call_gateway(c, cmd, &loyalty__v1__gateway__descriptor, method, req, resp, code_out,
                        true);
}

int ctl_call_on(ctl_t *c, const ctl_command_t *cmd, const ProtobufCServiceDescriptor *service,
                const char *method, const ProtobufCMessage *req, ProtobufCMessage **resp,
                int *code_out) {
    return call_gateway(c, cmd, service, method, req, resp, code_out, true);
}

int ctl_call_quiet(ctl_t *c, const ctl_command_t *cmd, const char *method,
                   const ProtobufCMessage *req, ProtobufCMessage **resp, int *code_out) {
    return call_gateway(c, cmd, &loyalty__v1__gateway__descriptor, method, req, resp, code_out,
                        false);
}

int main(int argc, char **argv) {
    ctl_t c = {.gateway = getenv("LOYALTY_GATEWAY_ADDR")};
    int i = 1;
    /* Options before the command. */
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            print_help();
            return CTL_EXIT_OK;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "loyaltyctl: %s needs a value (see loyaltyctl --help)\n", argv[i]);
            return CTL_EXIT_USAGE;
        }
        const char *v = argv[++i];
        if (strcmp(argv[i - 1], "--gateway") == 0) {
            c.gateway = v;
        } else if (strcmp(argv[i - 1], "-o") == 0 || strcmp(argv[i - 1], "--output") == 0) {
            if (strcmp(v, "json") != 0 && strcmp(v, "table") != 0) {
                fprintf(stderr, "loyaltyctl: -o takes table or json, not %s\n", v);
                return CTL_EXIT_USAGE;
            }
            c.json = strcmp(v, "json") == 0;
        } else if (strcmp(argv[i - 1], "--timeout") == 0) {
            int64_t s = 0;
            if (!config_parse_int(v, 1, 3600, &s)) {
                fprintf(stderr, "loyaltyctl: --timeout takes 1..3600 seconds, not %s\n", v);
                return CTL_EXIT_USAGE;
            }
            c.timeout_ms = s * 1000;
        } else {
            fprintf(stderr, "loyaltyctl: unknown option %s (see loyaltyctl --help)\n", argv[i - 1]);
            return CTL_EXIT_USAGE;
        }
    }
    if (i >= argc) {
        fprintf(stderr, "loyaltyctl: a command is required (see loyaltyctl --help)\n");
        return CTL_EXIT_USAGE;
    }
    int words = 0;
    const ctl_command_t *cmd = find_command(argc - i, argv + i, &words);
    if (cmd == NULL) {
        fprintf(stderr, "loyaltyctl: unknown command %s%s%s (see loyaltyctl --help)\n", argv[i],
                i + 1 < argc ? " " : "", i + 1 < argc ? argv[i + 1] : "");
        /* The first word of two-word commands: name them ("programme" -> plan, apply, export). */
        size_t len = strlen(argv[i]);
        bool first = true;
        for (size_t k = 0; k < CTL_N_COMMANDS; k++) {
            const char *name = ctl_commands[k].name;
            if (strncmp(name, argv[i], len) == 0 && name[len] == ' ') {
                fprintf(stderr, "%s %s", first ? "  did you mean:" : ",", name);
                first = false;
            }
        }
        if (!first) {
            fputc('\n', stderr);
        }
        return CTL_EXIT_USAGE;
    }
    ctl_args_t a;
    int rc = ctl_parse_args(&c, cmd, argc - i - words, argv + i + words, &a);
    if (rc != CTL_EXIT_OK) {
        return rc < 0 ? CTL_EXIT_OK : rc;
    }
    if (c.gateway == NULL || c.gateway[0] == '\0') {
        return ctl_usage_error(cmd, "no gateway: give --gateway HOST:PORT or set "
                                    "LOYALTY_GATEWAY_ADDR");
    }
    g_timeout_ms = c.timeout_ms ? c.timeout_ms : cmd->default_timeout_ms;
    grpc_init();
    if (!client_setup(cmd)) {
        grpc_shutdown();
        return CTL_EXIT_USAGE;
    }
    arena_init(&c.arena);
    rc = cmd->run(&c, cmd, &a);
    fflush(stdout);
    arena_free(&c.arena);
    rpc_client_shutdown();
    grpc_shutdown();
    return rc;
}
