/* referral_rules.c -- programme validation, reward arithmetic, tree rules. */
#include "referral_rules.h"
