/* rpc_impl.h - what proto/rpc*.c share and nothing outside proto/ uses. */
#ifndef FL_RPC_IMPL_H
#define FL_RPC_IMPL_H

#include "rpc.h"

/* Checks a chunk's payload: len <= FL_RPC_CHUNK_MAX and offset + len <= FL_RPC_MAX_MODEL.
 * Returns FL_OK or FL_EFORMAT naming `what` ("DataChunk"). */
fl_status fl_rpc__check_chunk(const char *what, uint64_t offset, size_t len, fl_err *err);

#endif
