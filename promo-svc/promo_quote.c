/* promo_quote.c -- the quote engine (see promo_quote.h and the top of promo.proto). */
#include "promo_quote.h"
