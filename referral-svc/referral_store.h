/* referral_store.h -- SQL of the `referral` schema. Every function takes the merchant and never
 * touches another merchant's rows. */
#ifndef REFERRAL_STORE_H
#define REFERRAL_STORE_H

#include "db.h"

#endif
