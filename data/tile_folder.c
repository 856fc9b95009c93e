/* tile_folder.c - a folder of ready-cut PNG / JPEG tiles as one n x tile x tile x 3 RGB array,
 * in file-name order. Decoding only: no resizing, no colour management, no recursion. */
#include "slides.h"

#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdio.h> /* before jpeglib.h, which needs FILE and size_t */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jpeglib.h>
#include <png.h>

/* Whether name ends in .png, .jpg or .jpeg (any case); sets *png. */
static int is_tile_name(const char *name, int *png) {
    const char *dot = strrchr(name, '.');
    if (!dot || name[0] == '.') return 0;
    *png = strcasecmp(dot, ".png") == 0;
    return *png || strcasecmp(dot, ".jpg") == 0 || strcasecmp(dot, ".jpeg") == 0;
}

static int by_name(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static fl_status wrong_size(const char *path, long w, long h, int tile, fl_err *err) {
    return fl_fail(err, FL_ESHAPE, "%s: %ldx%ld px, expected %dx%d", path, w, h, tile, tile);
}

/* Decodes a PNG of exactly tile x tile into out (RGB). Grey, palette and 16-bit are converted
 * by libpng; alpha is composited onto white (as transparent slide pixels are). */
static fl_status read_png(const char *path, int tile, uint8_t *out, uint8_t *rgba, fl_err *err) {
    png_image im;
    memset(&im, 0, sizeof im);
    im.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_file(&im, path))
        return fl_fail(err, FL_EFORMAT, "%s: not a readable PNG: %s", path, im.message);
    if (im.width != (png_uint_32)tile || im.height != (png_uint_32)tile) {
        png_image_free(&im);
        return wrong_size(path, (long)im.width, (long)im.height, tile, err);
    }
    im.format = PNG_FORMAT_RGBA;
    if (!png_image_finish_read(&im, NULL, rgba, 0, NULL))
        return fl_fail(err, FL_EFORMAT, "%s: corrupt PNG: %s", path, im.message);
    for (size_t i = 0; i < (size_t)tile * tile; i++) {
        unsigned a = rgba[i * 4 + 3];
        for (int k = 0; k < 3; k++)
            out[i * 3 + k] = (uint8_t)((rgba[i * 4 + k] * a + 255 * (255 - a) + 127) / 255);
    }
    return FL_OK;
}

typedef struct {
    struct jpeg_error_mgr mgr;
    jmp_buf jump;
    char msg[JMSG_LENGTH_MAX];
} jpeg_trap;

/* libjpeg's fatal errors come here instead of exit(): keep the text, jump back. */
static void jpeg_fatal(j_common_ptr c) {
    jpeg_trap *t = (jpeg_trap *)c->err;
    t->mgr.format_message(c, t->msg);
    longjmp(t->jump, 1);
}

/* Warnings (level -1: corrupt or truncated data, which libjpeg pads with grey) are fatal too: a
 * half-grey tile would pass silently into training. Trace messages are dropped. */
static void jpeg_message(j_common_ptr c, int level) {
    if (level < 0) jpeg_fatal(c);
}

/* Decodes a JPEG of exactly tile x tile into out (RGB); greyscale is expanded by libjpeg. */
static fl_status read_jpeg(const char *path, int tile, uint8_t *out, fl_err *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return fl_fail(err, FL_EIO, "%s: %s", path, strerror(errno));
    struct jpeg_decompress_struct d;
    jpeg_trap trap;
    /* volatile: read after a longjmp back into this frame */
    volatile fl_status s = FL_OK;
    d.err = jpeg_std_error(&trap.mgr);
    trap.mgr.error_exit = jpeg_fatal;
    trap.mgr.emit_message = jpeg_message;
    jpeg_create_decompress(&d);
    if (setjmp(trap.jump)) {
        s = fl_fail(err, FL_EFORMAT, "%s: not a readable JPEG: %s", path, trap.msg);
        goto done;
    }
    jpeg_stdio_src(&d, f);
    jpeg_read_header(&d, TRUE);
    if (d.image_width != (JDIMENSION)tile || d.image_height != (JDIMENSION)tile) {
        s = wrong_size(path, (long)d.image_width, (long)d.image_height, tile, err);
        goto done;
    }
    d.out_color_space = JCS_RGB;
    jpeg_start_decompress(&d);
    while (d.output_scanline < d.output_height) {
        JSAMPROW row = out + (size_t)d.output_scanline * tile * 3;
        jpeg_read_scanlines(&d, &row, 1);
    }
    jpeg_finish_decompress(&d);
done:
    jpeg_destroy_decompress(&d);
    fclose(f);
    return s;
}

fl_status fl_tile_folder_read(const char *dir, int tile, uint8_t **pixels, int *n, fl_err *err) {
    *pixels = NULL;
    *n = 0;
    if (tile < 1 || tile > 8192)
        return fl_fail(err, FL_EINVAL, "%s: tile size %d is not in 1..8192", dir, tile);
    DIR *d = opendir(dir);
    if (!d)
        return fl_fail(err, errno == ENOENT ? FL_ENOTFOUND : FL_EIO, "%s: %s", dir,
                       strerror(errno));
    char **names = NULL;
    size_t count = 0, cap = 0;
    uint8_t *px = NULL, *rgba = NULL;
    fl_status s = FL_OK;
    struct dirent *e;
    int png;
    while ((e = readdir(d))) {
        if (e->d_type == DT_DIR || !is_tile_name(e->d_name, &png)) continue;
        if (count == cap) {
            cap = cap ? 2 * cap : 64;
            char **grown = realloc(names, cap * sizeof *names);
            if (!grown) goto oom;
            names = grown;
        }
        if (!(names[count] = strdup(e->d_name))) goto oom;
        count++;
    }
    if (count) qsort(names, count, sizeof *names, by_name);
    size_t per = (size_t)tile * tile * 3;
    px = malloc(count * per + 1);
    rgba = malloc((size_t)tile * tile * 4);
    if (!px || !rgba) goto oom;
    for (size_t i = 0; i < count; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        is_tile_name(names[i], &png);
        s = png ? read_png(path, tile, px + i * per, rgba, err)
                : read_jpeg(path, tile, px + i * per, err);
        if (s) goto done;
    }
    *pixels = px;
    *n = (int)count;
    px = NULL;
    goto done;
oom:
    s = fl_fail(err, FL_ENOMEM, "%s: no memory for %zu tiles of %d px", dir, count, tile);
done:
    closedir(d);
    for (size_t i = 0; i < count; i++) free(names[i]);
    free(names);
    free(px);
    free(rgba);
    return s;
}
