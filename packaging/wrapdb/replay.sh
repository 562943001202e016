#!/usr/bin/env bash
# packaging/wrapdb/replay.sh: replays locally what WrapDB's CI does for a new corio release
# (tools/sanity_checks.py of github.com/mesonbuild/wrapdb, test_releases and check_new_release, read
# at commit e389295978c3), on a `meson dist` tarball of this tree or on a given release tarball:
#   - the metadata checks: corio.wrap is a [wrap-file] with directory, source_filename (named after
#     the directory), source_url (naming the version), source_hash and a [provide]; its
#     dependency_names equal releases.json's; the version is valid; the three files are formatted
#     as WrapDB's tools/format.py writes them; project() in the tarball has meson_version '>= ...',
#     a license string and no buildtype/debug/optimization/prefer_static/strip/unity default;
#   - the build, in a project laid out as WrapDB's repository (its meson.build: subproject() of each
#     wrap, dependency() of each provided name, which must be internal) with corio.wrap and the
#     tarball in subprojects/ (and subprojects/packagecache/): `meson setup` with
#     --fatal-meson-warnings, -Dwraps=corio -Ddepnames=corio, the global and corio build_options of
#     ci_config.json (corio:tests=enabled), then `meson compile`, `meson test --suite corio` (which
#     must run more than zero tests: Meson prefixes a subproject's suites with its name,
#     corio:core...), and `meson install --destdir pkg`, whose result is checked.
# Differences from WrapDB's CI: --wrap-mode=nodownload (corio's dependencies come from Debian's
# packages, not from WrapDB's wraps), and Linux only.
# Usage: packaging/wrapdb/replay.sh [--tarball FILE] [--update] [BUILD_DIR]
#   --tarball FILE: check this tarball (the release's) instead of building one with `meson dist`
#                   (which packs the last commit);
#   --update:       write the tarball's sha256 into packaging/wrapdb/corio.wrap.
# BUILD_DIR (default build-wrapdb) is emptied first. Ends with "wrapdb replay: passed".
set -euo pipefail
src="$(cd "$(dirname "$0")/../.." && pwd)"
here="$src/packaging/wrapdb"
tarball="" update=0 out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --tarball) tarball="$(cd "$(dirname "$2")" && pwd)/$(basename "$2")"; shift 2 ;;
    --update) update=1; shift ;;
    -*) echo "usage: packaging/wrapdb/replay.sh [--tarball FILE] [--update] [BUILD_DIR]" >&2; exit 2 ;;
    *) out="$1"; shift ;;
  esac
done
out="${out:-$src/build-wrapdb}"
if [ -e "$out" ] && [ ! -e "$out/.corio-wrapdb" ]; then
  echo "replay.sh: $out exists and is not a directory this script made: not touching it" >&2
  exit 2
fi
rm -rf "$out"
mkdir -p "$out"
touch "$out/.corio-wrapdb"
out="$(cd "$out" && pwd)"
start=$(date +%s)

# The tarball: `meson dist` of the last commit, configured as little as possible.
if [ -z "$tarball" ]; then
  meson setup "$out/dist-build" "$src" --wrap-mode=nodownload -Dtests=disabled -Dsamples=disabled \
    -Dbenchmarks=disabled >"$out/dist-setup.log" 2>&1 || { cat "$out/dist-setup.log" >&2; exit 1; }
  timeout 300 meson dist -C "$out/dist-build" --no-tests --formats gztar --allow-dirty >"$out/dist.log" 2>&1 ||
    { cat "$out/dist.log" >&2; exit 1; }
  tarball=$(ls "$out"/dist-build/meson-dist/corio-*.tar.gz)
fi
hash=$(sha256sum "$tarball" | cut -d' ' -f1)
echo "tarball: $tarball"
echo "sha256:  $hash"
if [ "$update" = 1 ]; then
  sed -i "s/^source_hash = .*/source_hash = $hash/" "$here/corio.wrap"
  echo "packaging/wrapdb/corio.wrap: source_hash updated"
fi

# WrapDB's repository, reduced to corio: its meson.build and meson_options.txt (the options wraps,
# depnames and prognames), the wrap with the tarball's hash, the release in releases.json and
# ci_config.json, and the wraps corio's own tree falls back on.
repo="$out/wrapdb"
mkdir -p "$repo/subprojects/packagecache"
cat >"$repo/meson.build" <<'MESON'
project('wrapdb', meson_version: '>=0.58.0')
wraps = get_option('wraps')
foreach w : wraps
  subproject(w)
endforeach
foreach name : get_option('depnames')
  dep = dependency(name)
  assert(dep.type_name() == 'internal')
