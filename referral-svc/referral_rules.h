/* referral_rules.h -- pure rules of the referral programme. No I/O; unit-tested. */
#ifndef REFERRAL_RULES_H
#define REFERRAL_RULES_H

#include "status.h"

#endif
