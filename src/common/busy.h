/*
 * busy: the requests that change something (HTTP's unsafe methods: pushes,
 * deletes, settings) in flight now, and a wait for a pause in them, so that
 * background work (the scans that pushes queue) lets them go first instead
 * of taking CPU and the database's write lock in the middle of a burst. A
 * fourth header of common/ (beside common.h, metrics.h and loop.h), so that
 * http/ can count and scand/ can wait without knowing each other.
 */
#ifndef WH_BUSY_H
#define WH_BUSY_H

#include <stdint.h>

/* A changing request began / completed (the HTTP server calls these). */
void wh_busy_enter(void);
void wh_busy_leave(void);
/* Changing requests in flight now. */
int wh_busy_count(void);
/*
 * Waits until no changing request is in flight, `max_ms` at most; returns
 * the milliseconds waited (0 when there was none).
 */
int64_t wh_busy_pause(int max_ms);

#endif
