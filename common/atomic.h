/* atomic.h - replacing a file so that a reader sees the old file or the whole new one, never a
 * part: a temporary "<path>.tmp.XXXXXX" reserved beside the target with O_EXCL, written, fsynced,
 * renamed over the target, and the folder fsynced. Two forms: by name (for writers such as HDF5
 * that open the file themselves) and over a FILE*. Not a lock: of two writers, the last wins. */
#ifndef FL_ATOMIC_H
#define FL_ATOMIC_H

#include <stdio.h>

#include "status.h"

/* ---- by name ---- */

/* Creates an empty "<path>.tmp.XXXXXX" with O_EXCL (mode 0666 less the umask, like any new
 * file) and sets *tmp to its malloc'd name (the caller frees it). With fd non-NULL, *fd is the
 * open descriptor (O_WRONLY, close-on-exec) and the caller closes it; otherwise it is closed.
 * Returns FL_OK, FL_EINVAL (an empty path), FL_ENOMEM, or FL_EIO (the folder is missing or not
 * writable; the sentence names path). On failure *tmp is NULL and nothing was created. */
fl_status fl_atomic_tmp_reserve(const char *path, char **tmp, int *fd, fl_err *err);

/* Commits a finished, closed temporary file: fsyncs it, renames it over path and fsyncs the
 * folder (a failure of that last step loses nothing and is ignored). Returns FL_OK or FL_EIO
 * (the sentence names path); on failure tmp is removed. tmp's name is not freed. */
fl_status fl_atomic_tmp_commit(const char *tmp, const char *path, fl_err *err);

/* Removes the temporary file tmp (NULL is a no-op); its name is not freed. */
void fl_atomic_tmp_remove(const char *tmp);

/* ---- over a FILE* ---- */

/* A temporary file open for writing between fl_atomic_open and fl_atomic_commit. */
typedef struct {
    FILE *f;    /* write here between open and commit */
    char *path; /* owned copies */
    char *tmp;
} fl_atomic_file;

/* Reserves the temporary file and opens it as af->f. Returns what fl_atomic_tmp_reserve
 * returns, or FL_EIO if no stream could be made; on failure af holds nothing. */
fl_status fl_atomic_open(fl_atomic_file *af, const char *path, fl_err *err);
/* Flushes, fsyncs and closes the temporary file and renames it over path. Returns FL_OK or
 * FL_EIO (a write error since open, e.g. a full disk, or the rename failed; the temporary file
 * is removed). af is released either way. */
fl_status fl_atomic_commit(fl_atomic_file *af, fl_err *err);
/* Closes and removes the temporary file and releases af; a released or zeroed af is fine. */
void fl_atomic_abort(fl_atomic_file *af);

#endif
