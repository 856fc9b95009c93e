/* harness.c - failure counting and array comparison for the tests, and their scratch folder and
 * file helpers. */
#include "harness.h"

#include <dirent.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

int fl_test_failures;
int fl_test_checks;

void fl_test_fail_at(const char *file, int line, const char *fmt, ...) {
    va_list ap;
    fl_test_failures++;
    fprintf(stderr, "FAIL %s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

int fl_test_close(double a, double b, double rtol, double atol) {
    if (isnan(a) || isnan(b)) return 0;
    return fabs(a - b) <= atol + rtol * fmax(fabs(a), fabs(b));
}

int fl_test_arrays_close(const char *what, const float *a, const float *b, size_t n, double rtol,
                         double floor_abs, const char *file, int line) {
    double worst = 0;
    size_t at = 0;
    fl_test_checks++;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]) / fmax(fabs((double)b[i]), floor_abs);
        if (isnan(d) || d > worst) {
            worst = isnan(d) ? INFINITY : d;
            at = i;
        }
    }
    if (worst > rtol) {
        fl_test_fail_at(file, line, "%s: max rel err %.3g > %.3g at [%zu]: %.9g vs %.9g", what,
                        worst, rtol, at, (double)a[at], (double)b[at]);
        return 0;
    }
    return 1;
}

int fl_test_summary(const char *name) {
    printf("%s: %d checks, %d failed\n", name, fl_test_checks, fl_test_failures);
    return fl_test_failures ? 1 : 0;
}

/* ------------------------------------------------------------------------------------------ */
/* scratch folder                                                                              */

char fl_test_dir[256];

const char *fl_test_mkdtemp(const char *prefix) {
    const char *tmp = getenv("TMPDIR");
    snprintf(fl_test_dir, sizeof fl_test_dir, "%s/%sXXXXXX",
             tmp && *tmp && strlen(tmp) < 128 ? tmp : "/tmp", prefix);
    if (!mkdtemp(fl_test_dir)) {
        perror(fl_test_dir);
        fl_test_dir[0] = '\0';
        return NULL;
    }
    return fl_test_dir;
}

const char *fl_test_path(const char *name) {
    static char buf[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%.200s", fl_test_dir, name);
    return buf[k];
}

int fl_test_rmtree(const char *path) {
    struct stat st;
    int r = 0;
    if (lstat(path, &st) != 0) {
        perror(path);
        return -1;
    }
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        if (!d) {
            perror(path);
            return -1;
        }
        for (struct dirent *e; (e = readdir(d));) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
            char child[1024];
            snprintf(child, sizeof child, "%s/%s", path, e->d_name);
            if (fl_test_rmtree(child) != 0) r = -1; /* go on: remove what can be removed */
        }
        closedir(d);
    }
    if (remove(path) != 0) {
        perror(path);
        r = -1;
    }
    return r;
}

/* Entries of folder dir whose name contains part ("." and ".." aside). */
static int count_entries(const char *dir, const char *part) {
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            n += strstr(e->d_name, part) != NULL;
    if (d) closedir(d);
    return n;
}

int fl_test_count_tmp(void) {
    return count_entries(fl_test_dir, ".tmp.");
}

/* ------------------------------------------------------------------------------------------ */
/* files                                                                                       */

void fl_test_write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, n, f) != n) fl_test_fail_at(__FILE__, __LINE__, "writing %s", path);
    if (f && fclose(f) != 0) fl_test_fail_at(__FILE__, __LINE__, "closing %s", path);
}

char *fl_test_read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (s && fread(s, 1, (size_t)n, f) != (size_t)n) {
        free(s);
        s = NULL;
    }
    fclose(f);
    if (s) s[n] = '\0';
    if (s && len) *len = (size_t)n;
    return s;
}

int fl_test_file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}
