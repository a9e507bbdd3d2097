/*
 * loop: a background thread that does one job over and over — the garbage
 * collector's and the scan-all scheduler's — waking when the wait its last
 * turn asked for has passed or when kicked, and ending on request. A
 * third header of common/ (beside common.h and metrics.h).
 */
#ifndef WH_LOOP_H
#define WH_LOOP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct wh_loop wh_loop;

/*
 * Starts a thread that calls `turn(payload)` at once, then again after the
 * milliseconds that call returned (or sooner, when kicked), until stopped.
 * `*out` is set before the first turn, so a turn may reach the loop through
 * `payload`.
 * 0 or WH_ERROR ("cannot start the <name> thread").
 */
int wh_loop_start(wh_loop **out, const char *name, int64_t (*turn)(void *payload),
                  void *payload);
/* Wakes the thread for a turn now (a new schedule, a run asked for). NULL is ignored. */
void wh_loop_kick(wh_loop *l);
/* The flag a long turn watches to end early: set once wh_loop_stop is called. */
const atomic_bool *wh_loop_stopping(const wh_loop *l);
/* Asks the thread to end, waits for it, frees `l` (NULL is ignored). */
void wh_loop_stop(wh_loop *l);

#endif
