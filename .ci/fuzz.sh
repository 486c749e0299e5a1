#!/usr/bin/env bash
# Harness 7, `fuzz`: replays the fuzz corpus and the regressions as an ordinary test, then runs
# each cargo-fuzz target (fuzz/fuzz_targets/) for FUZZ_SECONDS seconds (default 60, multiplied by
# SOFTADASTRA_WAL_SOAK), and prints
#
#     reliability: fuzz cases=<runs of all targets> violations=<crashes + failing replays>
#
# It exits non-zero on any crash (a panic, a hang past the timeout, running out of memory) and
# says where the input that caused it was written. Run from anywhere: `bash .ci/fuzz.sh`.
#
# A crash becomes a regression: copy its input into fuzz/regressions/<target>/ (the replay test
# then runs it every time) and look at it with
#     cargo run --manifest-path fuzz/Cargo.toml --bin materialize -- <target> <input> <dir>
#
# The toolchain is stable: cargo-fuzz needs nightly flags, which RUSTC_BOOTSTRAP=1 allows.
set -euo pipefail
cd "$(dirname "$0")/.."

targets=(record_decoder segment_loader recovery)

fuzz_seconds=${FUZZ_SECONDS:-60}
soak=${SOFTADASTRA_WAL_SOAK:-1}
for value in "$fuzz_seconds" "$soak"; do
    if ! [[ "$value" =~ ^[0-9]+$ ]] || [ "$value" -eq 0 ]; then
        echo "fuzz.sh: FUZZ_SECONDS and SOFTADASTRA_WAL_SOAK must be positive integers" >&2
        exit 2
    fi
done
seconds=$((fuzz_seconds * soak))

export RUSTC_BOOTSTRAP=1
export CARGO_TERM_COLOR=never

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/sawal-fuzz-run.XXXXXX")
trap 'rm -rf "$work"' EXIT

violations=0
cases=0

# --- the corpus and the regressions, as an ordinary test -------------------------------------
echo "== fuzz: replaying the corpus and the regressions (cargo test)"
set +e
cargo test --manifest-path fuzz/Cargo.toml -- --nocapture >"$work/replay.log" 2>&1
replay_rc=$?
set -e
replayed=$(grep -oE '^replay: inputs=[0-9]+ failures=[0-9]+' "$work/replay.log" | tail -n 1 || true)
echo "${replayed:-replay: no result line}"
if [ "$replay_rc" -ne 0 ]; then
    failed=$(sed -nE 's/^replay: inputs=[0-9]+ failures=([0-9]+)$/\1/p' "$work/replay.log" | tail -n 1)
    # A failure other than a replayed input (a build error, a generator test) counts as one.
    violations=$((violations + ${failed:-0}))
    [ "${failed:-0}" -gt 0 ] || violations=$((violations + 1))
    echo "fuzz: the replay test failed:" >&2
    grep -E '^(/|test |thread |violations:|error)' "$work/replay.log" | head -n 40 >&2 || true
fi

# --- fuzzing ---------------------------------------------------------------------------------
echo "== fuzz: building the targets (cargo fuzz build)"
cargo fuzz build --debug-assertions >"$work/build.log" 2>&1 || {
    tail -n 40 "$work/build.log" >&2
    echo "fuzz.sh: cargo fuzz build failed" >&2
    exit 1
}

# libFuzzer's count of executed inputs: its final stats, else its "Done" line, else the last
# status line (a crash can cut the run short).
runs_of() {
    local log=$1 n
    n=$(sed -nE 's/^stat::number_of_executed_units: *([0-9]+)$/\1/p' "$log" | tail -n 1)
    [ -n "$n" ] || n=$(sed -nE 's/^Done ([0-9]+) runs.*/\1/p' "$log" | tail -n 1)
    [ -n "$n" ] || n=$(sed -nE 's/^#([0-9]+)[[:space:]].*/\1/p' "$log" | tail -n 1)
    echo "${n:-0}"
}

for target in "${targets[@]}"; do
    echo "== fuzz: $target for ${seconds}s"
    # New inputs go to a scratch directory: the committed corpus is only read.
    mkdir -p "$work/corpus-$target" "fuzz/artifacts/$target"
    log="$work/$target.log"
    set +e
    cargo fuzz run --debug-assertions "$target" "$work/corpus-$target" "fuzz/corpus/$target" -- \
        -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2048 -print_final_stats=1 \
        >"$log" 2>&1
    rc=$?
    set -e
    runs=$(runs_of "$log")
    cases=$((cases + runs))
    echo "$target: $runs runs, exit code $rc"
    if [ "$rc" -ne 0 ]; then
        violations=$((violations + 1))
        echo "fuzz: $target crashed; the end of its log:" >&2
        grep -vE '^#[0-9]+' "$log" | tail -n 30 >&2
        where=$(grep -oE 'Test unit written to .*' "$log" | tail -n 1 | sed 's/^Test unit written to //')
        if [ -n "$where" ]; then
            echo "fuzz: the crash input is $where" >&2
            echo "fuzz: replay it with: cargo fuzz run $target $where  (RUSTC_BOOTSTRAP=1)," >&2
            echo "fuzz: keep it as a regression: cp $where fuzz/regressions/$target/" >&2
        fi
    fi
done

echo "reliability: fuzz cases=$cases violations=$violations"
[ "$violations" -eq 0 ]
