/* rpc_pool.c - a free list of equal-sized chunk buffers behind a mutex, so a transfer of many
 * chunks allocates a few buffers once instead of one per chunk. Not an allocator for anything
 * else: every buffer has the pool's one size. */
#include "rpc.h"

#include <pthread.h>
#include <stdlib.h>

struct fl_rpc_pool {
    pthread_mutex_t mu;
    size_t cap;       /* bytes of data per buffer */
    int keep;         /* free buffers kept at most */
    fl_rpc_buf *free; /* the free list */
    size_t n_free, n_out, n_allocs;
    int closed; /* fl_rpc_pool_free was called; the last returning buffer frees the pool */
};

static void pool_destroy(fl_rpc_pool *p) {
    for (fl_rpc_buf *b = p->free, *next; b; b = next) {
        next = b->next;
        free(b);
    }
    pthread_mutex_destroy(&p->mu);
    free(p);
}

fl_rpc_pool *fl_rpc_pool_new(size_t cap, int keep) {
    fl_rpc_pool *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    if (pthread_mutex_init(&p->mu, NULL) != 0) {
        free(p);
        return NULL;
    }
    p->cap = cap;
    p->keep = keep > 0 ? keep : 0;
    return p;
}

void fl_rpc_pool_free(fl_rpc_pool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    for (fl_rpc_buf *b = p->free, *next; b; b = next) {
        next = b->next;
        free(b);
    }
    p->free = NULL;
    p->n_free = 0;
    p->closed = 1;
    int last = p->n_out == 0;
    pthread_mutex_unlock(&p->mu);
    if (last) pool_destroy(p);
}

fl_rpc_buf *fl_rpc_buf_get(fl_rpc_pool *p) {
    pthread_mutex_lock(&p->mu);
    fl_rpc_buf *b = p->free;
    if (b) {
        p->free = b->next;
        p->n_free--;
    }
    p->n_out++; /* counted before allocating, so a concurrent pool_free waits for it */
    pthread_mutex_unlock(&p->mu);
    if (!b) {
        /* data is 64-byte aligned inside the struct; aligned_alloc wants a multiple of 64 */
        size_t size = (sizeof(fl_rpc_buf) + p->cap + 63) & ~(size_t)63;
        b = aligned_alloc(64, size);
        pthread_mutex_lock(&p->mu);
        if (b)
            p->n_allocs++;
        else
            p->n_out--;
        pthread_mutex_unlock(&p->mu);
        if (!b) return NULL;
        b->pool = p;
        b->cap = p->cap;
    }
    b->next = NULL;
    b->len = 0;
    return b;
}

void fl_rpc_buf_put(fl_rpc_buf *b) {
    if (!b) return;
    fl_rpc_pool *p = b->pool;
    pthread_mutex_lock(&p->mu);
    p->n_out--;
    int keep = !p->closed && p->n_free < (size_t)p->keep;
    if (keep) {
        b->next = p->free;
        p->free = b;
        p->n_free++;
    }
    int last = p->closed && p->n_out == 0;
    pthread_mutex_unlock(&p->mu);
    if (!keep) free(b);
    if (last) pool_destroy(p);
}

void fl_rpc_buf_release(void *b) {
    fl_rpc_buf_put(b);
}

fl_rpc_pool_stats fl_rpc_pool_get_stats(fl_rpc_pool *p) {
    pthread_mutex_lock(&p->mu);
    fl_rpc_pool_stats s = {p->cap, p->n_free, p->n_out, p->n_allocs};
    pthread_mutex_unlock(&p->mu);
    return s;
}
