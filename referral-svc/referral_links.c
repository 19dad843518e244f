/* referral_links.c -- referral codes (generation, normalisation) and share links (templates,
 * RFC 3986 percent-encoding). */
#include "referral_rules.h"

#include "ids.h"
#include "validate.h"

#include <string.h>

void referral_code_generate(char out[REFERRAL_CODE_LEN + 1]) {
    id_random_token(REFERRAL_CODE_ALPHABET, REFERRAL_CODE_LEN, out);
}

static bool is_space(char c) {
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

status_t referral_code_normalize(const char *field, const char *in,
                                 char out[REFERRAL_CODE_INPUT_MAX + 1]) {
    size_t n = strlen(in);
    size_t start = 0;
    while (start < n && is_space(in[start])) {
        start++;
    }
    while (n > start && is_space(in[n - 1])) {
        n--;
    }
    size_t len = n - start;
    if (len == 0 || len > REFERRAL_CODE_INPUT_MAX) {
        return status_invalid_field(field, "must be 1 to %d letters and digits",
                                    REFERRAL_CODE_INPUT_MAX);
    }
    for (size_t i = 0; i < len; i++) {
        char c = in[start + i];
        if (c >= 'a' && c <= 'z') {
            c = (char)(c - 'a' + 'A');
        }
        if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))) {
            return status_invalid_field(field, "must contain only letters and digits");
        }
        out[i] = c;
    }
    out[len] = '\0';
    return status_ok();
}

static bool is_unreserved(unsigned char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

char *referral_percent_encode(arena_t *a, const char *s) {
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(s);
    char *out = arena_alloc(a, n * 3 + 1);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (is_unreserved(c)) {
            out[o++] = (char)c;
        } else {
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    out[o] = '\0';
    return out;
}

#define CODE_PLACEHOLDER "{code}"
#define URL_PLACEHOLDER "{url}"

status_t referral_check_url_template(const char *field, const char *tmpl) {
    size_t n = strlen(tmpl);
    if (n == 0) {
        return status_ok();
    }
    if (n > REFERRAL_URL_TEMPLATE_MAX) {
        return status_invalid_field(field, "at most %d characters", REFERRAL_URL_TEMPLATE_MAX);
    }
    if (strncmp(tmpl, "https://", 8) != 0 && strncmp(tmpl, "http://", 7) != 0) {
        return status_invalid_field(field, "must start with https:// or http://");
    }
    bool has_code = false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)tmpl[i];
        if (c <= 0x20 || c >= 0x7f) {
            return status_invalid_field(field, "only printable ASCII without spaces");
        }
        if (c == '{') {
            if (strncmp(tmpl + i, CODE_PLACEHOLDER, strlen(CODE_PLACEHOLDER)) != 0) {
                return status_invalid_field(field, "the only placeholder is {code}");
            }
            has_code = true;
            i += strlen(CODE_PLACEHOLDER) - 1;
        } else if (c == '}') {
            return status_invalid_field(field, "the only placeholder is {code}");
        }
    }
    if (!has_code) {
        return status_invalid_field(field, "must contain {code}");
    }
    return status_ok();
}

status_t referral_check_message_template(const char *field, const char *tmpl) {
    return validate_text(field, tmpl, 0, REFERRAL_MESSAGE_TEMPLATE_MAX);
}

/* Replaces every `name` in tmpl by `value`. */
static char *replace_all(arena_t *a, const char *tmpl, const char *name, const char *value) {
    size_t name_len = strlen(name);
    size_t value_len = strlen(value);
    size_t count = 0;
    for (const char *p = strstr(tmpl, name); p; p = strstr(p + name_len, name)) {
        count++;
    }
    char *out = arena_alloc(a, strlen(tmpl) + count * value_len + 1);
    char *o = out;
    const char *p = tmpl;
    for (const char *hit = strstr(p, name); hit; hit = strstr(p, name)) {
        memcpy(o, p, (size_t)(hit - p));
        o += hit - p;
        memcpy(o, value, value_len);
        o += value_len;
        p = hit + name_len;
    }
    strcpy(o, p);
    return out;
}

void referral_share_links(arena_t *a, const char *url_template, const char *message_template,
                          const char *code, Loyalty__V1__ReferralShareLinks *out) {
    if (url_template[0] == '\0') {
        out->url = out->whatsapp_url = out->facebook_url = out->message = "";
        return;
    }
    char *url = replace_all(a, url_template, CODE_PLACEHOLDER, referral_percent_encode(a, code));
    const char *tmpl = message_template[0] ? message_template : URL_PLACEHOLDER;
    char *message = replace_all(a, tmpl, CODE_PLACEHOLDER, code);
    if (strstr(message, URL_PLACEHOLDER) != NULL) {
        message = replace_all(a, message, URL_PLACEHOLDER, url);
    } else {
        message = arena_printf(a, "%s %s", message, url);
    }
    out->url = url;
    out->message = message;
    out->whatsapp_url =
        arena_printf(a, "%s%s", REFERRAL_WHATSAPP_PREFIX, referral_percent_encode(a, message));
    out->facebook_url =
        arena_printf(a, "%s%s", REFERRAL_FACEBOOK_PREFIX, referral_percent_encode(a, url));
}
