/* secagg_impl.h - what crypto/secagg.c, secagg_client.c and secagg_server.c share: the checked
 * round parameters, the threshold sentence and the keystream of a derived key. Not public: the
 * protocol's API is secagg.h. */
#ifndef FL_SECAGG_IMPL_H
#define FL_SECAGG_IMPL_H

#include "secagg.h"

/* The round as both sides keep it: the parameters with the study copied and t resolved. */
typedef struct {
    char study[FL_SECAGG_ID_MAX + 1];
    uint64_t round;
    uint32_t n, t;
    size_t dim;
    fl_stream_cipher cipher;
} fl__secagg_round;

/* Checks p (study, n, t, dim, cipher) and fills *r. FL_EINVAL naming the bad field. */
fl_status fl__secagg_round_init(fl__secagg_round *r, const fl_secagg_params *p, fl_err *err);

/* Length of id when it is 1..FL_SECAGG_ID_MAX bytes before a NUL within the first
 * FL_SECAGG_ID_MAX + 1 bytes; 0 otherwise. */
size_t fl__secagg_id_len(const char *id);

/* FL_EINVAL with "secure aggregation needs t = T of N clients, R remain after STEP; the round
 * is aborted". */
fl_status fl__secagg_too_few(fl_err *err, const fl__secagg_round *r, size_t remain,
                             const char *step);

/* Starts the round's keystream under key at IV 0 (each derived key names one mask). */
fl_status fl__secagg_stream(fl_stream *s, const fl__secagg_round *r,
                            const uint8_t key[FL_SECAGG_KEY_LEN], fl_err *err);

/* +1 when client u adds its pair mask with v (u < v), -1 when it subtracts it. */
static inline int fl__secagg_pair_sign(uint32_t u, uint32_t v) {
    return u < v ? 1 : -1;
}

#endif
