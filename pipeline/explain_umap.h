/* explain_umap.h - the work of `fedlung explain umap`: patient embeddings from a fusion model
 * (MMLM's "fused" hidden vector) and from an image model (RNet's mean tile embedding), their
 * UMAP, and the scatter plots and CSV files; or the UMAP of a plain .npy matrix. Not UMAP
 * itself (eval/umap.h) and not argument parsing (cli/explain_umap_cmd.c). */
#ifndef FL_EXPLAIN_UMAP_H
#define FL_EXPLAIN_UMAP_H

#include "../common/status.h"
#include "../data/cohort.h"
#include "../eval/umap.h"

typedef struct {
    const char *cohort;
    const char *model;       /* a fusion (MMLM) or an image (RNet) model file */
    const char *image_model; /* the RNet for image embeddings; NULL: the model itself when it is
                              * an RNet, else the path recorded in the fusion model, if any */
    const char *outdir;      /* created if missing */
    int split;               /* -1: every patient, else an fl_split */
    int dump;                /* also write the embeddings UMAP was given (see below) */
    fl_umap_config umap;     /* threads and quiet are taken from here too */
} fl_umap_explain_config;

/* For a fusion model: outdir/umap_fused.csv ("patient_id,label,site,x,y", label and site by
 * name) and outdir/umap_fused_class.png and umap_fused_site.png (the points coloured by class
 * and by site); for the image embeddings, when an image model is available, the same as
 * umap_image.*, over the patients that have tiles. With dump, also outdir/umap_fused_embeddings.npy
 * and umap_image_embeddings.npy (float32, one row per CSV row). Progress on stderr unless quiet.
 * Returns FL_OK or the failing step's status (the sentence names the file); files already written
 * stay, none is left partial. */
fl_status fl_explain_umap(const fl_umap_explain_config *c, fl_err *err);

/* The UMAP of the rows of input (a 2-d .npy of any numeric dtype) into outdir/umap.csv
 * ("row,x,y" with 9 significant digits, or one column per component past two). Returns FL_OK,
 * FL_ESHAPE (not 2-d), or what reading, UMAP or writing returned. */
fl_status fl_explain_umap_npy(const char *input, const char *outdir, const fl_umap_config *u,
                              fl_err *err);

#endif
