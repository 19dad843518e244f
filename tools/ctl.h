/* ctl.h -- what loyaltyctl's parts share: the invocation (gateway address, output format,
 * deadline), the command table's shape, argument parsing, the one call to the gateway that turns
 * a refusal into exit code 1, and the output helpers (JSON from any message, enum names, times).
 * Exit codes: CTL_EXIT_OK, CTL_EXIT_REFUSED (the gateway refused or a check found something),
 * CTL_EXIT_USAGE. */
#ifndef LOYALTY_CTL_H
#define LOYALTY_CTL_H

#include "arena.h"

#include <protobuf-c/protobuf-c.h>

#include <stdbool.h>
#include <stdint.h>

enum { CTL_EXIT_OK = 0, CTL_EXIT_REFUSED = 1, CTL_EXIT_USAGE = 2 };

/* Options a command may take (ctl_command_t.options); -o, --gateway, --timeout and --help are
 * taken by every command. */
enum {
    CTL_OPT_MERCHANT = 1 << 0,   /* --merchant M */
    CTL_OPT_STATE = 1 << 1,      /* --state S */
    CTL_OPT_KIND = 1 << 2,       /* --kind K */
    CTL_OPT_OLDER_THAN = 1 << 3, /* --older-than DURATION */
    CTL_OPT_LIMIT = 1 << 4,      /* --limit N */
    CTL_OPT_KEY = 1 << 5,        /* --idempotency-key K */
    CTL_OPT_BY = 1 << 6,         /* --by id|phone|external-id */
    CTL_OPT_SINCE = 1 << 7,      /* --since DURATION|UNIX_SECONDS */
    CTL_OPT_FILE = 1 << 8,       /* -f FILE */
    CTL_OPT_TIME_ZONE = 1 << 9,  /* --time-zone Z */
    CTL_OPT_CURRENCY = 1 << 10,  /* --currency C */
    CTL_OPT_LOCALE = 1 << 11,    /* --locale L */
};

typedef struct ctl {
    const char *gateway; /* host:port */
    bool json;           /* -o json */
    int64_t timeout_ms;  /* 0 = the command's default */
    arena_t arena;       /* responses; freed at exit */
} ctl_t;

typedef struct ctl_args {
    const char *merchant, *state, *kind, *older_than, *key, *by, *since, *file;
    const char *time_zone, *currency, *locale; /* merchant set: NULL = not given */
    int64_t limit;                             /* 0 = not given */
    const char *positional[2];
    int n_positional;
} ctl_args_t;

typedef struct ctl_command ctl_command_t;
struct ctl_command {
    const char *name;     /* "sagas list" */
    const char *synopsis; /* what follows the name in a usage line */
    const char *summary;  /* one line for `loyaltyctl --help` */
    const char *help;     /* the rest of `loyaltyctl <cmd> --help` */
    unsigned options;     /* CTL_OPT_* */
    int positional_min, positional_max;
    bool merchant_required;
    int64_t default_timeout_ms;
    int (*run)(ctl_t *c, const ctl_command_t *cmd, const ctl_args_t *a);
    bool file_required; /* -f FILE */
};

/** Parses the command's arguments (after its name) into *a, taking -o, --gateway, --timeout
 *  into c. CTL_EXIT_OK, CTL_EXIT_USAGE after printing what is wrong, or -1 after printing the
 *  command's help (--help: exit 0). */
int ctl_parse_args(ctl_t *c, const ctl_command_t *cmd, int argc, char **argv, ctl_args_t *a);

/** Prints "loyaltyctl <cmd>: <message>" and the usage line to stderr; returns CTL_EXIT_USAGE. */
int ctl_usage_error(const ctl_command_t *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/** Prints the command's full help to stdout. */
void ctl_print_command_help(const ctl_command_t *cmd);

/** Calls Gateway/<method>. OK: *resp in c->arena, returns CTL_EXIT_OK. Refused (any non-OK
 *  status, unreachable gateway included): prints the gRPC code, reason, message and the
 *  request id to stderr and returns CTL_EXIT_REFUSED. *code_out (may be NULL) gets the code. */
int ctl_call(ctl_t *c, const ctl_command_t *cmd, const char *method, const ProtobufCMessage *req,
             ProtobufCMessage **resp, int *code_out);
/** ctl_call that prints nothing when refused (a first guess the caller follows up). */
int ctl_call_quiet(ctl_t *c, const ctl_command_t *cmd, const char *method,
                   const ProtobufCMessage *req, ProtobufCMessage **resp, int *code_out);

/** ctl_call of a method of another service the gateway serves (CampaignService). */
int ctl_call_on(ctl_t *c, const ctl_command_t *cmd, const ProtobufCServiceDescriptor *service,
                const char *method, const ProtobufCMessage *req, ProtobufCMessage **resp,
                int *code_out);

/** Writes `m` as JSON to stdout (ctl_json.c): field names as in the .proto, every field (absent
 *  messages as null, unset oneof members left out), enums by name, 64-bit integers as numbers,
 *  maps as objects, bytes as base64. */
void ctl_print_json(const ProtobufCMessage *m);

/** The name of enum value v without the enum's prefix ("NEEDS_ATTENTION"), or the number. */
const char *ctl_enum_name(const ProtobufCEnumDescriptor *d, int v, char buf[24]);
/** The value named `name` (with or without the prefix, any case); false when there is none. */
bool ctl_enum_parse(const ProtobufCEnumDescriptor *d, const char *name, int *out);

/** "15m", "90s", "2h", "3d" or a number of seconds; false when malformed or over ten years. */
bool ctl_parse_duration(const char *text, int64_t *seconds);

/** "2026-12-06 23:10:05Z" (UTC), or "-" for 0. */
const char *ctl_time(int64_t unix_s, char buf[24]);

/* The commands (one file per area). */
int ctl_cmd_health(ctl_t *c, const ctl_command_t *cmd, const ctl_args_t *a);
int ctl_cmd_sagas_list(ctl_t *c, const ctl_command_t *cmd, const ctl_args_t *a);
int ctl_cmd_saga_show(ctl_t *c, const ctl_command_t *cmd, const ctl_args_t *a);
int ctl_cmd_saga_retry(ctl_t *c, const ctl_command_t *cmd, const ctl_args_t *a);
int ctl_cmd_ledger_verify(ctl_t *c, const ctl_command_t *cmd, const ctl_args_t *a);
int ctl_cmd_member_show(ctl_t *c, const ctl_command_t *cmd, const ctl_args_t *a);
int ctl_cmd_audit(ctl_t *c, const ctl_command_t *cmd, const ctl_args_t *a);
int ctl_cmd_programme_plan(ctl_t *c, const ctl_command_t *cmd, const ctl_args_t *a);
int ctl_cmd_programme_apply(ctl_t *c, const ctl_command_t *cmd, const ctl_args_t *a);
int ctl_cmd_programme_export(ctl_t *c, const ctl_command_t *cmd, const ctl_args_t *a);
int ctl_cmd_merchant_settings(ctl_t *c, const ctl_command_t *cmd, const ctl_args_t *a);
int ctl_cmd_merchant_set(ctl_t *c, const ctl_command_t *cmd, const ctl_args_t *a);

#endif
