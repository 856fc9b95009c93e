/* backend_select.c - the backend a --device name asks for ("cpu", "cuda", "cuda:N") and the
 * --precision names. Not a backend: it only calls fl_backend_cpu_new or fl_backend_cuda_new.
 * An engine-only build (FL_ENGINE_ONLY: no oneDNN, no OpenBLAS) has no CPU backend. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"

static const char *precision_name(fl_precision p) {
    switch (p) {
    case FL_PREC_FP32:
        return "fp32";
    case FL_PREC_TF32:
        return "tf32";
    case FL_PREC_BF16:
        return "bf16";
    }
    return "unknown";
}

fl_status fl_precision_parse(const char *s, fl_precision *out, fl_err *err) {
    static const fl_precision all[] = {FL_PREC_FP32, FL_PREC_TF32, FL_PREC_BF16};
    for (size_t i = 0; s && i < sizeof all / sizeof all[0]; i++) {
        if (strcmp(s, precision_name(all[i])) == 0) {
            *out = all[i];
            return FL_OK;
        }
    }
    return fl_fail(err, FL_EINVAL, "--precision %s: not one of fp32, tf32, bf16", s ? s : "(none)");
}

/* "cuda:N" -> N (a non-negative decimal, nothing else); -1 if malformed. */
static int parse_ordinal(const char *s) {
    if (*s < '0' || *s > '9') return -1;
    errno = 0;
    char *end;
    long v = strtol(s, &end, 10);
    if (errno || *end || v > 1024) return -1;
    return (int)v;
}

fl_backend *fl_backend_new(const char *device, int threads, fl_precision precision, fl_err *err) {
    if (!device || strcmp(device, "cpu") == 0) {
        if (precision != FL_PREC_FP32) {
            fl_fail(err, FL_EINVAL,
                    "--device cpu: the CPU backend computes in fp32 only (--precision %s is for "
                    "--device cuda)",
                    precision_name(precision));
            return NULL;
        }
#ifdef FL_ENGINE_ONLY
        (void)threads;
        fl_fail(err, FL_EUNSUPPORTED,
                "--device cpu: this is an engine-only build, which has no CPU backend (use "
                "--device cuda)");
        return NULL;
#else
        return fl_backend_cpu_new(threads, err);
#endif
    }
    if (strcmp(device, "cuda") == 0 || strncmp(device, "cuda:", 5) == 0) {
        fl_cuda_options o = {.device = 0, .precision = precision};
        if (device[4] == ':' && (o.device = parse_ordinal(device + 5)) < 0) {
            fl_fail(err, FL_EINVAL,
                    "--device %s: the device ordinal must be a number, as in cuda:0", device);
            return NULL;
        }
        return fl_backend_cuda_new(&o, err);
    }
    fl_fail(err, FL_EINVAL, "--device %s: unknown device (cpu, cuda or cuda:N)", device);
    return NULL;
}
