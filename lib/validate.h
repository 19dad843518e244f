/* validate.h -- checks for values that come from outside: every failure is an
 * INVALID_ARGUMENT status naming the field (house style: validate everything external). */
#ifndef LOYALTY_VALIDATE_H
#define LOYALTY_VALIDATE_H

#include "status.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MERCHANT_ID_MAX 64
#define IDEMPOTENCY_KEY_MAX 128
#define EMAIL_MAX 254
#define PHONE_MAX 16 /* "+" and up to 15 digits (E.164) */

/** True when s[0..n) is well-formed UTF-8 (no overlongs, no surrogates). */
bool validate_utf8(const char *s, size_t n);

/** Number of code points in a valid UTF-8 string. */
size_t validate_utf8_length(const char *s);

/** Free text: valid UTF-8 without control characters, min..max code points. */
status_t validate_text(const char *field, const char *value, size_t min_chars, size_t max_chars);

/** An identifier-like token: 1..max characters of [A-Za-z0-9_.:-]. */
status_t validate_token(const char *field, const char *value, size_t max_len);

/** merchant_id: required token of at most MERCHANT_ID_MAX characters. */
status_t validate_merchant_id(const char *value);

/** idempotency_key: required, 1..IDEMPOTENCY_KEY_MAX printable ASCII characters. */
status_t validate_idempotency_key(const char *value);

/** An e-mail address, lower-cased into out[EMAIL_MAX + 1]. */
status_t validate_email(const char *field, const char *value, char *out);

/** A phone number in E.164 after removing spaces, dashes, dots and parentheses, written as
 *  "+<digits>" into out[PHONE_MAX + 1]. */
status_t validate_phone(const char *field, const char *value, char *out);

/** A calendar date "YYYY-MM-DD" between 1900-01-01 and 2999-12-31. */
status_t validate_date(const char *field, const char *value, int *year, int *month, int *day);

/** Days since 1970-01-01 of a proleptic Gregorian date (negative before). */
int64_t date_days_from_civil(int year, int month, int day);
/** The inverse of date_days_from_civil. */
void date_civil_from_days(int64_t days, int *year, int *month, int *day);
/** Days in a month, leap years included. */
int date_days_in_month(int year, int month);

#endif
