/* validate.c -- input validation and calendar arithmetic. */
#include "validate.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

bool validate_utf8(const char *str, size_t n) {
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        size_t len;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            len = 2;
            cp = c & 0x1fu;
        } else if ((c & 0xf0) == 0xe0) {
            len = 3;
            cp = c & 0x0fu;
        } else if ((c & 0xf8) == 0xf0) {
            len = 4;
            cp = c & 0x07u;
        } else {
            return false;
        }
        if (i + len > n) {
            return false;
        }
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80) {
                return false;
            }
            cp = (cp << 6) | (s[i + k] & 0x3fu);
        }
        if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
            cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
            return false;
        }
        i += len;
    }
    return true;
}

size_t validate_utf8_length(const char *s) {
    size_t n = 0;
    for (; *s; s++) {
        if (((unsigned char)*s & 0xc0) != 0x80) {
            n++;
        }
    }
    return n;
}

status_t validate_text(const char *field, const char *value, size_t min_chars, size_t max_chars) {
    size_t bytes = strlen(value);
    if (!validate_utf8(value, bytes)) {
        return status_invalid_field(field, "not valid UTF-8");
    }
    for (size_t i = 0; i < bytes; i++) {
        unsigned char c = (unsigned char)value[i];
        if (c < 0x20 || c == 0x7f) {
            return status_invalid_field(field, "contains control characters");
        }
    }
    size_t chars = validate_utf8_length(value);
    if (chars < min_chars) {
        return min_chars == 1 ? status_invalid_field(field, "required")
                              : status_invalid_field(field, "at least %zu characters", min_chars);
    }
    if (chars > max_chars) {
        return status_invalid_field(field, "at most %zu characters", max_chars);
    }
    return status_ok();
}

status_t validate_token(const char *field, const char *value, size_t max_len) {
    size_t n = strlen(value);
    if (n == 0) {
        return status_invalid_field(field, "required");
    }
    if (n > max_len) {
        return status_invalid_field(field, "at most %zu characters", max_len);
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)value[i];
        if (!isalnum(c) && c != '_' && c != '-' && c != '.' && c != ':') {
            return status_invalid_field(field, "only letters, digits and _ . : - are allowed");
        }
    }
    return status_ok();
}

status_t validate_merchant_id(const char *value) {
    return validate_token("merchant_id", value, MERCHANT_ID_MAX);
}

status_t validate_idempotency_key(const char *value) {
    size_t n = strlen(value);
    if (n == 0) {
        return status_invalid_field("idempotency_key", "required");
    }
    if (n > IDEMPOTENCY_KEY_MAX) {
        return status_invalid_field("idempotency_key", "at most %d characters",
                                    IDEMPOTENCY_KEY_MAX);
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)value[i];
        if (c < 0x21 || c > 0x7e) {
            return status_invalid_field("idempotency_key", "only printable ASCII is allowed");
        }
    }
    return status_ok();
}

status_t validate_email(const char *field, const char *value, char *out) {
    size_t n = strlen(value);
    if (n == 0) {
        return status_invalid_field(field, "required");
    }
    if (n > EMAIL_MAX) {
        return status_invalid_field(field, "at most %d characters", EMAIL_MAX);
    }
    const char *at = strchr(value, '@');
    if (at == NULL || at == value || strchr(at + 1, '@') != NULL) {
        return status_invalid_field(field, "not an e-mail address");
    }
    const char *domain = at + 1;
    size_t dlen = strlen(domain);
    const char *dot = strrchr(domain, '.');
    if (dlen < 3 || dot == NULL || dot == domain || dot[1] == '\0' || domain[dlen - 1] == '.' ||
        strstr(domain, "..") != NULL || (size_t)(at - value) > 64) {
        return status_invalid_field(field, "not an e-mail address");
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)value[i];
        bool ok = isalnum(c) || strchr("@.!#$%&'*+/=?^_`{|}~-", c) != NULL;
        if (!ok) {
            return status_invalid_field(field, "not an e-mail address");
        }
        out[i] = (char)tolower(c);
    }
    out[n] = '\0';
    return status_ok();
}

status_t validate_phone(const char *field, const char *value, char *out) {
    size_t o = 0;
    bool plus = false;
    for (const char *p = value; *p; p++) {
        char c = *p;
        if (c == ' ' || c == '-' || c == '(' || c == ')' || c == '.') {
            continue;
        }
        if (c == '+' && o == 0 && !plus) {
            plus = true;
            out[o++] = '+';
            continue;
        }
        if (c < '0' || c > '9' || o >= PHONE_MAX) {
            return status_invalid_field(field, "expected E.164, e.g. +6591234567");
        }
        out[o++] = c;
    }
    out[o] = '\0';
    /* "+", a non-zero country digit, and 7..15 digits in all. */
    if (!plus || o < 8 || o > PHONE_MAX || out[1] == '0') {
        return status_invalid_field(field, "expected E.164, e.g. +6591234567");
    }
    return status_ok();
}

int date_days_in_month(int year, int month) {
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    return month == 2 && leap ? 29 : days[month - 1];
}

status_t validate_date(const char *field, const char *value, int *year, int *month, int *day) {
    int y, m, d;
    char tail;
    if (strlen(value) != 10 || value[4] != '-' || value[7] != '-' ||
        sscanf(value, "%4d-%2d-%2d%c", &y, &m, &d, &tail) != 3) {
        return status_invalid_field(field, "expected a date YYYY-MM-DD");
    }
    for (int i = 0; i < 10; i++) {
        if (i != 4 && i != 7 && !isdigit((unsigned char)value[i])) {
            return status_invalid_field(field, "expected a date YYYY-MM-DD");
        }
    }
    if (y < 1900 || y > 2999 || m < 1 || m > 12 || d < 1 || d > date_days_in_month(y, m)) {
        return status_invalid_field(field, "not a valid calendar date");
    }
    *year = y;
    *month = m;
    *day = d;
    return status_ok();
}

/* Howard Hinnant's civil-from-days algorithms, proleptic Gregorian. */
int64_t date_days_from_civil(int year, int month, int day) {
    int64_t y = year - (month <= 2);
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t mp = (month + 9) % 12;
    int64_t doy = (153 * mp + 2) / 5 + day - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

void date_civil_from_days(int64_t days, int *year, int *month, int *day) {
    int64_t z = days + 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t y = yoe + era * 400;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int64_t d = doy - (153 * mp + 2) / 5 + 1;
    int64_t m = mp < 10 ? mp + 3 : mp - 9;
    *year = (int)(y + (m <= 2));
    *month = (int)m;
    *day = (int)d;
}
