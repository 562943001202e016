#!/usr/bin/env bash
# Builds the API reference from the comments of the public headers (include/corio, without
# detail/) with Doxygen, into build-docs/html, and compiles every example of the user guide
# (docs/guide/examples/*.cpp). Fails (exit 1) on any Doxygen warning, an undocumented public name
# included, and on an example that does not compile. Usage: tools/docs.sh [OUTPUT_DIR]
# Installs Debian's doxygen when it is missing (tools/deps.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-build-docs}"
bash tools/deps.sh doxygen

rm -rf "$out"
mkdir -p "$out"
out="$(cd "$out" && pwd)"

# Every header's opening comment ("// corio/x.hpp - what it holds", possibly continued on the
# next "//" lines) becomes its \file documentation, so that Doxygen documents (and checks) the
# macros and namespace-level names of each header.
headers=$(cd include && find corio -name '*.hpp' -not -path 'corio/detail/*' | sort)
{
  for h in $headers; do
    first=$(head -n 1 "include/$h")
    case "$first" in
      "// $h - "*) ;;
      *) echo "tools/docs.sh: include/$h does not start with \"// $h - what it holds\"" >&2; exit 1 ;;
    esac
    echo "/// \\file $h"
    awk 'NR == 1 { sub(/^\/\/ [^ ]+ - /, ""); print "/// " $0; next } /^\/\// { sub(/^\/\/ ?/, ""); print "/// " $0; next } { exit }' "include/$h"
    echo
  done
} > "$out/headers.dox"

version=$(sed -n "s/^  version: '\([^']*\)',$/\1/p" meson.build | head -n 1)
status=0
CORIO_VERSION="$version" CORIO_DOCS_OUT="$out" doxygen docs/Doxyfile || status=$?
if [ -s "$out/warnings.log" ] || [ "$status" -ne 0 ]; then
  cat "$out/warnings.log" >&2
  echo "tools/docs.sh: doxygen reported $(wc -l < "$out/warnings.log") warning(s) (exit status $status)" >&2
  exit 1
fi
echo "API reference: $out/html/index.html"

# Every C++ block of the guide must be an excerpt, line for line, of one of its examples, which are
# built and run below: so each sample the guide shows compiles as shown.
python3 - docs/guide <<'PY'
import pathlib, re, sys
guide = pathlib.Path(sys.argv[1])
examples = [p.read_text().split("\n") for p in sorted((guide / "examples").glob("*.cpp"))]
def excerpt(block):
    n = len(block)
    return any(lines[i:i + n] == block for lines in examples for i in range(len(lines) - n + 1))
bad = 0
for md in sorted(guide.glob("*.md")):
    for m in re.finditer(r"^```cpp\n(.*?)^```$", md.read_text(), re.S | re.M):
        block = m.group(1).rstrip("\n").split("\n")
        if not excerpt(block):
            line = md.read_text()[: m.start()].count("\n") + 1
            print(f"{md}:{line}: this C++ block is not an excerpt of docs/guide/examples/*.cpp", file=sys.stderr)
            bad += 1
sys.exit(1 if bad else 0)
PY

# The guide's examples: docs/guide/examples is a Meson project using corio as a subproject, as
# docs/guide/01-getting-started.md tells a new user to set one up; each example is built (g++,
# C++20, warnings as errors) and run.
examples="$out/examples"
mkdir -p "$examples/subprojects"
cp docs/guide/examples/meson.build docs/guide/examples/*.cpp "$examples/"
ln -s "$PWD" "$examples/subprojects/corio"
(cd "$examples" && meson setup build --wrap-mode=nodownload -Dbuildtype=release -Dwerror=true >setup.log 2>&1) || {
  cat "$examples/setup.log" >&2
  echo "tools/docs.sh: the guide's examples did not configure" >&2
  exit 1
}
ninja -C "$examples/build"
meson test -C "$examples/build" --print-errorlogs
echo "guide examples: built and run"
