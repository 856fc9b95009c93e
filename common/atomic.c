/* atomic.c - the temporary-file-and-rename writer of atomic.h: one way to reserve the name, one
 * way to make the result durable. POSIX only; nothing here knows what the file holds. */
#include "atomic.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

fl_status fl_atomic_tmp_reserve(const char *path, char **tmp, int *fd, fl_err *err) {
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    *tmp = NULL;
    if (fd) *fd = -1;
    if (!path || !*path) return fl_fail(err, FL_EINVAL, "atomic write: empty path");
    size_t len = strlen(path) + 12; /* ".tmp." + 6 + NUL */
    char *name = malloc(len);
    if (!name) return fl_fail(err, FL_ENOMEM, "%s: out of memory", path);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t x = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ ((uint64_t)getpid() << 40) ^
                 (uint64_t)(uintptr_t)name;
    int d = -1, e = EEXIST;
    for (int attempt = 0; attempt < 100 && d < 0 && e == EEXIST; attempt++) {
        char suf[7];
        for (int i = 0; i < 6; i++) {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            suf[i] = abc[(x >> 33) % (sizeof abc - 1)];
        }
        suf[6] = '\0';
        snprintf(name, len, "%s.tmp.%s", path, suf);
        d = open(name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (d < 0) e = errno;
    }
    if (d < 0) { /* nothing was created: there is no stranger's file to remove */
        free(name);
        return fl_fail(err, FL_EIO, "%s: cannot create a temporary file next to it: %s", path,
                       strerror(e));
    }
    if (fd)
        *fd = d;
    else
        close(d);
    *tmp = name;
    return FL_OK;
}

void fl_atomic_tmp_remove(const char *tmp) {
    if (tmp) unlink(tmp);
}

/* fsyncs the folder holding path, so that a rename into it survives a crash. */
static void sync_folder(const char *path) {
    char *dir = strdup(path);
    if (!dir) return; /* failing here loses nothing already written */
    char *slash = strrchr(dir, '/');
    if (slash == dir)
        slash[1] = '\0'; /* "/name" lives in "/" */
    else if (slash)
        *slash = '\0';
    int fd = open(slash ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
    free(dir);
}

/* The last step of both commits: e is the first error so far (0 for none, the file then being
 * synced and closed). Renames tmp over path, or removes tmp and fails. */
static fl_status replace(const char *tmp, const char *path, int e, fl_err *err) {
    if (!e && rename(tmp, path) != 0) e = errno;
    if (e) {
        unlink(tmp);
        return fl_fail(err, FL_EIO, "%s: cannot write: %s", path, strerror(e));
    }
    sync_folder(path);
    return FL_OK;
}

fl_status fl_atomic_tmp_commit(const char *tmp, const char *path, fl_err *err) {
    int fd = open(tmp, O_RDONLY | O_CLOEXEC), e = 0;
    if (fd < 0 || fsync(fd) != 0) e = errno;
    if (fd >= 0) close(fd);
    return replace(tmp, path, e, err);
}

/* ------------------------------------------------------------------------------------------ */
/* over a FILE*                                                                                */

fl_status fl_atomic_open(fl_atomic_file *af, const char *path, fl_err *err) {
    memset(af, 0, sizeof *af);
    int fd;
    fl_status s = fl_atomic_tmp_reserve(path, &af->tmp, &fd, err);
    if (s != FL_OK) return s;
    af->path = strdup(path);
    if (!af->path) {
        close(fd);
        fl_atomic_abort(af);
        return fl_fail(err, FL_ENOMEM, "%s: out of memory", path);
    }
    af->f = fdopen(fd, "wb");
    if (!af->f) {
        int e = errno;
        close(fd);
        fl_atomic_abort(af);
        return fl_fail(err, FL_EIO, "%s: cannot open a stream: %s", path, strerror(e));
    }
    return FL_OK;
}

fl_status fl_atomic_commit(fl_atomic_file *af, fl_err *err) {
    int e = 0;
    if (ferror(af->f)) e = EIO; /* a failed fwrite/fprintf since open; errno is long gone */
    if (fflush(af->f) != 0 && !e) e = errno;
    if (!e && fsync(fileno(af->f)) != 0) e = errno;
    if (fclose(af->f) != 0 && !e) e = errno;
    af->f = NULL;
    fl_status s = replace(af->tmp, af->path, e, err);
    free(af->tmp); /* renamed or removed: nothing left to remove */
    af->tmp = NULL;
    fl_atomic_abort(af);
    return s;
}

void fl_atomic_abort(fl_atomic_file *af) {
    if (!af) return;
    if (af->f) fclose(af->f);
    fl_atomic_tmp_remove(af->tmp);
    free(af->tmp);
    free(af->path);
    memset(af, 0, sizeof *af);
}
