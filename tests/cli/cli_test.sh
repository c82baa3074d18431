#!/usr/bin/env bash
# Drives the `terse` executable for one CTest case: cli_test.sh <case>.
# Environment: TERSE_BIN (the executable) and TERSE_TEST_TMP (a scratch directory), set by
# tests/cli/CMakeLists.txt; TERSE_DATA_DIR (the real Fashion-MNIST files) defaults to the
# Debian package's directory. Exit 77 (CTest: skipped) when a case needs the dataset and it is
# not installed.
set -u
BIN=${TERSE_BIN:?set TERSE_BIN to the terse executable}
TMP_ROOT=${TERSE_TEST_TMP:?set TERSE_TEST_TMP to a scratch directory}
DATA=${TERSE_DATA_DIR:-/usr/share/datasets/fashion-mnist}
CASE=${1:?usage: cli_test.sh <case>}
WORK=$TMP_ROOT/$CASE
REF=$TMP_ROOT/reference  # written by the reference_run fixture
rm -rf "$WORK" && mkdir -p "$WORK"
cd "$WORK" || exit 1

# The happy-path run: 2 ranks, 2048 training images, 2 epochs of 16 steps.
HAPPY=(--np 2 --model cnn --optimizer sgd:lr=0.05,momentum=0.9 --epochs 2 --batch-size 64
       --seed 7 --train-limit 2048 --test-limit 512 --threads 1 --timeout 60)
# One rank, one short epoch: for the error paths that need a started trainer.
RUN_SMALL=(--model mlp --epochs 1 --batch-size 64 --train-limit 512 --test-limit 128 --threads 1
           --quiet)
SMALL=(--np 1 "${RUN_SMALL[@]}")

fail() {
  echo "FAIL [$CASE]: $*" >&2
  for f in out err; do
    [ -f "$WORK/$f" ] && { echo "--- std$f:" >&2; tail -n 40 "$WORK/$f" >&2; }
  done
  exit 1
}

