/* task_secagg.h - a hospital's side of one secure-aggregation round (docs/privacy.md, "Secure
 * aggregation"): turns the server's tasks into calls of crypto/secagg.h's client object and its
 * answers into the messages of fedlung.proto. client/task.c sends them and records them in the
 * outbox. Not a network layer and not the protocol's logic. */
#ifndef FL_TASK_SECAGG_H
#define FL_TASK_SECAGG_H

#include <stddef.h>
#include <stdint.h>

#include "crypto/cert_sign.h"
#include "crypto/secagg.h"
#include "fed/plan.h"
#include "proto/rpc.h"

/* The round's state at this site; zero it before first use. The messages it fills point into
 * it and stay valid until the next call or fl_sa_site_reset. */
typedef struct {
    fl_secagg_client *c; /* NULL outside a round */
    uint64_t round;
    uint32_t index, n, t;
    size_t dim;
    double scale;
    uint64_t noise_num, noise_den; /* DP-FedAvg: the discrete Gaussian's variance; num 0: none */
    uint32_t min_survivors; /* DP-FedAvg: n - k, the sites whose noise the sum must carry */
    const fl_cert_signer *signer; /* borrowed: the TLS client key and certificate sign adverts */
    const char *ca;               /* borrowed: the consortium CA's certificate file (PEM) */
    /* while U1 is checked: each peer's certificate as the server relayed it (views into the
     * SHARE task), and the first refusal: the peer and why */
    const ProtobufCBinaryData *cert[FL_SECAGG_MAX_CLIENTS + 1];
    uint32_t refused_index;
    char refused_id[FL_SECAGG_ID_MAX + 1];
    char refused_why[FL_ERR_LEN];
    /* message storage */
    fl_secagg_advert advert;
    fl_secagg_share_ct *cts;
    Fedlung__V1__SecAggShare *sh, **shp;
    fl_secagg_unmask_reply *reply;
    ProtobufCBinaryData *bin; /* b_share then sk_share views */
} fl_sa_site;

/* Wipes and frees the round's secrets and messages; the struct can be used again. */
void fl_sa_site_reset(fl_sa_site *s);

/* ADVERTISE: checks the task's parameters against the approved plan (secagg on, cipher, the
 * threshold at least the plan's, the fixed-point scale of its clip norm) and that signer's
 * certificate names id (the CN the server saw), makes the round's keys for site
 * t->secagg->index and fills *out: the advert signed by signer, with its certificate. ca (the
 * CA certificate file the peers' certificates must chain to) and signer are kept for the round
 * and must outlive it. */
fl_status fl_sa_site_advertise(fl_sa_site *s, const fl_plan_privacy *pv, const char *study,
                               const char *id, const fl_cert_signer *signer, const char *ca,
                               const Fedlung__V1__Task *t, Fedlung__V1__SecAggAdvert *out,
                               fl_err *err);
/* SHARE: checks the advert list U1 and fills *out with this site's sealed shares for each peer.
 * Each peer's advert must carry a certificate of the consortium CA (fl_cert_verify: clientAuth,
 * CN = its client_id, valid now) whose key signed it; the first that does not is refused
 * (FL_EFORMAT, "round R: secure aggregation: refused the key advert of ID (site V): WHY; ...")
 * and the site's part in the round ends (its keys are wiped). */
fl_status fl_sa_site_share(fl_sa_site *s, const char *study, const Fedlung__V1__Task *t,
                           Fedlung__V1__SecAggShares *out, fl_err *err);
/* TRAIN of a secagg round, before the upload: opens the shares addressed to this site. */
fl_status fl_sa_site_receive(fl_sa_site *s, const Fedlung__V1__Task *t, fl_err *err);
/* Encodes vec[0..n) (clipped to fl_plan_sa_clip) as fixed point, adds DP-FedAvg's discrete
 * Gaussian when the plan has it (crypto/dgauss.h, from the CSPRNG), and masks it in place, chunk
 * by chunk: on return vec holds n ENCODING_FIXED32 masked words. n must be the round's dim. */
fl_status fl_sa_site_mask(fl_sa_site *s, float *vec, size_t n, fl_err *err);
/* UNMASK: answers the task's request into *out, then the round's secrets are gone. Under
 * DP-FedAvg a request naming fewer survivors than the plan's dp_clients - dp_dropouts is refused
 * (FL_EINVAL, no answer): their sum would carry less noise than the accountant counts. */
fl_status fl_sa_site_unmask(fl_sa_site *s, const char *study, const Fedlung__V1__Task *t,
                            Fedlung__V1__SecAggUnmaskReply *out, fl_err *err);

/* Clips vec[0..n) to L2 norm C in place (scaled by C / norm when longer); returns the norm
 * before clipping. */
double fl_sa_clip(float *vec, size_t n, double C);

#endif
