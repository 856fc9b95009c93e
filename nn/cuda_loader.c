/* cuda_loader.c - fl_backend_cuda_new: finds the CUDA module libfedlung_cuda.so at run time,
 * dlopen()s it and calls its one entry point. Compiled into every fedlung, with or without CUDA,
 * so a binary built with CUDA still starts where there is no GPU, driver or CUDA library.
 * Not the backend itself (nn/cuda/), nor the choice between backends (backend_select.c). */
#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"

/* Must match nn/cuda/cuda_impl.h (C++ only, so not included here). */
#define FL_CUDA_MODULE_ENTRY "fl_cuda_module_create"
#define FL_CUDA_MODULE_NAME "libfedlung_cuda.so"

typedef fl_backend *(*module_create_fn)(const fl_cuda_options *o, fl_err *err);

/* The module stays loaded for the life of the process once found: every CUDA backend's code and
 * op table live in it, CUDA's runtime and cuDNN do not support being unloaded cleanly, and a
 * later fl_backend_cuda_new reuses it. Guarded by a mutex; a failed load is retried next time. */
static pthread_mutex_t module_lock = PTHREAD_MUTEX_INITIALIZER;
static void *module;
static module_create_fn module_create;

/* Replaces newlines (dlerror and driver messages may carry them) so err is one line. */
static void one_line(fl_err *err) {
    if (!err) return;
    for (char *p = err->msg; *p; p++)
        if (*p == '\n' || *p == '\r') *p = ' ';
}

/* dlerror() as text, never NULL. */
static const char *dl_why(void) {
    const char *e = dlerror();
    return e ? e : "unknown dlopen error";
}

/* The folder of the running executable (no trailing '/') into dir; 0, or -1 if unknown. */
static int exe_dir(char *dir, size_t cap) {
    ssize_t n = readlink("/proc/self/exe", dir, cap - 1);
    if (n <= 0 || (size_t)n >= cap - 1) return -1;
    dir[n] = '\0';
    char *slash = strrchr(dir, '/');
    if (!slash) return -1;
    *slash = '\0';
    return 0;
}

/* Loads the module (once) and finds its entry point. Called with module_lock held. */
static fl_status load_module(const char *who, fl_err *err) {
    if (module_create) return FL_OK;
    char path[PATH_MAX + 64];
    const char *env = getenv("FEDLUNG_CUDA_MODULE");
    void *h = NULL;
    (void)dlerror();
    if (env && *env) {
        h = dlopen(env, RTLD_NOW | RTLD_LOCAL);
        if (!h)
            return fl_fail(err, FL_EUNSUPPORTED,
                           "%s: cannot load %s (named by FEDLUNG_CUDA_MODULE): %s", who, env,
                           dl_why());
        snprintf(path, sizeof path, "%s", env);
    } else {
        char dir[PATH_MAX];
        if (exe_dir(dir, sizeof dir) == 0) {
            snprintf(path, sizeof path, "%s/%s", dir, FL_CUDA_MODULE_NAME);
            if (access(path, F_OK) == 0) {
                h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
                /* The module is there but does not load: name what it lacks (a CUDA library). */
                if (!h)
                    return fl_fail(err, FL_EUNSUPPORTED, "%s: cannot load %s: %s", who, path,
                                   dl_why());
            }
        }
        if (!h) { /* not next to the binary: the loader's default search (LD_LIBRARY_PATH, ...) */
            snprintf(path, sizeof path, "%s", FL_CUDA_MODULE_NAME);
            h = dlopen(FL_CUDA_MODULE_NAME, RTLD_NOW | RTLD_LOCAL);
            if (!h) {
                const char *why = dl_why();
                /* glibc names the file it could not find first: the module itself, or a
                 * library the module needs (found module, missing CUDA library). */
                if (strncmp(why, FL_CUDA_MODULE_NAME ":", strlen(FL_CUDA_MODULE_NAME ":")) == 0)
                    return fl_fail(err, FL_EUNSUPPORTED,
                                   "%s: this fedlung has no CUDA backend (%s not found next to it; "
                                   "it is built when nvcc is found)",
                                   who, FL_CUDA_MODULE_NAME);
                return fl_fail(err, FL_EUNSUPPORTED, "%s: cannot load %s: %s", who,
                               FL_CUDA_MODULE_NAME, why);
            }
        }
    }
    (void)dlerror();
    void *sym = dlsym(h, FL_CUDA_MODULE_ENTRY);
    if (!sym) {
        fl_fail(err, FL_EUNSUPPORTED, "%s: %s is not a fedlung CUDA module (no %s: %s)", who, path,
                FL_CUDA_MODULE_ENTRY, dl_why());
        dlclose(h);
        return FL_EUNSUPPORTED;
    }
    module = h;
    memcpy(&module_create, &sym, sizeof module_create); /* object to function pointer (POSIX) */
    return FL_OK;
}

fl_backend *fl_backend_cuda_new(const fl_cuda_options *o, fl_err *err) {
    char who[32];
    if (o && o->device != 0)
        snprintf(who, sizeof who, "--device cuda:%d", o->device);
    else
        snprintf(who, sizeof who, "--device cuda");
    pthread_mutex_lock(&module_lock);
    fl_status s = load_module(who, err);
    module_create_fn create = module_create;
    pthread_mutex_unlock(&module_lock);
    if (s != FL_OK) {
        one_line(err);
        return NULL;
    }
    fl_err inner = {{0}};
    fl_backend *be = create(o, &inner);
    if (!be) {
        fl_fail(err, FL_EBACKEND, "%s: %s", who,
                inner.msg[0] ? inner.msg : "the CUDA module could not start a backend");
        one_line(err);
    }
    return be;
}
