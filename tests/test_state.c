/* test_state.c - the server's crash-safe state (server/state.h): a committed round reads back
 * whole (journal row, model, clip norm), rounds.csv gains the clip_norm column under adaptive
 * clipping, a resumed round's clip norm survives, a state file of the first format (no clip
 * norm) still reads, a damaged one is refused and an uncommitted one is removed. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../crypto/hash.h"
#include "../server/state.h"
#include "harness.h"

static fl_err err;

static const char *PLAN = "[study]\nid = state-test\nclasses = A,B\nphases = %s\n"
                          "[fusion]\nmodalities = rna\nrounds = 3\nepochs = 1\n%s"
                          "[privacy]\n%s";

/* Under DP the plan standardizes at the sites and has no statistics phase; the journal and the
 * state files take rows of any phase (round 1's statistics row below is one without clipping). */
static fl_status plan(fl_plan *p, const char *privacy) {
    char text[1024];
    int dp = strstr(privacy, "mechanism") != NULL;
    snprintf(text, sizeof text, PLAN, dp ? "fusion" : "statistics,fusion",
             dp ? "standardize = site\nrna_names = G1\n" : "", privacy);
    return fl_plan_parse(text, strlen(text), "the test plan", p, &err);
}

static fl_journal_row row_of(int64_t round, fl_phase ph, int phase_round, int done) {
    fl_journal_row r;
    memset(&r, 0, sizeof r);
    r.round = round;
    r.phase = ph;
    r.phase_round = phase_round;
    r.phase_done = done;
    r.participants = 3;
    r.loss = r.macro_auc = NAN;
    for (int k = 0; k < FL_PLAN_MAX_CLASSES; k++) r.auc[k] = r.ap[k] = NAN;
    r.clip_norm = r.clip_bits_mean = r.clip_next = NAN;
    r.unix_ms = 1000 * round;
    return r;
}

/* Commits a round of the fusion phase with a 5-float model and the given clip norms. */
static void commit(const fl_plan *p, fl_journal_row r, double clip_after) {
    float model[5] = {1, 2, 3, 4, (float)r.round};
    fl_server_state st;
    memset(&st, 0, sizeof st);
    st.row = r;
    st.n_params = 4;
    st.n_buffers = 1;
    st.global = model;
    st.clip = clip_after;
    CHECK_OK(fl_state_commit(fl_test_dir, p, &st, &err), &err);
}

/* Rounds 1 (statistics), 2 and 3 (fusion, adaptive), then a resume: the last row's clip norms
 * and the state file's next clip norm come back, rounds.csv has them per round. */
static void test_adaptive_round_trip(void) {
    fl_plan p;
    CHECK_OK(plan(&p, "mechanism = dp-fedavg\nclip_norm = 2\nnoise_multiplier = 0.2\n"
                      "dp_clients = 3\nadaptive_clip = true\n"),
             &err);
    commit(&p, row_of(1, FL_PHASE_STATISTICS, 1, 1), 2);
    fl_journal_row r2 = row_of(2, FL_PHASE_FUSION, 1, 0);
    r2.clip_norm = 2;
    r2.clip_bits_mean = 1;
    r2.clip_next = 2 * exp(-0.1);
    commit(&p, r2, r2.clip_next);
    fl_journal_row r3 = row_of(3, FL_PHASE_FUSION, 2, 0);
    r3.clip_norm = r2.clip_next;
    r3.clip_bits_mean = 0.8137;
    r3.clip_next = r2.clip_next * exp(-0.2 * (0.8137 - 0.5));
    commit(&p, r3, r3.clip_next);

    fl_journal_row *rows = NULL;
    int n = 0;
    fl_server_state st;
    CHECK_OK(fl_state_load(fl_test_dir, &p, &rows, &n, &st, &err), &err);
    CHECK_EQ_INT(n, 3);
    if (n == 3) {
        CHECK(isnan(rows[0].clip_norm) && isnan(rows[0].clip_next));
        CHECK(rows[1].clip_norm == 2 && rows[1].clip_bits_mean == 1 &&
              rows[1].clip_next == r2.clip_next);
        CHECK(rows[2].clip_norm == r3.clip_norm && rows[2].clip_bits_mean == 0.8137 &&
              rows[2].clip_next == r3.clip_next); /* %.17g: exact */
    }
    CHECK(st.clip == r3.clip_next); /* the next round resumes with it */
    CHECK(st.global && st.n_params == 4 && st.global[4] == 3);
    fl_server_state_destroy(&st);
    free(rows);

    char *csv = fl_test_read_file(fl_test_path("rounds.csv"), NULL);
    CHECK(csv != NULL);
    if (csv) {
        CHECK(strstr(csv, "round,phase,participants,loss,macro_auc,auc_A,auc_B,clip_norm\n"));
        CHECK(strstr(csv, "\n1,statistics,3,,,,,\n"));
        CHECK(strstr(csv, "\n2,fusion,3,,,,,2\n"));
        char want[64];
        snprintf(want, sizeof want, "\n3,fusion,3,,,,,%.9g\n", r3.clip_norm);
        CHECK(strstr(csv, want));
        if (!strstr(csv, want)) fprintf(stderr, "rounds.csv:\n%s", csv);
    }
    free(csv);
    char *journal = fl_test_read_file(fl_test_path("journal.jsonl"), NULL);
    CHECK(journal && strstr(journal, "\"clip_norm\":2,\"clip_bits_mean\":1,\"clip_next\":"));
    free(journal);
    fl_plan_destroy(&p);
}

