/* wallet_rules.h -- pure rules of the wallet: no I/O; unit-tested in tests/unit. */
#ifndef WALLET_RULES_H
#define WALLET_RULES_H

#endif
