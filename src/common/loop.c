/* loop.c: a background thread turning until stopped (see loop.h). */
#include "common/loop.h"

#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "common/common.h"

struct wh_loop {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool kicked;          /* under `lock` */
    atomic_bool stopping; /* written under `lock`, read anywhere */
    int64_t (*turn)(void *payload);
    void *payload;
};

/* Waits `ms` or until kicked or stopped; false once stopped. */
static bool wait_turn(wh_loop *l, int64_t ms)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (ms % 1000) * 1000000L;
    until.tv_sec += until.tv_nsec / 1000000000L;
    until.tv_nsec %= 1000000000L;
    pthread_mutex_lock(&l->lock);
    if (ms > 0 && !atomic_load(&l->stopping) && !l->kicked)
        pthread_cond_timedwait(&l->wake, &l->lock, &until);
    l->kicked = false;
    pthread_mutex_unlock(&l->lock);
    return !atomic_load(&l->stopping);
}

static void *loop_main(void *arg)
{
    wh_loop *l = arg;
    int64_t wait = 0;
    while (wait_turn(l, wait))
        wait = l->turn(l->payload);
    return NULL;
}

int wh_loop_start(wh_loop **out, const char *name, int64_t (*turn)(void *payload),
                  void *payload)
{
    wh_loop *l = wh_calloc(1, sizeof(*l));
    l->turn = turn;
    l->payload = payload;
    atomic_init(&l->stopping, false);
    pthread_mutex_init(&l->lock, NULL);
    pthread_cond_init(&l->wake, NULL);
    /* set before the thread starts: its first turn may already use it (through payload) */
    *out = l;
    if (pthread_create(&l->thread, NULL, loop_main, l) != 0) {
        *out = NULL;
        pthread_cond_destroy(&l->wake);
        pthread_mutex_destroy(&l->lock);
        free(l);
        return wh_error_set(WH_ERROR, "cannot start the %s thread", name);
    }
    return 0;
}

void wh_loop_kick(wh_loop *l)
{
    if (!l)
        return;
    pthread_mutex_lock(&l->lock);
    l->kicked = true;
    pthread_cond_signal(&l->wake);
    pthread_mutex_unlock(&l->lock);
}

const atomic_bool *wh_loop_stopping(const wh_loop *l)
{
    return &l->stopping;
}

void wh_loop_stop(wh_loop *l)
{
    if (!l)
        return;
    pthread_mutex_lock(&l->lock);
    atomic_store(&l->stopping, true);
    pthread_cond_signal(&l->wake);
    pthread_mutex_unlock(&l->lock);
    pthread_join(l->thread, NULL);
    pthread_cond_destroy(&l->wake);
    pthread_mutex_destroy(&l->lock);
    free(l);
}
