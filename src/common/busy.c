/*
 * busy.c: one process-wide count of changing requests in flight. Entering
 * and leaving are one atomic add each; a request that brings the count to
 * zero while someone waits for a pause wakes the waiters.
 */
#include "common/busy.h"
#include "common/common.h"

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

static atomic_int in_flight;
static atomic_int waiting;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t paused = PTHREAD_COND_INITIALIZER;

void wh_busy_enter(void)
{
    atomic_fetch_add(&in_flight, 1);
}

void wh_busy_leave(void)
{
    if (atomic_fetch_sub(&in_flight, 1) == 1 && atomic_load(&waiting) > 0) {
        pthread_mutex_lock(&lock);
        pthread_cond_broadcast(&paused);
        pthread_mutex_unlock(&lock);
    }
}

int wh_busy_count(void)
{
    return atomic_load(&in_flight);
}

int64_t wh_busy_pause(int max_ms)
{
    if (atomic_load(&in_flight) <= 0 || max_ms <= 0)
        return 0;
    int64_t t0 = wh_monotonic_ms();
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += max_ms / 1000;
    until.tv_nsec += (long)(max_ms % 1000) * 1000000L;
    until.tv_sec += until.tv_nsec / 1000000000L;
    until.tv_nsec %= 1000000000L;
    atomic_fetch_add(&waiting, 1);
    pthread_mutex_lock(&lock);
    /* the count is read under the lock the leaver takes to signal: no wake-up is lost */
    while (atomic_load(&in_flight) > 0 &&
           pthread_cond_timedwait(&paused, &lock, &until) == 0)
        ;
    pthread_mutex_unlock(&lock);
    atomic_fetch_sub(&waiting, 1);
    return wh_monotonic_ms() - t0;
}
