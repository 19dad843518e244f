/* promo_rules.c -- validation and normalisation of promotions, coupon templates and carts. */
#include "promo_rules.h"

#include <ctype.h>
#include <string.h>

status_t promo_rules_normalize_code(const char *field, const char *code, char *out) {
    size_t n = strlen(code);
    if (n < 3 || n > PROMO_CODE_MAX) {
        return status_invalid_field(field, "must be 3 to %d characters", PROMO_CODE_MAX);
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)code[i];
        if (!isalnum(c) && c != '_' && c != '-') {
            return status_invalid_field(field, "only letters, digits, '_' and '-' are allowed");
        }
        out[i] = (char)toupper(c);
    }
    out[n] = '\0';
    return status_ok();
}
