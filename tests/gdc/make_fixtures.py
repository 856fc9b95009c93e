#!/usr/bin/python3
"""make_fixtures.py OUTDIR - writes a tiny GDC download for `fedlung cohort import` tests.

OUTDIR/good: a sample sheet, STAR - Counts RNA files (GDC layout <uuid>/<name>, one file
directly in the folder), SeSAMe beta files (NAs, one file in another probe order), a legacy
clinical.tsv / exposure.tsv with rows repeated per treatment, the same clinical data in the new
portal's dotted format (new/), and PNG tile folders (tiles/). 8 samples of 6 cases at 3 tissue
source sites: 3 LUAD and 3 LUSC tumours, 2 solid tissue normals paired with tumour cases.

OUTDIR/bad/<name>: a whole tree like good/ with one defect each, plus `expect`: the "FILE:LINE:"
the error must name. Standard library only; the same output every run. Not a model of real
expression values.
"""
import hashlib
import os
import random
import shutil
import struct
import sys
import zlib

# (sample barcode, project); the case is the first 12 characters.
SAMPLES = [
    ("TCGA-05-4244-01A", "TCGA-LUAD"),
    ("TCGA-05-4244-11A", "TCGA-LUAD"),
    ("TCGA-05-4249-01A", "TCGA-LUAD"),
    ("TCGA-44-2655-01A", "TCGA-LUAD"),
    ("TCGA-18-3406-01A", "TCGA-LUSC"),
    ("TCGA-18-3406-11A", "TCGA-LUSC"),
    ("TCGA-18-3407-01A", "TCGA-LUSC"),
    ("TCGA-44-2656-01A", "TCGA-LUSC"),
]
NO_METHYLATION = "TCGA-18-3406-11A"  # this sample has RNA only

# Marker genes (ids from shared/reference/gdc-formats.md; version suffixes illustrative).
MARKERS = [
    ("ENSG00000136352.13", "NKX2-1", "LUAD"), ("ENSG00000131400.8", "NAPSA", "LUAD"),
    ("ENSG00000168484.13", "SFTPC", "NORMAL"), ("ENSG00000168878.17", "SFTPB", "LUAD"),
    ("ENSG00000186081.12", "KRT5", "LUSC"), ("ENSG00000205420.11", "KRT6A", "LUSC"),
    ("ENSG00000073282.13", "TP63", "LUSC"), ("ENSG00000181449.4", "SOX2", "LUSC"),
    ("ENSG00000134757.6", "DSG3", "LUSC"), ("ENSG00000204305.14", "AGER", "NORMAL"),
    ("ENSG00000148773.14", "MKI67", "TUMOUR"), ("ENSG00000131747.15", "TOP2A", "TUMOUR"),
]
FILLER = [("ENSG%011d.%d" % (1000 + 37 * i, 1 + i % 9), "GENE%d" % i, None) for i in range(18)]
GENES = MARKERS + FILLER  # 30 genes
N_ROWS = [("N_unmapped", 8120268), ("N_multimapping", 4402480), ("N_noFeature", 1446120),
          ("N_ambiguous", 5551010)]
STAR_HEADER = ("gene_id\tgene_name\tgene_type\tunstranded\tstranded_first\tstranded_second\t"
               "tpm_unstranded\tfpkm_unstranded\tfpkm_uq_unstranded")
PROBES = ["cg%08d" % (29 + 79 * i) for i in range(50)]

# Clinical: case -> (age_at_index, age_at_diagnosis days, gender, stage, smoking, pack-years).
CLINICAL = {
    "TCGA-05-4244": ("70", "25567", "male", "Stage IV", "Current Smoker", "45"),
    "TCGA-05-4249": ("'--", "24106", "female", "Stage IB", "Lifelong Non-Smoker", "'--"),
    "TCGA-44-2655": ("61", "22280", "female", "Stage IIA",
                     "Current Reformed Smoker for > 15 yrs", "20"),
    "TCGA-18-3406": ("67", "24471", "male", "Stage IIIA",
                     "Current Reformed Smoker for < or = 15 yrs", "60"),
    "TCGA-18-3407": ("72", "26298", "male", "'--", "'--", "'--"),
    "TCGA-44-2656": ("58", "21184", "not reported", "Stage IA", "Current Smoker", "35"),
    "TCGA-05-9999": ("50", "18262", "male", "Stage II", "Current Smoker", "10"),  # no sample
}


