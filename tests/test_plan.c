/* test_plan.c - the study plan (fed/plan.h): the shipped example deploy/study.plan, the
 * defaults, the hash of the exact bytes (file and memory), every class of error with its
 * file:line, the consistency of phases and modalities, paths relative to the plan, and the
 * parameter counts of the two graphs a plan builds. */
#include <stdio.h>
#include <stdlib.h>
#include <math.h>
#include <string.h>

#include "../crypto/hash.h"
#include "../fed/plan.h"
#include "../nn/fusion.h"
#include "harness.h"

#define EXAMPLE "../deploy/study.plan"
#define MINIMAL "[study]\nid = s1\nclasses = A,B\n"

/* The fusion training of the example and of the defaults: AdamW by epochs. */
static void check_fusion_training(const fl_plan_training *t, int rounds, int epochs) {
    CHECK_EQ_INT(t->rounds, rounds);
    CHECK_EQ_INT(t->epochs, epochs);
    CHECK_EQ_INT(t->local_steps, 0);
    CHECK_EQ_INT(t->optimizer, FL_LOCAL_ADAMW);
    CHECK_CLOSE(t->lr, 3e-3, 1e-7, 0);
    CHECK_CLOSE(t->weight_decay, 1e-2, 1e-7, 0);
}

static void check_example(void) {
    fl_plan p;
    fl_err err = {{0}};
    CHECK_OK(fl_plan_load(EXAMPLE, &p, &err), &err);
    CHECK(strcmp(p.id, "lung-demo") == 0);
    CHECK_EQ_INT(p.n_classes, 3);
    CHECK(strcmp(p.class_names[0], "LUAD") == 0 && strcmp(p.class_names[1], "LUSC") == 0 &&
          strcmp(p.class_names[2], "NORMAL") == 0);
    CHECK_EQ_INT(p.phases, 0x1e);
    CHECK_EQ_INT(p.seed, 1);
    CHECK_EQ_INT(p.bins, 1000);
    CHECK_EQ_INT(p.net.depth, 18);
    CHECK_EQ_INT(p.net.stem, FL_STEM_SMALL);
    CHECK_EQ_INT(p.net.tile, 64);
    CHECK_EQ_INT(p.net.classes, 3);
    CHECK_CLOSE(p.net.width, 1, 0, 0);
    CHECK_EQ_INT(p.image.rounds, 2);
    CHECK_EQ_INT(p.image.local_steps, 8);
    CHECK_EQ_INT(p.image.epochs, 0);
    CHECK_EQ_INT(p.image.batch, 32);
    CHECK_EQ_INT(p.image.optimizer, FL_LOCAL_SGD);
    CHECK_CLOSE(p.image.lr, 0.05, 1e-7, 0);
    CHECK_CLOSE(p.image.momentum, 0.9, 1e-7, 0);
    CHECK_CLOSE(p.image.weight_decay, 1e-4, 1e-7, 0);
    CHECK_EQ_INT(p.image.strategy, FL_STRATEGY_FEDAVG);
    CHECK_EQ_INT(p.image.weighted, 1);
    CHECK_EQ_INT(p.modalities, 0xf);
    CHECK_EQ_INT(p.rna_features, 256);
    CHECK_EQ_INT(p.meth_features, 256);
    CHECK_EQ_INT(p.mvalue, 1);
    CHECK_EQ_INT(p.enc_dim, 32);
    CHECK_EQ_INT(p.hidden, 32);
    CHECK_CLOSE(p.dropout, 0.2, 1e-7, 0);
    check_fusion_training(&p.fusion, 5, 3);
    CHECK(strcmp(p.path, EXAMPLE) == 0);
    CHECK(p.image_model[0] == 0);

    /* the hash is SHA-256 over the file's exact bytes, and the same from memory */
    size_t n;
    char *bytes = fl_test_read_file(EXAMPLE, &n);
    CHECK(bytes != NULL);
    if (bytes) {
        uint8_t want[FL_SHA256_LEN];
        char want_hex[FL_SHA256_HEX], hex[65];
        CHECK_OK(fl_sha256(bytes, n, want), &err);
        CHECK(memcmp(p.sha256, want, sizeof want) == 0);
        CHECK_OK(fl_sha256_hex(bytes, n, want_hex), &err);
        fl_plan_hash_hex(&p, hex);
        CHECK(strcmp(hex, want_hex) == 0);
        CHECK_EQ_INT(p.text_len, n);
        CHECK(memcmp(p.text, bytes, n) == 0 && p.text[n] == 0);
        fl_plan q;
        CHECK_OK(fl_plan_parse(bytes, n, "the server's plan", &q, &err), &err);
        CHECK(memcmp(q.sha256, want, sizeof want) == 0);
        CHECK(q.path[0] == 0);
        fl_plan_destroy(&q);
        /* one more byte (a trailing newline) is another plan */
        char *more = malloc(n + 1);
        memcpy(more, bytes, n);
        more[n] = '\n';
        CHECK_OK(fl_plan_parse(more, n + 1, "x", &q, &err), &err);
        CHECK(memcmp(q.sha256, want, sizeof want) != 0);
        fl_plan_destroy(&q);
        free(more);
        free(bytes);
    }
    /* the hash module itself on FIPS 180-2's "abc" */
    char abc[FL_SHA256_HEX];
    CHECK_OK(fl_sha256_hex("abc", 3, abc), &err);
    CHECK(strcmp(abc, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad") == 0);

    CHECK_EQ_INT(fl_plan_next_phase(&p, FL_PHASE_NONE), FL_PHASE_STATISTICS);
    CHECK_EQ_INT(fl_plan_next_phase(&p, FL_PHASE_IMAGE), FL_PHASE_FEATURES);
    CHECK_EQ_INT(fl_plan_next_phase(&p, FL_PHASE_FUSION), FL_PHASE_NONE);
    CHECK(fl_plan_training_of(&p, FL_PHASE_IMAGE) == &p.image);
    CHECK(fl_plan_training_of(&p, FL_PHASE_FUSION) == &p.fusion);
    CHECK(fl_plan_training_of(&p, FL_PHASE_STATISTICS) == NULL);
    CHECK(strcmp(fl_phase_name(FL_PHASE_FEATURES), "features") == 0);
    CHECK(strcmp(fl_phase_name(FL_PHASE_NONE), "none") == 0);
    CHECK(strcmp(fl_modality_name(FL_MODALITY_METHYLATION), "methylation") == 0);
    fl_plan_destroy(&p);
    CHECK(p.text == NULL);
    fl_plan_destroy(&p); /* twice is harmless */
}

static void check_defaults(void) {
    fl_plan p;
    fl_err err = {{0}};
    CHECK_OK(fl_plan_parse(MINIMAL, strlen(MINIMAL), "m.plan", &p, &err), &err);
    CHECK_EQ_INT(p.phases, 0x1e);
    CHECK_EQ_INT(p.seed, 1);
    CHECK_EQ_INT(p.bins, 1000);
    CHECK_EQ_INT(p.net.depth, 152);
    CHECK_EQ_INT(p.net.tile, 224);
    CHECK_EQ_INT(p.net.stem, FL_STEM_IMAGENET);
    CHECK_EQ_INT(p.net.classes, 2);
    CHECK_EQ_INT(p.image.rounds, 3);
    CHECK_EQ_INT(p.image.local_steps, 10);
    CHECK_EQ_INT(p.image.epochs, 0);
    CHECK_EQ_INT(p.image.optimizer, FL_LOCAL_SGD);
    CHECK_CLOSE(p.image.server_lr, 1, 0, 0);
    CHECK_CLOSE(p.image.beta2, 0.99, 1e-7, 0);
    CHECK_CLOSE(p.image.tau, 1e-3, 1e-7, 0);
    CHECK_EQ_INT(p.image.fedbn, 0);
    CHECK_EQ_INT(p.image.eval_every, 1);
    check_fusion_training(&p.fusion, 10, 2);
    CHECK_EQ_INT(p.modalities, 0xf);
    CHECK_EQ_INT(p.mvalue, 1);
    fl_plan_destroy(&p);

    /* setting epochs alone turns off local_steps' default (and the other way round) */
    const char *t = MINIMAL "[image]\nepochs = 1\n[fusion]\nlocal_steps = 7\n";
    CHECK_OK(fl_plan_parse(t, strlen(t), "m.plan", &p, &err), &err);
    CHECK_EQ_INT(p.image.local_steps, 0);
    CHECK_EQ_INT(p.image.epochs, 1);
    CHECK_EQ_INT(p.fusion.local_steps, 7);
    CHECK_EQ_INT(p.fusion.epochs, 0);
    fl_plan_destroy(&p);

    /* a subset of phases, in order; an empty model line means none */
    t = MINIMAL "phases = image, fusion\n[image]\nmodel =\n[fusion]\nmodalities = image\n";
    CHECK_FAILS(fl_plan_parse(t, strlen(t), "m.plan", &p, &err), err, "m.plan: ");
    CHECK_MSG(err, "no features phase");
    t = MINIMAL "phases = statistics,fusion\nseed = 18446744073709551615\n[image]\nmodel =\n"
                "[fusion]\nmodalities = clinical, rna ; any order\n";
    CHECK_OK(fl_plan_parse(t, strlen(t), "m.plan", &p, &err), &err);
    CHECK_EQ_INT(p.phases, 1u << 1 | 1u << 4);
    CHECK(p.seed == UINT64_MAX);
    CHECK_EQ_INT(p.modalities,
                 FL_MODALITY_BIT(FL_MODALITY_RNA) | FL_MODALITY_BIT(FL_MODALITY_CLINICAL));
    CHECK_EQ_INT(fl_plan_next_phase(&p, FL_PHASE_NONE), FL_PHASE_STATISTICS);
    CHECK_EQ_INT(fl_plan_next_phase(&p, FL_PHASE_STATISTICS), FL_PHASE_FUSION);
    fl_plan_destroy(&p);
}

/* [image] model is made relative to the plan's folder by fl_plan_load only. */
static void check_model_path(void) {
    fl_plan p;
    fl_err err = {{0}};
    const char *t = MINIMAL "phases = statistics,features,fusion\n[image]\nmodel = rnet.h5\n";
    const char *path = fl_test_path("study.plan");
    fl_test_write_file(path, t, strlen(t));
    CHECK_OK(fl_plan_load(path, &p, &err), &err);
    char want[600];
    snprintf(want, sizeof want, "%s/rnet.h5", fl_test_dir);
    CHECK(strcmp(p.image_model, want) == 0);
    fl_plan_destroy(&p);
    CHECK_OK(fl_plan_parse(t, strlen(t), "the server's plan", &p, &err), &err);
    CHECK(strcmp(p.image_model, "rnet.h5") == 0);
    fl_plan_destroy(&p);
    CHECK_EQ_INT(fl_plan_load(fl_test_path("absent.plan"), &p, &err), FL_EIO);
    CHECK_MSG(err, "absent.plan");
}

/* Each text must fail to parse with a message that starts "bad.plan:<where>" and says why. */
static void check_errors(void) {
    static const struct {
        const char *text, *where, *why;
    } cases[] = {
        {"", ": [study] id is missing", ""},
        {"[study]\nclasses = A,B\n", ": [study] id is missing", ""},
        {"[study]\nid = s1\n", ": [study] classes is missing", ""},
        {MINIMAL "colour = red\n", ":4: ", "unknown key 'colour' in [study]"},
        {MINIMAL "[images]\nrounds = 1\n", ":5: ", "unknown key 'rounds' in [images]"},
        {MINIMAL "id = s2\n", ":4: ", "id is set twice in [study]"},
        {MINIMAL "[image]\nlr = 1\n[fusion]\nlr = 1\nlr = 2\n", ":8: ", "lr is set twice"},
        {MINIMAL "seed 3\n", ":4: ", "expected key = value"},
        {MINIMAL "[image\n", ":4: ", "section header without ']'"},
        {MINIMAL "bins = 10 # ten\n", ":4: ", "starts with ' ;'"},
        {"[study]\nid = a b\nclasses = A,B\n", ":2: ", "id 'a b' is not an id"},
        {"[study]\nid = s1\nclasses = A\n", ":3: ", "fewer than 2 classes"},
        {"[study]\nid = s1\nclasses = A,B,A\n", ":3: ", "names 'A' twice"},
        {"[study]\nid = s1\nclasses = A,,B\n", ":3: ", "classes has an empty item"},
        {"[study]\nid = s1\nclasses = A,B,C,D,E,F,G,H,I,J,K,L,M,N,O,P,Q\n",
         ":3: ", "more than 16 classes"},
        {MINIMAL "phases = image,statistics\n", ":4: ", "'statistics' is out of order"},
        {MINIMAL "phases = image,image\n", ":4: ", "'image' is out of order"},
        {MINIMAL "phases = training\n", ":4: ", "'training' is not one of statistics"},
        {MINIMAL "seed = -1\n", ":4: ", "seed '-1' is not a whole number"},
        {MINIMAL "bins = 1\n", ":4: ", "bins '1' is not a whole number from 2 to 100000"},
        {MINIMAL "bins = 100001\n", ":4: ", "bins '100001'"},
        {MINIMAL "bins = 10x\n", ":4: ", "bins '10x'"},
        {MINIMAL "[image]\narch = resnet20\n", ":5: ", "arch 'resnet20' is not one of"},
        {MINIMAL "[image]\nstem = tiny\n", ":5: ", "stem 'tiny'"},
        {MINIMAL "[image]\ntile = 31\n", ":5: ", "tile '31' is not a whole number from 32"},
        {MINIMAL "[image]\nwidth = 0\n", ":5: ", "width '0' is not a number in (0, 64)"},
        {MINIMAL "[image]\nrounds = 0\n", ":5: ", "rounds '0' is not a whole number from 1"},
        {MINIMAL "[image]\nbatch = 0\n", ":5: ", "batch '0'"},
        {MINIMAL "[image]\nlr = 0\n", ":5: ", "lr '0' is not a number > 0"},
        {MINIMAL "[image]\nlr = nan\n", ":5: ", "lr 'nan'"},
        {MINIMAL "[image]\nmomentum = 1\n", ":5: ", "momentum '1' is not a number in [0, 1)"},
        {MINIMAL "[image]\nmomentum = -0.1\n", ":5: ", "momentum '-0.1'"},
        {MINIMAL "[image]\nweight_decay = -1\n", ":5: ", "weight_decay '-1' is not a number >= 0"},
        {MINIMAL "[image]\noptimizer = lbfgs\n", ":5: ", "optimizer 'lbfgs' is not one of"},
        {MINIMAL "[image]\nstrategy = scaffold\n", ":5: ", "strategy 'scaffold'"},
        {MINIMAL "[image]\nfedbn = maybe\n", ":5: ", "fedbn 'maybe' is not true or false"},
        {MINIMAL "[image]\nlocal_steps = -1\n", ":5: ", "local_steps '-1'"},
        {MINIMAL "[fusion]\nmodalities = image,text\n", ":5: ", "'text' is not one of image"},
        {MINIMAL "[fusion]\nmodalities = rna,rna\n", ":5: ", "names 'rna' twice"},
        {MINIMAL "[fusion]\ndropout = 1\n", ":5: ", "dropout '1'"},
        {MINIMAL "[fusion]\nenc_dim = 0\n", ":5: ", "enc_dim '0'"},
        {MINIMAL "[fusion]\nmvalue = 2\n", ":5: ", "mvalue '2'"},
        {MINIMAL "[fusion]\ntau = 0\n", ":5: ", "tau '0' is not a number > 0"},
        /* consistency: no line */
        {MINIMAL "[image]\nlocal_steps = 5\nepochs = 1\n", ": [image] needs exactly one",
         "(it has 5 and 1)"},
        {MINIMAL "[fusion]\nepochs = 0\n", ": [fusion] needs exactly one", "(it has 0 and 0)"},
        {MINIMAL "phases = statistics,features\n", ": the features phase needs the image phase",
         ""},
        {MINIMAL "phases = image,features,fusion\n", ": fusion uses omics modalities", ""},
        {MINIMAL "phases = statistics,fusion\n", ": fusion uses the image modality", ""},
        {MINIMAL "[image]\nmodel = rnet.h5\n", ": [image] model is only for a plan without", ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fl_plan p;
        fl_err err = {{0}};
        char where[128];
        snprintf(where, sizeof where, "bad.plan%s", cases[i].where);
        fl_status st = fl_plan_parse(cases[i].text, strlen(cases[i].text), "bad.plan", &p, &err);
        fl_test_checks++;
        if (st != FL_EFORMAT || strncmp(err.msg, where, strlen(where)) != 0 ||
            !strstr(err.msg, cases[i].why))
            fl_test_fail_at(__FILE__, __LINE__, "case %zu: want %s \"%s...%s\", got %s \"%s\"", i,
                            fl_status_str(FL_EFORMAT), where, cases[i].why, fl_status_str(st),
                            err.msg);
        CHECK(p.text == NULL);
    }

    /* the same sentences from a file name its path; not text; too large */
    fl_plan p;
    fl_err err = {{0}};
    const char *path = fl_test_path("dup.plan");
    fl_test_write_file(path, MINIMAL "id = s2\n", strlen(MINIMAL) + 8);
    CHECK_EQ_INT(fl_plan_load(path, &p, &err), FL_EFORMAT);
    char want[600];
    snprintf(want, sizeof want, "%s:4: id is set twice in [study]", path);
    CHECK(strcmp(err.msg, want) == 0);
    CHECK_EQ_INT(fl_plan_parse(NULL, 0, "nothing", &p, &err), FL_EFORMAT);
    CHECK_MSG(err, "nothing: [study] id is missing");
    CHECK_EQ_INT(fl_plan_parse("[study]\0x", 9, "nul", &p, &err), FL_EFORMAT);
    CHECK_MSG(err, "nul: not text");
    char *big = malloc(FL_PLAN_MAX_TEXT + 2);
    memset(big, '#', FL_PLAN_MAX_TEXT + 1);
    big[FL_PLAN_MAX_TEXT + 1] = 0;
    CHECK_EQ_INT(fl_plan_parse(big, FL_PLAN_MAX_TEXT + 1, "big", &p, &err), FL_EFORMAT);
    CHECK_MSG(err, "big: 65537 bytes");
    fl_test_write_file(path, big, FL_PLAN_MAX_TEXT + 1);
    CHECK_EQ_INT(fl_plan_load(path, &p, &err), FL_EIO);
    CHECK_MSG(err, "larger than expected");
    free(big);
}

/* Trainable floats of the MMLM for modalities of in_dim[0..M), enc E, hidden H, K classes. */
static size_t fusion_count(int M, const int *in_dim, int E, int H, int K) {
    size_t n = 0;
    for (int m = 0; m < M; m++) n += (size_t)in_dim[m] * E + E + 2 * (size_t)E;
    return n + (size_t)M * E * H + H + 2 * (size_t)H + (size_t)H * K + K;
}

static void check_graphs(void) {
    fl_plan p;
    fl_err err = {{0}};
    CHECK_OK(fl_plan_load(EXAMPLE, &p, &err), &err);
    fl_graph *g = NULL, *ref = NULL;
    CHECK_OK(fl_plan_image_graph(&p, &g, &err), &err);
    fl_resnet_config c;
    fl_resnet_config_default(&c);
    c.depth = 18;
    c.stem = FL_STEM_SMALL;
    c.tile = 64;
    c.classes = 3;
    CHECK_OK(fl_resnet_build(&ref, &c, &err), &err);
    if (g && ref) {
        CHECK_EQ_INT(fl_graph_count(g, 1), fl_graph_count(ref, 1));
        CHECK_EQ_INT(fl_graph_count(g, 0), fl_graph_count(ref, 0));
        /* torchvision's resnet18 (11,689,512) with a 3x3 stem and a 3-class fc */
        CHECK_EQ_INT(fl_graph_count(g, 1), 11689512 - 9408 + 1728 - 513000 + 1539);
    }
    fl_graph_free(g);
    fl_graph_free(ref);

    int in_dim[4] = {512, 256, 256, 14};
    CHECK_OK(fl_plan_fusion_graph(&p, in_dim, &g, &err), &err);
    if (g) {
        CHECK_EQ_INT(fl_graph_count(g, 1), fusion_count(4, in_dim, 32, 32, 3));
        static const char *const names[] = {"image", "rna", "methylation", "clinical"};
        for (int m = 0; m < 4; m++) CHECK_EQ_INT(fl_graph_find_input(g, names[m]), 2 * m);
        CHECK(fl_graph_find_param(g, "enc.methylation.fc.weight") >= 0);
        CHECK(fl_graph_find_output(g, "stage_logits") < 0);
    }
    fl_graph_free(g);
    in_dim[1] = 300; /* 44 more rna inputs: 44 x enc_dim more weights */
    CHECK_OK(fl_plan_fusion_graph(&p, in_dim, &g, &err), &err);
    if (g) CHECK_EQ_INT(fl_graph_count(g, 1), fusion_count(4, in_dim, 32, 32, 3));
    fl_graph_free(g);
    in_dim[3] = 0;
    CHECK_EQ_INT(fl_plan_fusion_graph(&p, in_dim, &g, &err), FL_EINVAL);
    CHECK_MSG(err, "clinical modality has 0 input features");
    CHECK(g == NULL);
    fl_plan_destroy(&p);

    /* only the plan's modalities, still in the fixed order; the other in_dim are ignored */
    const char *t = MINIMAL "phases = statistics,fusion\n[fusion]\nmodalities = clinical,rna\n"
                            "enc_dim = 8\nhidden = 16\n";
    CHECK_OK(fl_plan_parse(t, strlen(t), "m.plan", &p, &err), &err);
    int dims[4] = {0, 100, 0, 20};
    CHECK_OK(fl_plan_fusion_graph(&p, dims, &g, &err), &err);
    if (g) {
        int used[2] = {100, 20};
        CHECK_EQ_INT(fl_graph_count(g, 1), fusion_count(2, used, 8, 16, 2));
        CHECK_EQ_INT(fl_graph_find_input(g, "rna"), 0);
        CHECK_EQ_INT(fl_graph_find_input(g, "clinical"), 2);
        CHECK_EQ_INT(fl_graph_find_input(g, "image"), -1);
    }
    fl_graph_free(g);
    fl_plan_destroy(&p);
}

/* [privacy]: secure aggregation's keys and what they exclude. */
static void check_secagg(void) {
    const char *base = "[study]\nid = x\nclasses = A,B\nphases = fusion\n"
                       "[fusion]\nmodalities = rna\nstandardize = site\nrna_names = G1\n"
                       "weighted = false\n";
    static const char *const cases[][2] = {
        {"[privacy]\nsecagg = true\nclip_norm = 1\n", NULL},
        {"[privacy]\nsecagg = true\n", "needs clip_norm"},
        {"[privacy]\nclip_norm = 1\n", NULL},
        {"[privacy]\nsecagg_threshold = 3\nclip_norm = 1\n", "secagg is not"},
        {"[privacy]\nsecagg = true\nclip_norm = 1\nsecagg_threshold = 1\n", "secagg_threshold = 1"},
        {"[privacy]\nsecagg = true\nclip_norm = 1\nsecagg_cipher = rot13\n", "aes-ctr, chacha20"},
        {"[privacy]\nsecagg = true\nclip_norm = 1\nmechanism = dp-sgd\nnoise_multiplier = 1\n"
         "sample_rate = 0.1\n",
         "needs update_clip"},
        {"[privacy]\nnoise_multiplier = 1\n", "no mechanism"},
    };
    char buf[1024];
    fl_plan pl;
    fl_err err = {{0}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(buf, sizeof buf, "%s%s", base, cases[i][0]);
        fl_status st = fl_plan_parse(buf, strlen(buf), "p", &pl, &err);
        if (!cases[i][1]) {
            CHECK_OK(st, &err);
        } else {
            CHECK(st != FL_OK);
            CHECK_MSG(err, cases[i][1]);
        }
        if (st == FL_OK) fl_plan_destroy(&pl);
    }
    snprintf(buf, sizeof buf,
             "%s[privacy]\nsecagg = true\nclip_norm = 1\nsecagg_cipher = chacha20\n"
             "secagg_threshold = 3\n",
             base);
    CHECK_OK(fl_plan_parse(buf, strlen(buf), "p", &pl, &err), &err);
    CHECK(pl.privacy.secagg == 1 && pl.privacy.secagg_cipher == 1 &&
          pl.privacy.secagg_threshold == 3);
    fl_plan_destroy(&pl);
    /* example weights and FedBN would reveal or keep what the sum hides */
    const char *bad[] = {"weighted = true\n", "fedbn = true\n"};
    for (int i = 0; i < 2; i++) {
        snprintf(buf, sizeof buf,
                 "[study]\nid = x\nclasses = A,B\nphases = statistics,fusion\n[fusion]\n"
                 "modalities = rna\n%s[privacy]\nsecagg = true\nclip_norm = 1\n",
                 bad[i]);
        CHECK(fl_plan_parse(buf, strlen(buf), "p", &pl, &err) != FL_OK);
    }
}

/* [privacy] eval_noise_multiplier and eval_loss_clip: DP plans noise their evaluation reports by
 * default (z_e 4, L 10, 20 bins at most 50), 0 sends them exact, and neither key without DP. */
static void check_eval_noise(void) {
    const char *base = "[study]\nid = x\nclasses = A,B,C\nphases = fusion\n%s"
                       "[fusion]\nmodalities = rna\nstandardize = site\nrna_names = G1\n"
                       "[privacy]\n%s";
#define SGD "mechanism = dp-sgd\nclip_norm = 1\nnoise_multiplier = 1\nsample_rate = 0.1\n"
#define FEDAVG "mechanism = dp-fedavg\nclip_norm = 1\nnoise_multiplier = 1\ndp_clients = 3\n"
    /* [study] lines, [privacy] lines; then z_e, L, bins as the plan reads them */
    static const struct {
        const char *study, *privacy;
        double z, L;
        int bins;
    } good[] = {
        {"", SGD, 4, 10, 20}, /* the defaults under either mechanism */
        {"", FEDAVG, 4, 10, 20},
        {"bins = 50\n", SGD "eval_noise_multiplier = 2.5\neval_loss_clip = 5\n", 2.5, 5, 50},
        {"bins = 1000\n", SGD "eval_noise_multiplier = 0\n", 0, 10, 1000}, /* exact reports */
        {"", "", 0, 0, 1000},                                              /* no DP */
    };
    char buf[1024], priv[512];
    fl_plan pl;
    fl_err err = {{0}};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        snprintf(buf, sizeof buf, base, good[i].study, good[i].privacy);
        CHECK_OK(fl_plan_parse(buf, strlen(buf), "p", &pl, &err), &err);
        if (fl_test_failures) return;
        CHECK_EQ_INT(fl_plan_eval_noised(&pl), good[i].z > 0);
        CHECK_CLOSE(pl.privacy.eval_noise_multiplier, good[i].z, 0, 0);
        CHECK_CLOSE(pl.privacy.eval_loss_clip, good[i].L, 0, 0);
        CHECK_EQ_INT(pl.bins, good[i].bins);
        /* one patient moves K = 3 histogram counts, the patients, one class's count and the
         * clipped loss: sqrt(K + 3) in units of one count (of L for the loss) */
        CHECK_CLOSE(fl_plan_eval_count_std(&pl), good[i].z * sqrt(6.0), 0, 1e-12);
        CHECK_CLOSE(fl_plan_eval_loss_std(&pl), good[i].z * sqrt(6.0) * good[i].L, 0, 1e-11);
        fl_plan_destroy(&pl);
    }
    const char *sgd = SGD;
#undef SGD
#undef FEDAVG
    /* refused: each key without DP (the first two), and under DP-SGD the rest; the [study]
     * line, the [privacy] lines and the complaint run one after the other */
    static const char *const bad[] = {
        "",
        "eval_noise_multiplier = 4\n",
        "eval_noise_multiplier is only for a DP mechanism",
        "",
        "eval_loss_clip = 4\n",
        "eval_loss_clip is only for a DP mechanism",
        "bins = 51\n",
        "",
        "bins = 51 is too many for noised evaluation reports",
        "",
        "eval_noise_multiplier = -1\n",
        "eval_noise_multiplier '-1' is not a number >= 0",
        "",
        "eval_loss_clip = 0\n",
        "eval_loss_clip '0' is not a number > 0",
        "",
        "eval_noise_multiplier = 0\neval_loss_clip = 3\n",
        "eval_noise_multiplier = 0",
    };
    for (size_t i = 0; i + 2 < sizeof bad / sizeof bad[0]; i += 3) {
        snprintf(priv, sizeof priv, "%s%s", i < 6 ? "" : sgd, bad[i + 1]);
        snprintf(buf, sizeof buf, base, bad[i], priv);
        fl_status st = fl_plan_parse(buf, strlen(buf), "p", &pl, &err);
        CHECK(st == FL_EFORMAT);
        CHECK_MSG(err, bad[i + 2]);
        if (st == FL_OK) fl_plan_destroy(&pl);
    }
}

/* [fusion] standardize: federated by default, site (and only site) under DP, where the plan names
 * the omics features in order and no statistics phase runs. */
static void check_standardize(void) {
    fl_plan p;
    fl_err err = {{0}};
    const char *t = MINIMAL "[fusion]\nmodalities = rna\n";
    CHECK_OK(fl_plan_parse(t, strlen(t), "s.plan", &p, &err), &err);
    CHECK_EQ_INT(p.standardize, FL_STD_FEDERATED);
    CHECK(p.phases & (1u << FL_PHASE_STATISTICS));
    CHECK_EQ_INT(fl_plan_names_of(&p, FL_MODALITY_RNA)->n, 0);
    fl_plan_destroy(&p);
    /* DP: site by default, the statistics phase left out of the default phases, the lists read
     * over repeated lines in order, spaces trimmed */
    t = MINIMAL "[fusion]\nmodalities = image,rna,clinical\nrna_names = TP53 , EGFR,KRAS\n"
                "clinical_names = age\nrna_names = SOX2\n[image]\ntile = 32\n"
                "[privacy]\nmechanism = dp-sgd\nclip_norm = 1\nnoise_multiplier = 1\n"
                "sample_rate = 0.1\n";
    CHECK_OK(fl_plan_parse(t, strlen(t), "s.plan", &p, &err), &err);
    CHECK_EQ_INT(p.standardize, FL_STD_SITE);
    CHECK(!(p.phases & (1u << FL_PHASE_STATISTICS)));
    CHECK_EQ_INT(fl_plan_next_phase(&p, FL_PHASE_NONE), FL_PHASE_IMAGE);
    const fl_plan_names *rna = fl_plan_names_of(&p, FL_MODALITY_RNA);
    CHECK_EQ_INT(rna->n, 4);
    if (rna->n == 4)
        CHECK(!strcmp(rna->v[0], "TP53") && !strcmp(rna->v[1], "EGFR") &&
              !strcmp(rna->v[2], "KRAS") && !strcmp(rna->v[3], "SOX2"));
    CHECK_EQ_INT(fl_plan_names_of(&p, FL_MODALITY_CLINICAL)->n, 1);
    CHECK_EQ_INT(fl_plan_names_of(&p, FL_MODALITY_METHYLATION)->n, 0);
    CHECK(fl_plan_names_of(&p, FL_MODALITY_IMAGE) == NULL);
    fl_plan_destroy(&p);
    /* site standardization without DP, asked for */
    t = MINIMAL "phases = fusion\n[fusion]\nmodalities = rna\nstandardize = site\n"
                "rna_names = A, B\n";
    CHECK_OK(fl_plan_parse(t, strlen(t), "s.plan", &p, &err), &err);
    CHECK_EQ_INT(p.standardize, FL_STD_SITE);
    fl_plan_destroy(&p);
#define DPSGD \
    "[privacy]\nmechanism = dp-sgd\nclip_norm = 1\nnoise_multiplier = 1\nsample_rate = 0.1\n"
    static const char *const bad[][2] = {
        {MINIMAL "[fusion]\nmodalities = rna\nstandardize = federated\n" DPSGD,
         "standardize = federated under differential privacy"},
        {MINIMAL "phases = statistics,fusion\n[fusion]\nmodalities = rna\nrna_names = A\n" DPSGD,
         "phases names statistics"},
        {MINIMAL "[fusion]\nmodalities = rna\nrna_names = A\nrna_features = 10\n" DPSGD,
         "rna_features ranks features"},
        {MINIMAL "[fusion]\nmodalities = rna,methylation\nrna_names = A\n" DPSGD,
         "uses methylation under standardize = site but has no meth_names"},
        {MINIMAL "[fusion]\nmodalities = rna\nrna_names = A\nclinical_names = age\n" DPSGD,
         "clinical_names is set but the fusion model does not use that modality"},
        {MINIMAL "[fusion]\nmodalities = rna\nrna_names = A, B\nrna_names = C, A\n" DPSGD,
         "rna_names names 'A' twice"},
        {MINIMAL "[fusion]\nmodalities = rna\nrna_names = A\n",
         "rna_names is for standardize = site"},
        {MINIMAL "[fusion]\nmodalities = rna\nrna_names = A,,B\n" DPSGD,
         "rna_names has an empty item"},
        {MINIMAL "[fusion]\nstandardize = global\n", "'global' is not one of federated, site"},
    };
#undef DPSGD
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        fl_status st = fl_plan_parse(bad[i][0], strlen(bad[i][0]), "s.plan", &p, &err);
        CHECK(st != FL_OK);
        CHECK_MSG(err, bad[i][1]);
        if (st == FL_OK) fl_plan_destroy(&p);
    }
}

int main(void) {
    if (!fl_test_mkdtemp("test_plan")) return 1;
    check_eval_noise();
    check_standardize();
    check_secagg();
    check_example();
    check_defaults();
    check_model_path();
    check_errors();
    check_graphs();
    fl_test_rmtree(fl_test_dir);
    return fl_test_summary("test_plan");
}
