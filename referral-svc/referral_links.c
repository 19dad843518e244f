/* referral_links.c -- referral codes and share links. */
#include "referral_rules.h"