# run SECONDS ARGS...: runs terse with stdout in $WORK/out, stderr in $WORK/err, status in RC.
# A case may change PATH for terse; `timeout` is looked up once, here.
TIMEOUT=$(command -v timeout) || { echo "FAIL [$CASE]: no timeout(1) on PATH" >&2; exit 1; }
run() {
  local seconds=$1 start=$SECONDS
  shift
  "$TIMEOUT" -k 5 "$seconds" "$BIN" "$@" >"$WORK/out" 2>"$WORK/err"
  RC=$?
  echo "+ terse $* -> $RC after $((SECONDS - start)) s" >&2
  # By time, not status: a rank killed on purpose also gives 137 (128 + SIGKILL).
  [ $((SECONDS - start)) -lt "$seconds" ] || fail "terse $* ran past ${seconds}s"
}
expect_rc() { [ "$RC" -eq "$1" ] || fail "exit status $RC, expected $1"; }
expect_err() { grep -Eq -- "$1" "$WORK/err" || fail "stderr does not match /$1/"; }
expect_out() { grep -Eq -- "$1" "$WORK/out" || fail "stdout does not match /$1/"; }
# expect_invalid REGEX ARGS...: `terse ARGS` exits 2 and stderr matches REGEX.
expect_invalid() {
  local regex=$1
  shift
  run 60 "$@"
  expect_rc 2
  expect_err "$regex"
}
# The final-metrics rows of a summary on stdout (wall time and timings differ run to run).
final_rows() { grep -E '^  final ' "$1"; }
# The last epoch record of a metrics file without its timing fields.
last_epoch_record() {
  python3 - "$1" <<'PY'
import json, sys
records = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
epochs = [r for r in records if r.get("type") == "epoch"]
last = epochs[-1]
print(json.dumps({k: v for k, v in last.items() if "time" not in k and "wall" not in k},
                 sort_keys=True))
PY
}
# Empty stand-ins: enough for the checks that run before any file is read.
fake_dataset() {
  mkdir -p "$WORK/fake-data"
  for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte \
           t10k-labels-idx1-ubyte; do
    : >"$WORK/fake-data/$f.gz"
  done
  echo "$WORK/fake-data"
}
copy_dataset() {
  mkdir -p "$WORK/data"
  cp "$DATA"/*.gz "$WORK/data/" || fail "cannot copy the dataset from $DATA"
}

case "$CASE" in
  help | version | info | no_command | unknown_flag | bad_values | resume_needs_checkpoint_dir | \
    unknown_optimizer | unknown_option | out_of_range | bad_lr_schedule | missing_dataset | \
    bad_fault_env | bad_compress | bad_lookahead_ema) ;;  # these fail (or finish) before the dataset is looked at
  *)
    [ -f "$DATA/train-images-idx3-ubyte.gz" ] || {
      echo "SKIP [$CASE]: no Fashion-MNIST in $DATA (apt-get install dataset-fashion-mnist)" >&2
      exit 77
    }
    ;;
esac

case "$CASE" in
  help)
    run 30 --help
    expect_rc 0
    expect_out 'train' && expect_out 'info'
    run 30 train --help
    expect_rc 0
    expect_out 'Exit status: 0 ok, 1 other error, 2 invalid argument, 3 corrupt data, 4 .*5 timeout'
    for flag in --np --model --optimizer --lr-schedule --epochs --batch-size --seed --data-dir \
                --checkpoint-dir --resume --metrics --bucket-mb --timeout --threads \
                --train-limit --test-limit --quiet --device --backend; do
      expect_out "^ *(-[a-z], *)?$flag"
    done
    ;;
  version)
    run 30 --version
    expect_rc 0
    expect_out '^terse [0-9]+\.[0-9]+\.[0-9]+$'
    ;;
  info)
    run 30 info
    expect_rc 0
    for key in 'terse: [0-9]+\.[0-9]+\.[0-9]+' 'build type: ' 'compiler: ' \
               'c\+\+ standard: C\+\+(17|20)' 'libtorch: [0-9]+\.[0-9]+' 'mpi: (Open MPI|not built)' \
               'nccl: (built \(library 2\.[0-9]+\.[0-9]+\)|not built)' \
               'cuda: (built|not built)' 'cuda devices: [0-9]+' \
               'openmp threads: ([0-9]+|not built)' 'simd: '; do
      expect_out "^$key"
    done
    ;;
  no_command)
    run 30
    expect_rc 2
    expect_err 'subcommand'
    ;;
  unknown_flag)
    expect_invalid 'not expected.*--bogus' train --bogus 3
    expect_invalid 'not expected' info --verbose
    ;;
  bad_values)
    expect_invalid '--np' train --np 0
    expect_invalid '--np' train --np two
    expect_invalid '--epochs' train --epochs 0
    expect_invalid '--epochs' train --epochs 1.5
    expect_invalid '--batch-size' train --batch-size -4
    expect_invalid '--model' train --model resnet
    expect_invalid '--timeout' train --timeout 0
    expect_invalid '--bucket-mb' train --bucket-mb 0
    expect_invalid '--threads' train --threads -1
    expect_invalid '--train-limit' train --train-limit -5
    expect_invalid '--seed' train --seed -1
    expect_invalid '--device' train --device tpu
    expect_invalid '--backend' train --backend gloo
    expect_invalid 'nccl backend all-reduces GPU memory; pass --device cuda' train --backend nccl \
      --data-dir "$(fake_dataset)"
    if ! nvidia-smi -L >/dev/null 2>&1; then
      expect_invalid '--device cuda: (libtorch sees no CUDA device|this terse was built without)' \
        train --device cuda --data-dir "$(fake_dataset)"
    fi
    expect_invalid '--batch-size 64 x 1 rank = 64.*only 32' train --train-limit 32 --np 1
    expect_invalid '--metrics.*does not exist' train --metrics "$WORK/no/such/dir/m.jsonl" \
      --data-dir "$(fake_dataset)"
    ;;
  resume_needs_checkpoint_dir)
    expect_invalid '--resume requires --checkpoint-dir' train --resume
    expect_invalid 'checkpoint directory .* does not exist' train --resume \
      --checkpoint-dir "$WORK/none" --data-dir "$(fake_dataset)"
    ;;
  unknown_optimizer)
    expect_invalid "unknown optimizer.*'?sgdx'?.*sgd" train --optimizer sgdx:lr=0.1
    ;;
  unknown_option)
    expect_invalid "foo.*(lr|momentum)" train --optimizer sgd:lr=0.1,foo=1
    ;;
  out_of_range)
    expect_invalid 'lr' train --optimizer sgd:lr=-1
    expect_invalid 'momentum' train --optimizer sgd:lr=0.1,momentum=1.5
    ;;
  bad_compress)
    expect_invalid "nosuch" train --compress nosuch
    expect_invalid "density" train --compress topk:density=2
    expect_invalid "bogus" train --compress dgc:bogus=1
    expect_invalid "warmup_steps" train --compress dgc:warmup=paper
    expect_invalid "--compress dgc needs --optimizer sgd" train --compress dgc --optimizer adam
    expect_invalid "--feedback ef21 needs a compressor" train --feedback ef21
    expect_invalid "ef99" train --compress topk:density=0.1 --feedback ef99
    expect_invalid "own error memory" train --compress powersgd --feedback ef14
    ;;
  onebit_adam_run)
    # 1-bit Adam on 2 ranks over MPI: dense warm-up (8 steps), then the 1-bit momentum; its
    # options are checked before the launch, and it refuses to stack with --compress.
    run 200 train "${HAPPY[@]}" --model mlp \
      --optimizer onebit_adam:lr=0.001,freeze_step=8,bias_correction=true,eps=1e-6 \
      --metrics "$WORK/m.jsonl" --epochs 1
    expect_rc 0
    python3 - "$WORK/m.jsonl" <<'PY' || fail "1-bit Adam metrics check failed"
import json, sys
steps = [json.loads(l) for l in open(sys.argv[1]) if '"type":"step"' in l]
assert len(steps) == 16, len(steps)
for r in steps[:8]:
    assert r["payload_bytes"] == r["payload_dense_bytes"], r
for r in steps[8:]:
    assert r["compression_ratio"] > 20 and r["wire_ratio"] > 25, r
PY
    expect_invalid "freeze_step" train "${HAPPY[@]}" --optimizer onebit_adam:lr=0.001
    expect_invalid "compresses its own communication" train "${HAPPY[@]}" \
      --optimizer onebit_adam:lr=0.001,freeze_step=8 --compress topk:density=0.01
    expect_invalid "onebit_adam" train "${HAPPY[@]}" --optimizer onebitadam:lr=0.001
    ;;
  compressed_run)
    # DGC on 2 ranks: the summary names the exchange and a ratio far above 1, the metrics
    # carry the message and wire bytes, and the checkpoint resumes under the same exchange only.
    run 200 train "${HAPPY[@]}" --compress dgc:density=0.01,values=f16,warmup=paper,warmup_steps=4 \
      --metrics "$WORK/m.jsonl" --checkpoint-dir "$WORK/ckpt" --epochs 1
    expect_rc 0
    expect_out '^  gradient exchange +dgc:density=0.01,values=f16,.*4 compressed tensors'
    expect_out '^  compression ratio +([2-9][0-9]|[1-9][0-9]{2,})\.[0-9]+x$'
    python3 - "$WORK/m.jsonl" <<'PY' || fail "compressed metrics check failed"
import json, sys
steps = [json.loads(l) for l in open(sys.argv[1]) if '"step"' in l and '"type":"step"' in l]
assert len(steps) == 16, len(steps)
for r in steps:
    assert r["payload_dense_bytes"] == 4 * 421642, r
    assert 0 < r["payload_bytes"] < r["payload_dense_bytes"], r
    assert abs(r["compression_ratio"] - r["payload_dense_bytes"] / r["payload_bytes"]) < 1e-9
    assert "time_compress_s" in r and "wire_ratio" in r
# The warm-up: the first steps send more than the last.
assert steps[0]["payload_bytes"] > 10 * steps[-1]["payload_bytes"], (steps[0], steps[-1])
PY
    expect_invalid "gradient exchange" train "${HAPPY[@]}" --compress topk:density=0.01 \
      --checkpoint-dir "$WORK/ckpt" --resume --epochs 2
    ;;
  bad_lookahead_ema)
    expect_invalid 'decay must be in \[0, 1\).*got 1' train --ema decay=1
    expect_invalid "unknown option 'foo'.*decay, warmup" train --ema foo=1
    expect_invalid "'decay' is not key=value" train --ema decay
    expect_invalid 'k must be an integer >= 1' train --optimizer lookahead:inner=sgd,k=0
    expect_invalid 'alpha must be in \(0, 1\]' train --optimizer lookahead:inner=sgd,alpha=2
    expect_invalid "lookahead \(inner=adam\).*unknown option 'foo'" train \
      --optimizer lookahead:inner=adam,foo=1
    ;;
  ema_run)
    # Lookahead around SGD with an EMA: both accuracies reported, EMA fields in the epoch
    # records, the EMA saved and resumed; resuming with --ema needs a checkpoint that has one.
    run 120 train "${SMALL[@]}" --epochs 2 \
      --optimizer lookahead:inner=sgd,k=3,alpha=0.5,lr=0.05,momentum=0.9 \
      --ema decay=0.9,warmup=true --metrics "$WORK/m.jsonl" --checkpoint-dir "$WORK/ckpt"
    expect_rc 0
    expect_out '^  final test accuracy +0\.[0-9]{4} '
    expect_out '^  final EMA test accuracy +0\.[0-9]{4} '
    expect_out '^  final EMA test loss +[0-9.]+$'
    expect_out '^  EMA memory +[0-9.]+ (KiB|MiB)$'
    python3 - "$WORK/m.jsonl" <<'PY' || fail "EMA metrics check failed"
import json, sys
epochs = [json.loads(l) for l in open(sys.argv[1]) if '"type":"epoch"' in l]
assert len(epochs) == 2, epochs
for e in epochs:
    assert 0 < e["ema_test_accuracy"] <= 1 and e["ema_test_loss"] > 0, e
assert epochs[-1]["ema_test_loss"] != epochs[-1]["test_loss"], epochs[-1]
PY
    run 120 train "${SMALL[@]}" --epochs 3 \
      --optimizer lookahead:inner=sgd,k=3,alpha=0.5,lr=0.05,momentum=0.9 \
      --ema decay=0.9,warmup=true --checkpoint-dir "$WORK/ckpt" --resume
    expect_rc 0
    expect_out '^  epochs +3 \(resumed after epoch 2\)$'
    expect_out '^  final EMA test accuracy +0\.[0-9]{4} '
    run 120 train "${SMALL[@]}" --checkpoint-dir "$WORK/plain"
    expect_rc 0
    expect_invalid 'written without --ema' train "${SMALL[@]}" --epochs 2 --ema decay=0.9 \
      --checkpoint-dir "$WORK/plain" --resume
    ;;
  bad_lr_schedule)
    expect_invalid "unknown lr schedule 'wiggly'" train --lr-schedule wiggly
    expect_invalid 'step_size' train --lr-schedule step:step_size=0
    ;;
  lm_run)
    # The byte-level language model on the Jargon File, 2 ranks, 2 short epochs: LM summary
    # rows, LM fields in the epoch records, and learning (validation loss below ln 256 = 5.55).
    [ -f /usr/share/doc/jargon-text/jargon.txt.gz ] || { echo "jargon-text not installed" >&2; exit 77; }
    run 120 train --np 2 --model lm --context 32 --batch-size 16 --epochs 2 --train-limit 512 \
      --test-limit 64 --optimizer adam:lr=0.003 --seed 3 --threads 1 --metrics "$WORK/m.jsonl"
    expect_rc 0
    expect_err 'training lm with adam:lr=0.003 on 2 ranks, 2 epochs of 16 steps'
    expect_err 'epoch 2/2 done: .*val loss [0-9.]+  perplexity [0-9.]+  bits/byte [0-9.]+'
    expect_out '^  final validation loss +[0-9.]+ nats/byte$'
    expect_out '^  perplexity +[0-9.]+$'
    expect_out '^  bits per byte +[0-9.]+$'
    expect_out '^  text +/usr/share/doc/jargon-text/jargon.txt.gz$'
    python3 - "$WORK/m.jsonl" <<'PY' || fail "LM metrics check failed"
import json, math, sys
epochs = [json.loads(l) for l in open(sys.argv[1]) if '"type":"epoch"' in l]
assert len(epochs) == 2, epochs
for e in epochs:
    assert e["val_loss"] == e["test_loss"], e
    assert abs(e["perplexity"] - math.exp(e["val_loss"])) < 1e-9 * e["perplexity"], e
    assert abs(e["bits_per_byte"] - e["val_loss"] / math.log(2)) < 1e-12, e
assert epochs[-1]["val_loss"] < 4.0, epochs[-1]
assert epochs[-1]["val_loss"] < epochs[0]["val_loss"], epochs
PY
    ;;
  lm_bad_text)
    # Checked before any rank starts: missing, truncated gzip, binary, too short for the context.
    expect_invalid 'text corpus /nonexistent/t.gz not found: install the Debian package jargon-text.*--text' \
      train --np 2 --model lm --text /nonexistent/t.gz
    python3 -c 'import gzip,sys; sys.stdout.buffer.write(gzip.compress(b"hello world. " * 4000))' > t.gz
    truncate -s 100 t.gz
    run 30 train --np 2 --model lm --text "$WORK/t.gz"
    expect_rc 3
    expect_err '^terse: error: gzip file .*t.gz is truncated'
    printf 'text\0more text' > bin.txt
    run 30 train --model lm --text "$WORK/bin.txt"
    expect_rc 3
    expect_err 'text corpus .*bin.txt has a NUL byte at offset 4'
    printf 'far too short for a context of 64 bytes\n' > short.txt
    expect_invalid 'short.txt holds 40 bytes: 36 for training and 4 for validation, but each needs at least 65' \
      train --model lm --text "$WORK/short.txt"
    ;;
  missing_dataset)
    expect_invalid 'dataset-fashion-mnist.*--data-dir|--data-dir.*dataset-fashion-mnist' \
      train --data-dir /nonexistent
    ;;
  bad_fault_env)
    TERSE_TEST_KILL_RANK=one TERSE_TEST_KILL_STEP=3 run 30 train
    expect_rc 2
    expect_err 'TERSE_TEST_KILL_RANK'
    TERSE_TEST_KILL_RANK=1 run 30 train
    expect_rc 2
    expect_err 'TERSE_TEST_KILL_STEP'
    ;;
  missing_mpirun)
    PATH=/nonexistent run 30 train --np 2
    expect_rc 1
    expect_err 'mpirun.*apt-get install openmpi-bin'
    ;;
  truncated_idx)
    copy_dataset
    size=$(stat -c %s data/train-images-idx3-ubyte.gz)
    truncate -s $((size / 2)) data/train-images-idx3-ubyte.gz
    run 120 train "${SMALL[@]}" --data-dir "$WORK/data"
    expect_rc 3
    expect_err 'terse: error: .*train-images-idx3-ubyte'
    ;;
  corrupt_idx)
    # A label of 200 (valid ones are 0..9) in the training labels; two ranks, so the error also
    # has to end the whole MPI job with the right status.
    copy_dataset
    python3 - data/train-labels-idx1-ubyte.gz <<'PY' || fail "cannot corrupt the labels"
import gzip, sys
raw = bytearray(gzip.open(sys.argv[1]).read())
raw[8 + 5] = 200
gzip.open(sys.argv[1], "wb").write(bytes(raw))
PY
    run 120 train "${SMALL[@]}" --np 2 --data-dir "$WORK/data"
    expect_rc 3
    expect_err 'terse: error: rank [01]: .*train-labels-idx1-ubyte'
    ;;
  resume_mismatch)
    run 120 train "${SMALL[@]}" --checkpoint-dir "$WORK/ckpt"
    expect_rc 0
    # Another model.
    run 120 train "${SMALL[@]}" --model cnn --epochs 2 --checkpoint-dir "$WORK/ckpt" --resume
    [ "$RC" -eq 2 ] || [ "$RC" -eq 3 ] || fail "exit status $RC, expected 2 or 3"
    expect_err 'terse: error: .*model.*mlp.*cnn|terse: error: .*model.*cnn.*mlp'
    # Another rank count.
    run 120 train "${SMALL[@]}" --np 2 --epochs 2 --checkpoint-dir "$WORK/ckpt" --resume
    [ "$RC" -eq 2 ] || [ "$RC" -eq 3 ] || fail "exit status $RC, expected 2 or 3"
    expect_err 'terse: error: .*rank.*1.*2|terse: error: .*rank.*2.*1'
    ;;
  nan_loss)
    run 120 train "${SMALL[@]}" --optimizer sgd:lr=1e6
    expect_rc 4
    expect_err 'terse: error: .*step [0-9]+'
    # Diverge in epoch 2 (lr x 1e7 after 8 steps): the epoch-1 checkpoint must survive and resume.
    run 120 train "${SMALL[@]}" --epochs 2 --optimizer sgd:lr=0.05 \
      --lr-schedule step:step_size=8,gamma=1e7 --checkpoint-dir "$WORK/ckpt"
    expect_rc 4
    expect_err 'terse: error: .*step (9|1[0-6])'
    [ -n "$(ls -A "$WORK/ckpt" 2>/dev/null)" ] || fail "no checkpoint left in $WORK/ckpt"
    run 120 train "${SMALL[@]}" --epochs 2 --optimizer sgd:lr=0.05 --checkpoint-dir "$WORK/ckpt" \
      --resume
    expect_rc 0
    expect_out 'resumed after epoch 1'
    ;;
  rank_dies)
    start=$(date +%s)
    TERSE_TEST_KILL_RANK=1 TERSE_TEST_KILL_STEP=3 run 120 train "${SMALL[@]}" --np 4 \
      --batch-size 16 --timeout 20
    [ "$RC" -ne 0 ] || fail "the job exited 0 although rank 1 died"
    grep -Eq 'rank 1' "$WORK/err" "$WORK/out" || fail "the output does not name rank 1"
    echo "job ended $(( $(date +%s) - start )) s after the start" >&2
    ;;
  rank_hangs)
    # Rank 1 stops at step 3; rank 0 must give up after --timeout, say so, and end the job (5).
    TERSE_TEST_KILL_MODE=stall TERSE_TEST_KILL_RANK=1 TERSE_TEST_KILL_STEP=3 run 60 train \
      "${SMALL[@]}" --np 2 --timeout 3
    expect_rc 5
    expect_err 'TERSE_TEST_KILL: rank 1 stalls'
    expect_err 'terse: error: rank 0: .*within 3 s'
    ;;
  under_mpirun)
    # Started by mpirun directly (the multi-node way): no --np, or an --np that matches.
    root=()
    [ "$(id -u)" -eq 0 ] && root=(--allow-run-as-root)
    mpirun_run() {
      local start=$SECONDS
      "$TIMEOUT" -k 5 100 mpirun -n 2 --oversubscribe --bind-to none "${root[@]}" "$BIN" "$@" \
        >"$WORK/out" 2>"$WORK/err"
      RC=$?
      echo "+ mpirun -n 2 terse $* -> $RC after $((SECONDS - start)) s" >&2
    }
    mpirun_run train "${RUN_SMALL[@]}"
    expect_rc 0
    expect_out '^  ranks +2$'
    mpirun_run train "${RUN_SMALL[@]}" --np 2
    expect_rc 0
    mpirun_run train "${RUN_SMALL[@]}" --np 3
    expect_rc 2
    expect_err '--np 3 but mpirun started 2 ranks'
    ;;
  tty_progress)
    # On a terminal the bar is redrawn in place with \r, also through the mpirun that --np 2
    # starts (which gives the ranks a pipe for stderr); TERSE_PROGRESS_TTY=0 turns it into lines.
    command -v script >/dev/null || fail "script(1) from util-linux is needed"
    on_terminal() {
      "$TIMEOUT" -k 5 100 script -qec "'$BIN' train $* --model mlp --epochs 1 --train-limit 1024 \
        --test-limit 128 --threads 1" /dev/null >"$WORK/out" 2>"$WORK/err"
      RC=$?
    }
    on_terminal --np 2
    expect_rc 0
    grep -q $'\repoch 1/1 \[=*' out || fail "no bar redrawn with \\r on the terminal"
    expect_out 'epoch 1/1 done: '
    expect_out '^  final test accuracy '
    TERSE_PROGRESS_TTY=0 on_terminal --np 1
    expect_rc 0
    ! grep -q $'\repoch' out || fail "TERSE_PROGRESS_TTY=0 still drew a bar"
    expect_out '^epoch 1/1 step 2/16 '
    ;;
  reference_run)
    # Fixture: the uninterrupted run the happy-path cases compare against.
    rm -rf "$REF" && mkdir -p "$REF"
    run 150 train "${HAPPY[@]}" --metrics "$REF/metrics.jsonl" --checkpoint-dir "$REF/ckpt"
    cp out "$REF/out" && cp err "$REF/err"
    expect_rc 0
    expect_err '^epoch 1/2 step [0-9]+/16'
    expect_err '^epoch 2/2 done: train loss [0-9.]+ +test loss [0-9.]+ +test accuracy 0\.[0-9]+'
    for row in model optimizer ranks epochs steps 'final test accuracy' 'final test loss' \
               'wall time' 'gradient exchange' 'message bytes per rank' 'compression ratio' \
               'wire bytes sent per rank' 'time compute/comm/compress/optim' \
               'optimizer state memory'; do
      expect_out "^  $row "
    done
    expect_out '^  ranks +2$'
    expect_out '^  steps +32$'
    ;;
  metrics_file)
    python3 - "$REF/metrics.jsonl" <<'PY' || fail "metrics file check failed"
import json, math, sys
records = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
steps = [r for r in records if r.get("type") == "step"]
epochs = [r for r in records if r.get("type") == "epoch"]
assert len(steps) == 32, f"{len(steps)} step records, expected 32"
assert len(epochs) == 2, f"{len(epochs)} epoch records, expected 2"
step_keys = {"step", "epoch", "loss", "lr", "bytes_sent", "bytes_dense", "compression_ratio",
             "time_compute_s", "time_comm_s", "time_optim_s"}
epoch_keys = {"epoch", "step", "loss", "test_loss", "test_accuracy", "wall_s", "bytes_sent",
              "bytes_dense", "compression_ratio"}
for r in steps:
    missing = step_keys - r.keys()
    assert not missing, f"step record {r} lacks {missing}"
    assert math.isfinite(r["loss"]) and r["loss"] > 0, r
    assert r["lr"] > 0 and r["bytes_dense"] > 0 and r["bytes_sent"] > 0, r
    assert r["compression_ratio"] > 0 and min(r[k] for k in step_keys if "time" in k) >= 0, r
assert [r["step"] for r in steps] == list(range(1, 33)), "steps are not 1..32 in order"
for r in epochs:
    missing = epoch_keys - r.keys()
    assert not missing, f"epoch record {r} lacks {missing}"
    assert 0 <= r["test_accuracy"] <= 1, r
    assert math.isfinite(r["test_loss"]) and r["test_loss"] > 0, r
    assert math.isfinite(r["loss"]) and r["loss"] > 0, r
    assert r["bytes_dense"] > 0 and r["wall_s"] > 0, r
assert [r["epoch"] for r in epochs] == [1, 2] and epochs[-1]["step"] == 32, epochs
# 2 epochs of SGD with momentum on 2048 images: clearly better than chance (0.1).
assert epochs[-1]["test_accuracy"] > 0.4, epochs[-1]
print("metrics ok:", json.dumps(epochs[-1]))
PY
    ;;
  same_seed)
    run 150 train "${HAPPY[@]}" --metrics "$WORK/metrics.jsonl" --quiet
    expect_rc 0
    [ ! -s err ] || fail "--quiet printed progress on stderr"
    [ "$(final_rows out)" = "$(final_rows "$REF/out")" ] || fail "final rows differ from the \
reference run: $(final_rows out) VS $(final_rows "$REF/out")"
    [ "$(last_epoch_record metrics.jsonl)" = "$(last_epoch_record "$REF/metrics.jsonl")" ] ||
      fail "last epoch records differ from the reference run"
    ;;
  resume)
    # Killed at the first step of epoch 2 (step 17), then resumed: the same final metrics as the
    # uninterrupted reference run.
    TERSE_TEST_KILL_RANK=0 TERSE_TEST_KILL_STEP=17 run 150 train "${HAPPY[@]}" --quiet \
      --checkpoint-dir "$WORK/ckpt" --metrics "$WORK/metrics.jsonl"
    [ "$RC" -ne 0 ] || fail "the killed run exited 0"
    expect_err 'TERSE_TEST_KILL: rank 0 .* step 17'
    run 150 train "${HAPPY[@]}" --quiet --checkpoint-dir "$WORK/ckpt" --resume \
      --metrics "$WORK/metrics.jsonl"
    expect_rc 0
    expect_out 'resumed after epoch 1'
    [ "$(final_rows out)" = "$(final_rows "$REF/out")" ] || fail "final rows differ from the \
reference run: $(final_rows out) VS $(final_rows "$REF/out")"
    [ "$(last_epoch_record metrics.jsonl)" = "$(last_epoch_record "$REF/metrics.jsonl")" ] ||
      fail "last epoch records differ from the reference run"
    ;;
  *)
    fail "unknown case '$CASE'"
    ;;
esac
echo "PASS [$CASE]"