endforeach
foreach name : get_option('prognames')
  prog = find_program(name)
  assert(prog.full_path().startswith(meson.global_build_root()) or prog.full_path().startswith(meson.global_source_root()))
endforeach
MESON
cat >"$repo/meson_options.txt" <<'MESON'
option('wraps', type: 'array', value: [])
option('depnames', type: 'array', value: [])
option('prognames', type: 'array', value: [])
MESON
sed "s/^source_hash = .*/source_hash = $hash/" "$here/corio.wrap" >"$repo/subprojects/corio.wrap"
cp "$src"/subprojects/*.wrap "$repo/subprojects/" 2>/dev/null || true
cp "$here/corio.wrap" "$repo/subprojects/corio.wrap.committed"
cp "$tarball" "$repo/subprojects/packagecache/"
cp "$here/releases.json" "$here/ci_config.json" "$repo/"

# The metadata checks, and the options of `meson setup` from ci_config.json.
python3 - "$repo" >"$out/setup-options" <<'PY'
import configparser, json, pathlib, re, subprocess, sys, tarfile
repo = pathlib.Path(sys.argv[1])
fail = []
def check(ok, what):
    if not ok:
        fail.append(what)
# The committed wrap (not the copy with this tarball's hash) must be formatted as format_wrap writes.
text = (repo / "subprojects/corio.wrap.committed").read_text()
new = []
for line in text.splitlines():
    line = line.strip()
    if not line:
        continue
    if line[0] in "#;":
        new.append(line)
    elif line[0] == "[":
        if new:
            new.append("")
        new.append(line)
    else:
        k, v = line.split("=", 1)
        new.append(f"{k.strip()} = {v.strip()}")
check(text == "\n".join(new) + "\n", "corio.wrap is not formatted as WrapDB's tools/format.py writes it")
(repo / "subprojects/corio.wrap.committed").unlink()
releases = json.loads((repo / "releases.json").read_text())
ci = json.loads((repo / "ci_config.json").read_text())
for name, data in (("releases.json", releases), ("ci_config.json", ci)):
    check((repo / name).read_text() == json.dumps(data, sort_keys=True, indent=2) + "\n",
          f"{name} is not formatted as WrapDB's tools/format.py writes it (indent 2, sorted keys)")
check(set(releases) == {"corio"} and set(releases["corio"]) <= {"versions", "dependency_names", "program_names"},
      "releases.json: one entry, corio, with versions, dependency_names, program_names only")
versions = releases["corio"]["versions"]
ver, rev = versions[0].rsplit("-", 1)
check(re.fullmatch("[a-z0-9._]+", ver) and re.fullmatch("[0-9]+", rev), f"releases.json: bad version {versions[0]}")
wrap = configparser.ConfigParser(interpolation=None)
wrap.read(repo / "subprojects/corio.wrap")
check(wrap.sections()[0] == "wrap-file", "corio.wrap: the first section must be [wrap-file]")
w = wrap["wrap-file"]
for key in ("directory", "source_filename", "source_url", "source_hash"):
    check(key in w, f"corio.wrap: no {key}")
check(w.get("method", "meson") == "meson", "corio.wrap: method must be meson")
check(re.sub(r"(\.tar)?\.[a-z0-9]+$", "", w["source_filename"]) in (w["directory"], f"{w['directory']}-{ver}", f"corio-{ver}"),
      "corio.wrap: source_filename is not named after directory or corio-VERSION")
check(ver in w["source_url"] or ver.replace(".", "_") in w["source_url"], f"corio.wrap: source_url does not name {ver}")
check(not re.search(r"/[0-9a-f]{40}", w["source_url"]), "corio.wrap: a commit hash in source_url")
check("provide" in wrap.sections() and wrap.items("provide"), "corio.wrap: no [provide]")
provided = [d.strip() for d in wrap["provide"].get("dependency_names", "").split(",") if d.strip()]
check(set(wrap["provide"]) <= {"dependency_names", "program_names"}, "corio.wrap: transitional provides (foo = foo_dep)")
check(sorted(provided) == sorted(releases["corio"].get("dependency_names", [])),
      "dependency_names differ between corio.wrap and releases.json")
# project() of the tarball, as check_project_args reads it (meson rewrite on the unpacked tree).
tar = repo / "subprojects/packagecache" / w["source_filename"]
unpacked = repo.parent / "unpacked"
unpacked.mkdir()
with tarfile.open(tar) as t:
    check(f"{w['directory']}/meson.build" in t.getnames(), f"the tarball has no {w['directory']}/meson.build")
    t.extractall(unpacked)
info = subprocess.run(["meson", "rewrite", "kwargs", "info", "project", "/"], cwd=unpacked / w["directory"],
                      capture_output=True, text=True, check=True)
project = json.loads(info.stderr or info.stdout)["kwargs"]["project#/"]
check(str(project.get("meson_version", "")).startswith(">="), "project() has no meson_version '>= ...'")
check(isinstance(project.get("license"), str), "project() license must be one string")
check(project.get("version") == ver, f"project() version {project.get('version')} is not {ver}")
opts = project.get("default_options") or []
opts = [opts] if isinstance(opts, str) else opts
for opt in opts:
    check(opt.split("=", 1)[0] not in {"buildtype", "debug", "optimization", "prefer_static", "strip", "unity"},
          f"default_options may not set {opt}")
check(ci["corio"].get("build_on", {}).get("linux", True), "ci_config.json: corio does not build on Linux")
if fail:
    print("\n".join("wrapdb check: " + f for f in fail), file=sys.stderr)
    sys.exit(1)
options = [o for o in ci.get("global_build_options", []) if not o.startswith("corio:")]
options += ci["corio"].get("build_options", [])
print("\n".join(f"-D{o}" for o in options + ["wraps=corio", "depnames=" + ",".join(provided), "prognames="]))
if not ci["corio"].get("fatal_warnings", True):
    print("wrapdb check: ci_config.json turns fatal_warnings off", file=sys.stderr)
    sys.exit(1)
PY
echo "metadata: passed"
mapfile -t options <"$out/setup-options"

# The build, as check_new_release runs it.
cd "$repo"
timeout 600 meson setup _build -Dpython.install_env=auto "${options[@]}" --fatal-meson-warnings \
  --wrap-mode=nodownload >"$out/setup.log" 2>&1 || { tail -n 40 "$out/setup.log" >&2; exit 1; }
echo "setup (--fatal-meson-warnings ${options[*]}): passed"
python3 - <<'PY'
import json, sys
info = json.load(open("_build/meson-info/intro-projectinfo.json"))
versions = [s["version"] for s in info["subprojects"] if s["name"] == "corio"]
releases = json.load(open("releases.json"))
want = releases["corio"]["versions"][0].rsplit("-", 1)[0]
if versions != [want]:
    sys.exit(f"wrapdb check: subproject corio has version {versions}, releases.json says {want}")
PY
timeout 3600 meson compile -C _build >"$out/compile.log" 2>&1 || { tail -n 40 "$out/compile.log" >&2; exit 1; }
echo "compile: passed ($(( $(date +%s) - start )) s so far)"
test_options=$(python3 -c 'import json; print(" ".join(json.load(open("ci_config.json"))["corio"].get("test_options", [])))')
# shellcheck disable=SC2086
timeout 3600 meson test -C _build --suite corio --print-errorlogs $test_options >"$out/test.log" 2>&1 ||
  { tail -n 60 "$out/test.log" >&2; exit 1; }
python3 - <<'PY'
import json, re, sys
results = [json.loads(line) for line in open("_build/meson-logs/testlog.json")]
ran = [r for r in results if r["result"] != "SKIP"]
bad = [r["name"] for r in results if r["result"] not in ("OK", "EXPECTEDFAIL", "SKIP")]
suites = sorted({r["name"].split(" / ")[0] for r in results})  # "corio:core / core"
cases = sum(int(m[-1]) for r in results if (m := re.findall(r"test cases: *(\d+)", r["stdout"] or "")))
print(f"meson test --suite corio: {len(ran)} ran ({cases} doctest cases), {len(results) - len(ran)} skipped, "
      f"{len(bad)} failed; suites {', '.join(suites)}")
if bad or not ran:
    sys.exit("wrapdb check: meson test --suite corio " + ("failed: " + ", ".join(bad) if bad else "ran no test"))
PY
timeout 600 meson install -C _build --destdir pkg >"$out/install.log" 2>&1 || { tail -n 40 "$out/install.log" >&2; exit 1; }
for f in include/corio/corio.hpp include/corio/detail/export.hpp pkgconfig/corio.pc libcorio.a cmake/corio/corioConfig.cmake \
         cmake/corio/corioConfigVersion.cmake doc/corio/LICENSE; do
  [ -n "$(find _build/pkg -path "*/$f" | head -n 1)" ] || { echo "wrapdb check: meson install put no $f in the destdir" >&2; exit 1; }
done
echo "install --destdir pkg: passed ($(find _build/pkg -type f | wc -l) files)"
echo "wrapdb replay: passed in $(( $(date +%s) - start )) s"
