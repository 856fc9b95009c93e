/* csv.h - reads a delimited text table (CSV or TSV) record by record, with the line each record
 * starts on, so callers can say "table.csv:12: ...". The whole file is held in memory and can be
 * rewound for a second pass. Not a writer, and not a type guesser: fields are strings.
 *
 * Dialect: the delimiter is a tab if the header line holds one, else a comma (or forced). A field
 * that begins with a double quote is quoted as in RFC 4180 (delimiters and line breaks inside,
 * "" for a quote) - in TSV too, since R's write.table quotes TSV fields. CRLF line ends, a UTF-8
 * byte order mark and blank rows at the end of the file are accepted; every record must have the
 * header's number of fields. */
#ifndef FL_CSV_H
#define FL_CSV_H

#include "../common/status.h"

typedef struct fl_csv fl_csv;

/* One record: n NUL-terminated fields (quotes removed), valid until the next fl_csv_next,
 * fl_csv_rewind or fl_csv_free on its reader. */
typedef struct {
    int n;
    char **field;
    long line; /* 1-based line of the file where the record starts */
} fl_csv_record;

/* Reads the file at path and its header (the first line). delim is ',' or '\t' to force one,
 * or 0 to detect it. Fails (FL_EIO, FL_ENOTFOUND, FL_EFORMAT) with a sentence naming the file
 * if it cannot be read, is empty, holds a NUL byte anywhere ("t.csv:7: a NUL byte; ..."), or
 * starts with an empty line.
 * On success *out is a reader the caller frees with fl_csv_free. */
fl_status fl_csv_open(fl_csv **out, const char *path, char delim, fl_err *err);

/* The header record (its line is 1, or where it starts after a BOM; fields as in records). */
const fl_csv_record *fl_csv_header(const fl_csv *r);
char fl_csv_delim(const fl_csv *r); /* ',' or '\t' */
const char *fl_csv_path(const fl_csv *r);

/* Reads the next record into *rec. Returns 1 for a record, 0 at the end of the table, or a
 * negative fl_status with "FILE:LINE: what" in err: a record whose field count differs from the
 * header's ("t.csv:12: 5 fields, the header has 7"), an unclosed quote, text after a closing
 * quote, or an empty row followed by more data. Trailing empty rows (nothing but
 * blanks and delimiters) are skipped silently. */
int fl_csv_next(fl_csv *r, fl_csv_record *rec, fl_err *err);

/* Returns to the first record after the header. */
void fl_csv_rewind(fl_csv *r);

void fl_csv_free(fl_csv *r); /* NULL-safe */

#endif