/* A state file of the first format (FLSTATE1: no clip norm) reads, with clip 0; a damaged one
 * does not; without adaptive clipping rounds.csv has no clip_norm column. */
static void test_formats(void) {
    fl_plan p;
    CHECK_OK(plan(&p, ""), &err);
    commit(&p, row_of(1, FL_PHASE_STATISTICS, 1, 1), 0);
    commit(&p, row_of(2, FL_PHASE_FUSION, 1, 0), 0);
    const char *path = fl_test_path("state/round-2.bin");
    size_t len = 0;
    uint8_t *v2 = (uint8_t *)fl_test_read_file(path, &len);
    CHECK(v2 && len > 8 + 7 * 8 + 8 + 32 && memcmp(v2, "FLSTATE2", 8) == 0);
    if (!v2) return;
    /* the same file in the first format: the 8 bytes of the clip norm (after the magic and 7
     * words) out, the magic back to FLSTATE1, the SHA-256 trailer recomputed */
    size_t at = 8 + 7 * 8, n1 = len - 8;
    uint8_t *v1 = malloc(n1);
    CHECK(v1 != NULL);
    if (v1) {
        memcpy(v1, v2, at);
        memcpy(v1 + at, v2 + at + 8, len - 32 - at - 8);
        memcpy(v1, "FLSTATE1", 8);
        CHECK_OK(fl_sha256(v1, n1 - 32, v1 + n1 - 32), &err);
        fl_test_write_file(path, v1, n1);
        fl_journal_row *rows = NULL;
        int n = 0;
        fl_server_state st;
        CHECK_OK(fl_state_load(fl_test_dir, &p, &rows, &n, &st, &err), &err);
        CHECK_EQ_INT(n, 2);
        CHECK(st.clip == 0 && st.global && st.global[4] == 2);
        fl_server_state_destroy(&st);
        free(rows);
        /* damaged: one byte of the model flipped */
        v1[at + 9] ^= 1;
        fl_test_write_file(path, v1, n1);
        CHECK(fl_state_load(fl_test_dir, &p, &rows, &n, &st, &err) == FL_EFORMAT);
        CHECK_MSG(err, "not a fedlung server state file, or damaged");
    }
    free(v1);
    free(v2);
    /* rounds.csv of a plan without adaptive clipping keeps its columns */
    char *csv = fl_test_read_file(fl_test_path("rounds.csv"), NULL);
    CHECK(csv && strncmp(csv, "round,phase,participants,loss,macro_auc,auc_A,auc_B\n", 52) == 0);
    free(csv);
    fl_plan_destroy(&p);
}

/* A journal line with only some of adaptive clipping's keys is damaged. */
static void test_journal_keys(void) {
    fl_plan p;
    CHECK_OK(plan(&p, ""), &err);
    commit(&p, row_of(1, FL_PHASE_STATISTICS, 1, 1), 0);
    const char *jpath = fl_test_path("journal.jsonl");
    char *j = fl_test_read_file(jpath, NULL);
    CHECK(j != NULL);
    if (j) {
        char *end = strrchr(j, '}');
        char line[4096];
        snprintf(line, sizeof line, "%.*s,\"clip_norm\":2}\n", (int)(end - j), j);
        fl_test_write_file(jpath, line, strlen(line));
        fl_journal_row *rows = NULL;
        int n = 0;
        fl_server_state st;
        CHECK(fl_state_load(fl_test_dir, &p, &rows, &n, &st, &err) == FL_EFORMAT);
        CHECK_MSG(err, "journal.jsonl:1: not a journal line of round 1");
    }
    free(j);
    fl_plan_destroy(&p);
}

int main(void) {
    if (!fl_test_mkdtemp("fedlung-state-")) return 1;
    test_adaptive_round_trip();
    fl_test_rmtree(fl_test_dir);
    if (!fl_test_mkdtemp("fedlung-state-")) return 1;
    test_formats();
    fl_test_rmtree(fl_test_dir);
    if (!fl_test_mkdtemp("fedlung-state-")) return 1;
    test_journal_keys();
    CHECK_EQ_INT(fl_test_count_tmp(), 0);
    fl_test_rmtree(fl_test_dir);
    return fl_test_summary("test_state");
}
