/* merchant_rules.h -- the pure rules of the merchant settings record (Gateway/
 * UpdateMerchantSettings, docs/architecture.md#merchant-settings): the shapes of a time zone, an
 * ISO 4217 currency and a BCP 47 locale, and the backoff of a push that failed. No I/O: whether
 * PostgreSQL knows a time zone is the store's question. */
#ifndef MERCHANT_RULES_H
#define MERCHANT_RULES_H

#include "status.h"

#include <stdint.h>

#define MERCHANT_TIME_ZONE_MAX 64
#define MERCHANT_CURRENCY_LEN 3
#define MERCHANT_LOCALE_MAX 35
/* The longest wait between two pushes of the record to a service that keeps failing. */
#define MERCHANT_PUSH_BACKOFF_MAX_S 60

/** The shape of an IANA zone name ("Asia/Singapore", "Etc/GMT+8", "UTC"): 1..64 characters of
 *  letters, digits and "/_+-". INVALID_ARGUMENT INVALID_SETTINGS_TIME_ZONE otherwise. */
status_t merchant_check_time_zone(const char *tz);

/** "" (not set) or three capital letters (ISO 4217 alphabetic code). INVALID_SETTINGS_CURRENCY
 *  otherwise. */
status_t merchant_check_currency(const char *currency);

/** "" (not set) or a BCP 47 language tag of at most 35 characters: language (2..3 letters),
 *  then in order an optional script (4 letters), an optional region (2 letters or 3 digits),
 *  variants (5..8 alphanumerics, or a digit and 3 alphanumerics), extensions (a singleton other
 *  than x, then subtags of 2..8 alphanumerics) and private use (x, then subtags of 1..8). Written
 *  into out[MERCHANT_LOCALE_MAX + 1] with the usual case: language and the rest lower, script
 *  title, region upper. INVALID_SETTINGS_LOCALE otherwise. */
status_t merchant_normalize_locale(const char *locale, char *out);

/** Seconds to wait before the next push after `attempts` failed ones (1 s doubling, at most
 *  MERCHANT_PUSH_BACKOFF_MAX_S). */
int64_t merchant_push_backoff_s(int32_t attempts);

#endif
