#!/usr/bin/env bash
# check_train_cli.sh - `fedlung train` and `fedlung eval` from the command line: exit codes
# (0 ok, 1 failure with one sentence, 2 usage), the files eval promises, and that a failed
# command leaves no model file behind; --device and --precision (a GPU that cannot start: exit 1
# and one sentence, before any training).
set -uo pipefail
fedlung=${1:?usage: check_train_cli.sh /path/to/fedlung}
source "$(dirname "$0")/lib.sh"
t_workdir
cd "$work"
t_expect 0 "synth" -- "$fedlung" cohort synth --out c.h5 --patients 60 --tile 32 \
  --tiles-per-patient 2 --genes 80 --probes 100 --seed 2
t_expect 2 "train without --out" -- "$fedlung" train image --cohort c.h5
t_expect 2 "unknown subcommand" -- "$fedlung" train nothing --cohort c.h5 --out m.h5
t_expect 2 "bad modality" -- "$fedlung" train fusion --cohort c.h5 --modalities dna --out f.h5
t_expect 2 "image option on fusion" -- "$fedlung" train fusion --cohort c.h5 --arch resnet50 \
  --out f.h5
t_expect 1 "missing cohort" -- "$fedlung" train image --cohort nope.h5 --out m.h5
grep -q "nope.h5" err.txt || t_fail "the error does not name nope.h5"
head -c 4096 /dev/urandom >junk.h5
t_expect 1 "random bytes as a cohort" -- "$fedlung" train fusion --cohort junk.h5 --out f.h5
t_expect 1 "image modality without a model" -- "$fedlung" train fusion --cohort c.h5 \
  --modalities image --out f.h5
[ -e f.h5 ] && t_fail "a failed train left f.h5"
t_expect 2 "unknown device" -- "$fedlung" train image --cohort c.h5 --out m.h5 --device tpu
grep -q "tpu" err.txt || t_fail "the error does not name tpu"
t_expect 2 "unknown precision" -- "$fedlung" train fusion --cohort c.h5 --out f.h5 \
  --precision fp16
t_expect 2 "tf32 on the cpu" -- "$fedlung" train fusion --cohort c.h5 --out f.h5 \
  --precision tf32 --device cpu
grep -q "needs --device cuda" err.txt || t_fail "the tf32-on-cpu error does not say it needs cuda"
t_expect 2 "bf16 on the default device" -- "$fedlung" train image --cohort c.h5 --out m.h5 \
  --precision bf16
# --device cuda without a usable GPU: exit 1 with one sentence naming cuda, and no model file;
# with one (a GPU machine), the training itself.
for sub in image fusion; do
  out=$sub.h5
  "$fedlung" train $sub --cohort c.h5 --out $out --epochs 1 --quiet --device cuda \
    $([ $sub = fusion ] && echo --modalities rna,clinical) >out.txt 2>err.txt
  rc=$?
  if [ $rc -eq 0 ]; then
    [ -s $out ] || t_fail "train $sub --device cuda exited 0 without $out"
  elif [ $rc -eq 1 ]; then
    [ "$(wc -l <err.txt)" -eq 1 ] || t_fail "train $sub --device cuda: not one line: $(cat err.txt)"
    grep -qi "cuda" err.txt || t_fail "train $sub --device cuda: the error does not mention cuda"
    [ -e $out ] && t_fail "a failed train $sub --device cuda left $out"
  else
    t_fail "train $sub --device cuda exited $rc: $(head -c 300 err.txt)"
  fi
done
t_expect 0 "train fusion" -- "$fedlung" train fusion --cohort c.h5 --modalities rna,clinical \
  --epochs 5 --quiet --out f.h5
t_expect 1 "a cohort is not a model" -- "$fedlung" eval --cohort c.h5 --model c.h5 --out ev
t_expect 0 "eval" -- "$fedlung" eval --cohort c.h5 --model f.h5 --split val --out ev --quiet
for f in metrics.json predictions.csv roc.png pr.png; do
  [ -s "ev/$f" ] || t_fail "eval did not write ev/$f"
done
head -1 ev/predictions.csv | grep -q '^patient_id,label,p_LUAD,p_LUSC,p_NORMAL$' ||
  t_fail "predictions.csv header: $(head -1 ev/predictions.csv)"
t_expect 2 "eval bad split" -- "$fedlung" eval --cohort c.h5 --model f.h5 --split dev --out ev
ls ./*.tmp* ./*partial* >/dev/null 2>&1 && t_fail "temporary files left"
t_summary check_train_cli
