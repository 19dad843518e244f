/* points_jobs.h -- the points-svc timer: settles every member of every merchant whose holds,
 * pending windows or lots fell due (the same work as ExpirePoints), safe on many replicas. */
#ifndef POINTS_JOBS_H
#define POINTS_JOBS_H

#include "rpc.h"

extern const rpc_job_t points_jobs[];

#endif
