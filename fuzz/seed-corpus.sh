#!/usr/bin/env bash
# Builds fuzz/corpus/<target>/ from the committed seeds (fuzz/seeds/) and
# the shared test data (KILN_TESTDATA, default ../shared/testdata beside
# the repository). Gzipped inputs are added inflated (the fuzzer mutates
# the parser's bytes, not deflate's) and, when small, also as they are.
# Idempotent: files are only added or overwritten, so the inputs the
# fuzzer found before stay in the corpus.
set -euo pipefail
cd "$(dirname "$0")"

if [ -z "${KILN_TESTDATA:-}" ]; then
  for d in ../../shared/testdata ../../../shared/testdata /work/shared/testdata; do
    if [ -d "$d/pprof" ]; then KILN_TESTDATA="$(cd "$d" && pwd)"; break; fi
  done
fi
td="${KILN_TESTDATA:-}"
if [ -z "$td" ] || [ ! -d "$td/pprof" ]; then
  echo "test data not found: set KILN_TESTDATA to the shared testdata directory" >&2
  exit 1
fi

targets=(pprof jfr folded speedscope legacy_tree otlp connect_json selector ingest_params decompress)
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t"
  if [ -d "seeds/$t" ]; then cp -f seeds/"$t"/* "corpus/$t/" 2>/dev/null || true; fi
done

# Largest input taken from the test data, after inflation.
max_bytes=$((8 << 20))

name_of() { # path relative to the test data -> corpus file name
  local rel="${1#"$td"/}"
  echo "td-${rel//\//_}"
}

is_gzip() { [ "$(head -c2 "$1" | od -An -tx1 | tr -d ' \n')" = "1f8b" ]; }

# add TARGET FILE: the file inflated if gzip (and as is too when small).
add() {
  local target=$1 file=$2 out
  out="corpus/$target/$(name_of "$file")"
  if is_gzip "$file"; then
    gzip -dc "$file" 2>/dev/null | head -c $((max_bytes + 1)) > "$out.raw" || true
    if [ "$(stat -c %s "$out.raw")" -gt "$max_bytes" ]; then rm -f "$out.raw"; fi
    if [ "$(stat -c %s "$file")" -le 65536 ]; then cp -f "$file" "$out"; fi
  elif [ "$(stat -c %s "$file")" -le "$max_bytes" ]; then
    cp -f "$file" "$out"
  fi
}

le32() {
  local n=$1
  printf "$(printf '\\x%02x\\x%02x\\x%02x\\x%02x' $((n & 255)) $(((n >> 8) & 255)) $(((n >> 16) & 255)) $(((n >> 24) & 255)))"
}

# join TARGET NAME FIRST SECOND: a two-part input (see split_second_part in
# fuzz/src/lib.rs), both parts inflated.
join() {
  local target=$1 name=$2 first=$3 second=$4 tmp
  tmp=$(mktemp)
  gzip -dcf "$second" > "$tmp"
  { gzip -dcf "$first"; cat "$tmp"; le32 "$(stat -c %s "$tmp")"; printf 'KLBL'; } > "corpus/$target/$name"
  rm -f "$tmp"
}

shopt -s nullglob globstar
for f in "$td"/pprof/** "$td"/captured/*.pb.gz "$td"/captured/*.pprof.gz "$td"/jfr/pyroscope/*.pb.gz; do
  [ -f "$f" ] || continue
  case "$f" in *.json|*.fixed) continue ;; esac
  add pprof "$f"
done
for st in "$td"/pprof/*.st.json; do
  p="${st%.st.json}"
  for candidate in "$p.pprof" "$p.pb.gz"; do
    if [ -f "$candidate" ]; then join pprof "td-$(basename "$p")-with-config" "$candidate" "$st"; fi
  done
done

for f in "$td"/jfr/**/*.jfr.gz "$td"/jfr/**/jfr.bin.gz "$td"/captured/*.jfr; do add jfr "$f"; done
[ -f "$td/jfr/pyroscope/dump1.labels.pb.gz" ] &&
  join jfr td-dump1-with-labels "$td/jfr/pyroscope/dump1.jfr.gz" "$td/jfr/pyroscope/dump1.labels.pb.gz"
[ -f "$td/jfr/pyroscope/dump2.labels.pb.gz" ] &&
  join jfr td-dump2-with-labels "$td/jfr/pyroscope/dump2.jfr.gz" "$td/jfr/pyroscope/dump2.labels.pb.gz"
[ -f "$td/jfr/og-with-labels/labels.proto.bin" ] &&
  join jfr td-og-with-labels "$td/jfr/og-with-labels/jfr.bin.gz" "$td/jfr/og-with-labels/labels.proto.bin"

for f in "$td"/collapsed/* "$td"/captured/*.folded "$td"/jfr/og-no-labels/*.txt \
  "$td"/jfr/jfr-parser/*collapsed.txt.gz; do
  add folded "$f"
done
for f in "$td"/speedscope/*.json; do add speedscope "$f"; done
for f in "$td"/tree/*; do add legacy_tree "$f"; done
for f in "$td"/otlp/*.pb.bin; do add otlp "$f"; done
# JSON request bodies: OTLP JSON is message 11 of connect_json.
for f in "$td"/otlp/*.json; do
  [ "$(stat -c %s "$f")" -le 65536 ] || continue
  { printf '\x0b'; cat "$f"; } > "corpus/connect_json/$(name_of "$f")"
done
for f in "$td"/pprof/*.pb.gz "$td"/jfr/pyroscope/dump1.json.gz; do
  [ "$(stat -c %s "$f")" -le 16384 ] && is_gzip "$f" && cp -f "$f" "corpus/decompress/$(name_of "$f")"
done

for t in "${targets[@]}"; do
  printf '%-14s %5d inputs %8d KiB\n' "$t" "$(find "corpus/$t" -type f | wc -l)" "$(du -sk "corpus/$t" | cut -f1)"
done