def uid(*parts):
    """A deterministic UUID-shaped id."""
    h = hashlib.md5("/".join(parts).encode()).hexdigest()
    return "%s-%s-%s-%s-%s" % (h[:8], h[8:12], h[12:16], h[16:20], h[20:32])


def label(barcode, project):
    return "NORMAL" if barcode[13:15] == "11" else project[5:]


def tpm(barcode, project, group, rng):
    cls = label(barcode, project)
    base = rng.uniform(0.5, 6)
    if group == cls or (group == "TUMOUR" and cls != "NORMAL"):
        base += 80
    return base


def star_text(barcode, project, mutate=None):
    rng = random.Random(barcode)
    lines = ["# gene-model: GENCODE v36", STAR_HEADER]
    if mutate == "rna_header":
        lines[1] = lines[1].replace("gene_name", "name")
    for name, count in N_ROWS:
        lines.append("%s\t\t\t%d\t%d\t%d\t\t\t" % (name, count, count // 2, count // 2))
    for gid, gname, group in GENES:
        t = tpm(barcode, project, group, rng)
        counts = int(t * 37)
        lines.append("%s\t%s\tprotein_coding\t%d\t%d\t%d\t%.4f\t%.4f\t%.4f" %
                     (gid, gname, counts, counts // 2, counts - counts // 2, t, t * 0.38,
                      t * 0.61))
    if mutate == "gene_mismatch":
        lines[12] = lines[12].replace("ENSG", "ENSX", 1)
    text = "\n".join(lines) + "\n"
    if mutate == "truncated":
        text = text[:text.index("\n", len(text) // 2) + 12]
    return text


def betas_text(barcode, mutate=None):
    rng = random.Random("m" + barcode)
    index = [s for s, _ in SAMPLES].index(barcode)
    rows = []
    for j, probe in enumerate(PROBES):
        if j < 2 and index < 3:
            value = "NA"  # probes 0 and 1: NA in 3 of 7 samples -> dropped at 0.2
        elif 2 <= j < 6 and index == j:
            value = "NA"  # probes 2..5: NA in one sample -> kept
        else:
            value = "%.4f" % rng.uniform(0.02, 0.98)
        rows.append("%s\t%s" % (probe, value))
    if barcode == "TCGA-44-2655-01A":
        rows.reverse()  # same probes, another order
    if mutate == "probe_mismatch":
        rows[7] = rows[7].replace("cg", "ch.", 1)
    if mutate == "beta_range":
        rows[9] = rows[9].split("\t")[0] + "\t1.7000"
    return "\n".join(rows) + "\n"


def png(path, rgb, size=16):
    """A size x size RGB PNG of one colour with a diagonal stripe, from zlib and struct."""
    raw = b""
    for y in range(size):
        row = b"".join(bytes(rgb if (x + y) % 5 else (255 - rgb[0], 80, 200)) for x in range(size))
        raw += b"\x00" + row

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", size, size, 8, 2, 0,
                                                                   0, 0)) +
                chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", newline="\n") as f:
        f.write(text)


def clinical_rows(mutate):
    """Legacy clinical.tsv: one row per treatment (two per case)."""
    head = ["case_id", "case_submitter_id", "project_id", "age_at_index", "age_at_diagnosis",
            "gender", "vital_status", "days_to_death", "ajcc_pathologic_stage",
            "ajcc_pathologic_t", "primary_diagnosis", "treatment_type"]
    rows = ["\t".join(head)]
    for case, (age, days, gender, stage, _, _) in CLINICAL.items():
        project = "TCGA-LUSC" if case.startswith("TCGA-18") or case == "TCGA-44-2656" else \
            "TCGA-LUAD"
        dx = "Squamous cell carcinoma, NOS" if project == "TCGA-LUSC" else "Adenocarcinoma, NOS"
        for treatment in ("Pharmaceutical Therapy, NOS", "Radiation Therapy, NOS"):
            if mutate == "clinical_age" and case == "TCGA-18-3407" and treatment[0] == "R":
                age = "seventy"
            rows.append("\t".join([uid(case), case, project, age, days, gender, "Alive", "'--",
                                   stage, "T2", dx, treatment]))
    return rows


def exposure_rows():
    head = ["case_id", "case_submitter_id", "project_id", "tobacco_smoking_status",
            "pack_years_smoked", "cigarettes_per_day", "years_smoked"]
    rows = ["\t".join(head)]
    for case, (_, _, _, _, smoking, packs) in CLINICAL.items():
        rows.append("\t".join([uid(case), case, "TCGA-LUAD", smoking, packs, "'--", "'--"]))
    rows.append("\t".join([uid("x"), "TCGA-05-8888", "TCGA-LUAD", "Current Smoker", "5", "'--",
                           "'--"]))  # a case without a clinical row
    return rows


def new_portal(out):
    """The same clinical data with the new portal's dotted names and a description row."""
    head = ["cases.case_id", "cases.submitter_id", "project.project_id",
            "demographic.age_at_index", "demographic.gender", "diagnoses.age_at_diagnosis",
            "diagnoses.ajcc_pathologic_stage", "treatments.treatment_type"]
    rows = ["\t".join(head), "\t".join(["The case's UUID", "The case's barcode",
                                         "The project", "Age in years", "Gender",
                                         "Age in days", "Stage", "Treatment"])]
    for case, (age, days, gender, stage, _, _) in CLINICAL.items():
        for treatment in ("Pharmaceutical Therapy, NOS", "Radiation Therapy, NOS"):
            rows.append("\t".join([uid(case), case, "TCGA-LUAD", age, gender, days, stage,
                                   treatment]))
    write(os.path.join(out, "new", "clinical.tsv"), "\n".join(rows) + "\n")
    head = ["cases.case_id", "cases.submitter_id", "exposures.tobacco_smoking_status",
            "exposures.pack_years_smoked"]
    rows = ["\t".join(head), "\t".join(["UUID", "Barcode", "Smoking status", "Pack-years"])]
    for case, (_, _, _, _, smoking, packs) in CLINICAL.items():
        rows.append("\t".join([uid(case), case, smoking, packs]))
    write(os.path.join(out, "new", "exposure.tsv"), "\n".join(rows) + "\n")


def tree(out, mutate=None):
    """Writes one download into out; mutate names the defect (None: good)."""
    sheet = ["File ID\tFile Name\tData Category\tData Type\tProject ID\tCase ID\tSample ID\t"
             "Sample Type"]

    def add(kind, barcode, project, text, flat=False, listed=True, case=None):
        fid = uid(kind, barcode, str(len(sheet)))
        if kind == "rna":
            name = fid + ".rna_seq.augmented_star_gene_counts.tsv"
            cat, dtype = "Transcriptome Profiling", "Gene Expression Quantification"
        else:
            name = fid + ".methylation_array.sesame.level3betas.txt"
            cat, dtype = "DNA Methylation", "Methylation Beta Value"
        if text is not None:
            write(os.path.join(out, kind, name) if flat else
                  os.path.join(out, kind, fid, name), text)
        stype = "Solid Tissue Normal" if barcode[13:15] == "11" else "Primary Tumor"
        if listed:
            sheet.append("\t".join([fid, name, cat, dtype, project, case or barcode[:12],
                                    barcode, stype]))

    for i, (barcode, project) in enumerate(SAMPLES):
        bad_rna = mutate in ("truncated", "rna_header", "gene_mismatch") and i == 4
        add("rna", barcode, project, star_text(barcode, project, mutate if bad_rna else None),
            flat=i == 2, case="TCGA-05-4244" if mutate == "case_id" and i == 6 else None)
        if barcode != NO_METHYLATION:
            bad_m = mutate in ("probe_mismatch", "beta_range") and i == 3
            add("methylation", barcode, project,
                None if mutate == "missing_file" and i == 6 else
                betas_text(barcode, mutate if bad_m else None))
    # A second RNA file for one sample (kept out with a warning) and a row of another type.
    add("rna", "TCGA-05-4249-01A", "TCGA-LUAD", star_text("TCGA-05-4249-01A", "TCGA-LUAD"))
    sheet.append("\t".join([uid("slide"), "TCGA-05-4244-01Z-00-DX1.%s.svs" % uid("svs"),
                            "Biospecimen", "Slide Image", "TCGA-LUAD", "TCGA-05-4244",
                            "TCGA-05-4244-01Z", "Primary Tumor"]))
    if mutate == "sheet_header":
        sheet[0] = sheet[0].replace("Sample ID", "Sample")
    write(os.path.join(out, "sample_sheet.tsv"), "\n".join(sheet) + "\n")
    write(os.path.join(out, "clinical.tsv"), "\n".join(clinical_rows(mutate)) + "\n")
    write(os.path.join(out, "exposure.tsv"), "\n".join(exposure_rows()) + "\n")
    if mutate is None:
        new_portal(out)
        # Tile folders: by sample barcode, one by a slide name (vial Z), one matching nothing.
        for name, n, rgb in [("TCGA-05-4244-01Z-00-DX1", 3, (200, 120, 160)),
                             ("TCGA-18-3406-01A", 2, (150, 90, 170)),
                             ("TCGA-18-3406-11A", 1, (230, 190, 210)),
                             ("TCGA-99-0000-01A", 1, (0, 0, 0))]:
            os.makedirs(os.path.join(out, "tiles", name))
            for k in range(n):
                png(os.path.join(out, "tiles", name, "tile_%02d.png" % k), rgb)


# The defects, one tree each.
BAD = ["truncated", "rna_header", "gene_mismatch", "probe_mismatch", "beta_range",
       "missing_file", "clinical_age", "sheet_header", "case_id"]


def expectation(out, name):
    """The file (and line) the error of a bad tree must name."""
    sheet = open(os.path.join(out, "sample_sheet.tsv")).read().split("\n")
    rows = [r.split("\t") for r in sheet[1:] if r]

    def file_of(kind, sample):
        for r in rows:
            if r[6] == sample and r[3].startswith("Gene" if kind == "rna" else "Methyl"):
                d = os.path.join(out, kind, r[0], r[1])
                return d if os.path.exists(d) else os.path.join(out, kind, r[1])
        raise KeyError(sample)

    def line_of(path, text):
        for i, line in enumerate(open(path).read().split("\n")):
            if text in line:
                return "%s:%d:" % (path, i + 1)
        raise KeyError(text)

    rna4 = file_of("rna", SAMPLES[4][0])
    meth3 = file_of("methylation", SAMPLES[3][0])
    if name == "truncated":
        return "%s:%d:" % (rna4, open(rna4).read().count("\n") + 1)
    if name == "rna_header":
        return rna4 + ":2:"
    if name == "gene_mismatch":
        return rna4 + ":13:"
    if name == "probe_mismatch":
        return line_of(meth3, "ch.")
    if name == "beta_range":
        return line_of(meth3, "1.7000")
    if name == "missing_file":
        sample = SAMPLES[6][0]
        for i, r in enumerate(rows):
            if r[6] == sample and r[3].startswith("Methyl"):
                return "%s:%d:" % (os.path.join(out, "sample_sheet.tsv"), i + 2)
    if name == "clinical_age":
        return line_of(os.path.join(out, "clinical.tsv"), "seventy")
    if name == "sheet_header":
        return os.path.join(out, "sample_sheet.tsv") + ":1:"
    if name == "case_id":
        return line_of(os.path.join(out, "sample_sheet.tsv"), "TCGA-05-4244\t" + SAMPLES[6][0])
    raise KeyError(name)


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: make_fixtures.py OUTDIR")
    root = sys.argv[1]
    for sub in ("good", "bad"):
        shutil.rmtree(os.path.join(root, sub), ignore_errors=True)
    tree(os.path.join(root, "good"))
    for name in BAD:
        out = os.path.join(root, "bad", name)
        tree(out, name)
        write(os.path.join(out, "expect"), expectation(out, name) + "\n")


if __name__ == "__main__":
    main()
