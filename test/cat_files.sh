#!/usr/bin/env bash
# End-to-end: the cat sample against the system's cat, on both reactors: two files, a 5 MiB
# file into a file and into a pipe, standard input, and a missing file (exit status 1, the path
# on standard error, the other files still written).
# Usage: cat_files.sh PATH/TO/cat
set -euo pipefail
sample="$1"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
printf 'first line\nsecond line\n' > "$dir/a"
printf 'another file, no newline at the end' > "$dir/b"
head -c $((5 * 1024 * 1024 + 17)) /dev/urandom > "$dir/big"
: > "$dir/empty"
for backend in io_uring asio; do
  export CORIO_BACKEND=$backend
  "$sample" "$dir/a" "$dir/b" > "$dir/out"
  cat "$dir/a" "$dir/b" > "$dir/expected"
  cmp "$dir/out" "$dir/expected" || { echo "$backend: two files differ from cat's output"; exit 1; }
  "$sample" "$dir/big" "$dir/empty" "$dir/a" > "$dir/out"
  cat "$dir/big" "$dir/empty" "$dir/a" > "$dir/expected"
  cmp "$dir/out" "$dir/expected" || { echo "$backend: the 5 MiB file differs"; exit 1; }
  "$sample" "$dir/big" | cmp - "$dir/big" || { echo "$backend: the 5 MiB file through a pipe differs"; exit 1; }
  "$sample" - < "$dir/a" | cmp - "$dir/a" || { echo "$backend: standard input differs"; exit 1; }
  # Standard output opened for append: splice refuses it, the bytes still arrive.
  printf 'head\n' > "$dir/appended"
  "$sample" "$dir/a" >> "$dir/appended"
  { printf 'head\n'; cat "$dir/a"; } | cmp - "$dir/appended" || { echo "$backend: appending differs"; exit 1; }
  status=0
  "$sample" "$dir/a" "$dir/no/such" "$dir/b" > "$dir/out" 2> "$dir/err" || status=$?
  [ "$status" = 1 ] || { echo "$backend: missing file: exit status $status, expected 1"; exit 1; }
  grep -qF "cat: $dir/no/such: No such file or directory" "$dir/err" \
    || { echo "$backend: missing file: stderr was: $(cat "$dir/err")"; exit 1; }
  cat "$dir/a" "$dir/b" > "$dir/expected"
  cmp "$dir/out" "$dir/expected" || { echo "$backend: the files around the missing one differ"; exit 1; }
done
echo "cat sample matches cat on io_uring and asio"
