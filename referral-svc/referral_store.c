/* referral_store.c -- programme, tree and reward rows. */
#include "referral_store.h"
