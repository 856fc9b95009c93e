/* cohort_cmds.h - the `fedlung cohort` subcommands that live outside the dispatcher
 * (cli/cohort_cmd.c): info, import-table and split (cli/cohort_table_cmd.c). Each takes the
 * subcommand's own arguments, argv[0] being its name, and returns an exit code of cli.h. */
#ifndef FL_COHORT_CMDS_H
#define FL_COHORT_CMDS_H

/* `fedlung cohort info FILE [--json]`: classes by site, splits, modalities, tiles, provenance. */
int fl_cmd_cohort_info(int argc, char **argv);
/* `fedlung cohort import-table --csv FILE --id COL --label COL --modality M --out FILE.h5 ...`. */
int fl_cmd_cohort_import_table(int argc, char **argv);
/* `fedlung cohort split FILE --partition site|iid|dirichlet:A [--parts N] --out DIR [--seed S]`. */
int fl_cmd_cohort_split(int argc, char **argv);
/* `fedlung cohort import --sample-sheet SHEET.tsv [--rna DIR] [--methylation DIR] ... --out FILE.h5`
 * (cli/cohort_import_cmd.c): a cohort from GDC downloads. */
int fl_cmd_cohort_import(int argc, char **argv);

#endif
