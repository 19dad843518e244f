/* points_rules.c -- pure rules of points (see points_rules.h). */
#include "points_rules.h"
