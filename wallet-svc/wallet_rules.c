/* wallet_rules.c -- pure rules of the wallet. */
#include "wallet_rules.h"
