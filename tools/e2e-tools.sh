#!/usr/bin/env bash
# Finds or builds the tools of the e2e tier at the versions pinned in tools/versions.env.
#
#   tools/e2e-tools.sh [TOOL...]          find each tool, else build it (prints the cold build time)
#   tools/e2e-tools.sh --locate [TOOL...] print KEY=path lines for the tools, build nothing (exit 1 if missing)
#
# TOOL is one of: kubernetes etcd pulumi pulumi-language-python pulumi-kubernetes prometheus thanos
# (default: all). For each tool, in order: a binary on PATH that reports the pinned version; the cache
# ${RESOURCE_POOL_TOOLS:-$HOME/.cache/resource-pool/tools}/<tool>-<version>/; a build from the Go module proxy
# into that cache. A warm run only runs `--version` of each binary.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"

CACHE=${RESOURCE_POOL_TOOLS:-$HOME/.cache/resource-pool/tools}
export GOTOOLCHAIN=local GOFLAGS=-mod=mod CGO_ENABLED=0
if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
    export PATH="$PATH:/usr/local/go/bin"
fi

LOCATE=0
if [ "${1:-}" = "--locate" ]; then
    LOCATE=1
    shift
fi
ALL_TOOLS=(kubernetes etcd pulumi pulumi-language-python pulumi-kubernetes prometheus thanos)
TOOLS=("$@")
[ ${#TOOLS[@]} -gt 0 ] || TOOLS=("${ALL_TOOLS[@]}")

say() { [ "$LOCATE" = 1 ] || echo "e2e-tools: $*" >&2; }
die() { echo "e2e-tools: $*" >&2; exit 1; }

# found KEY PATH: report a located binary.
found() {
    if [ "$LOCATE" = 1 ]; then echo "$1=$2"; else say "$1 -> $2"; fi
}

# on_path BINARY PATTERN: the binary on PATH if its --version output matches PATTERN (grep -E).
on_path() {
    local bin
    bin=$(command -v "$1" 2>/dev/null) || return 1
    "$bin" --version 2>/dev/null | grep -Eq "$2" || return 1
    echo "$bin"
}

# need_build NAME: fail in --locate mode, where nothing is built.
need_build() {
    [ "$LOCATE" = 0 ] || die "$1 is not built at the pinned version: run 'make e2e-tools'"
    command -v go >/dev/null 2>&1 || die "$1 must be built but there is no Go toolchain (install Go >= 1.23)"
}

# timed NAME DIR CMD...: run a build into a staging dir, then move it into place as DIR (one rename).
timed() {
    local name=$1 dest=$2
    shift 2
    local stage="$dest.partial.$$" log="$CACHE/$name.build.log" start end lock
    mkdir -p "$CACHE/.work"
    # One build of a tool at a time (two `make e2e-tools` at once share the work dir); the second waits,
    # then finds the tool built.
    exec {lock}>"$CACHE/.$name.lock"
    flock "$lock"
    if [ -d "$dest" ]; then
        flock -u "$lock"
        return 0
    fi
    rm -rf "$stage"
    mkdir -p "$stage"
    say "building $name (log: $log)"
    start=$(date +%s)
    if ! "$@" "$stage" >"$log" 2>&1; then
        tail -n 30 "$log" >&2
        rm -rf "$stage"
        die "building $name failed; the full log is $log"
    fi
    end=$(date +%s)
    mv "$stage" "$dest"
    echo "cold build of $name: $((end - start)) s" | tee "$dest/BUILD_TIME" >&2
    flock -u "$lock"
}

# wrapper_module DIR MODULE_PATH: a throwaway main module in DIR (go.mod written by the caller).
wrapper_dir() {
    local dir="$CACHE/.work/$1"
    rm -rf "$dir"
    mkdir -p "$dir"
    echo "$dir"
}

# ---- kubernetes: kube-apiserver + kube-controller-manager -----------------------------------------------------

build_kubernetes() {
    local out=$1 dir v=$KUBERNETES_VERSION minor
    minor=$(echo "$v" | cut -d. -f2)
    dir=$(wrapper_dir kubernetes)
    # k8s.io/kubernetes replaces its k8s.io/* staging modules with ./staging/src/...; outside its repository
    # each is the published module v0.<minor>.<patch>. The list is read from the module's own go.mod.
    local gomod
    gomod=$(go mod download -json "k8s.io/kubernetes@v$v" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
    {
        echo "module resource-pool.invalid/kubernetes-tools"
        echo "go 1.22.0"
        echo "require k8s.io/kubernetes v$v"
        grep -E '^\s*k8s\.io/[a-z0-9-]+ => \./staging/' "$gomod" |
            awk -v pv="v0.${v#1.}" -v ov="${KUBERNETES_STAGING_OVERRIDES:-}" '
                BEGIN { n = split(ov, kv, " "); for (i = 1; i <= n; i++) { split(kv[i], p, "="); o["k8s.io/" p[1]] = p[2] } }
                { print "replace " $1 " => " $1 " " ($1 in o ? o[$1] : pv) }'
    } >"$dir/go.mod"
    printf '//go:build tools\n\npackage tools\n\nimport (\n\t_ "k8s.io/kubernetes/cmd/kube-apiserver"\n\t_ "k8s.io/kubernetes/cmd/kube-controller-manager"\n)\n' >"$dir/tools.go"
    local ver="-X k8s.io/component-base/version.gitVersion=v$v -X k8s.io/component-base/version.gitMajor=1"
    ver="$ver -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean"
    ver="$ver -X k8s.io/client-go/pkg/version.gitVersion=v$v"
    (
        cd "$dir"
        go mod tidy
        go build -trimpath -ldflags "-s -w -checklinkname=0 $ver" -o "$out/" \
            k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager
    )
}

tool_kubernetes() {
    local d="$CACHE/kubernetes-$KUBERNETES_VERSION" a c
    if a=$(on_path kube-apiserver "v$KUBERNETES_VERSION\b") && c=$(on_path kube-controller-manager "v$KUBERNETES_VERSION\b"); then
        :
    else
        if [ ! -x "$d/kube-apiserver" ] || [ ! -x "$d/kube-controller-manager" ]; then
            need_build kubernetes
            timed kubernetes "$d" build_kubernetes
        fi
        a="$d/kube-apiserver" c="$d/kube-controller-manager"
    fi
    found KUBE_APISERVER "$a"
    found KUBE_CONTROLLER_MANAGER "$c"
}

# ---- etcd: Debian's package ---------------------------------------------------------------------------------

tool_etcd() {
    local e
    if ! e=$(command -v etcd 2>/dev/null); then
        [ "$LOCATE" = 0 ] || die "etcd is not installed: run 'make e2e-tools'"
        say "installing Debian's $ETCD_DEBIAN_PACKAGE"
        local sudo=""
        [ "$(id -u)" = 0 ] || sudo=sudo
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$ETCD_DEBIAN_PACKAGE" >&2
        e=$(command -v etcd)
    fi
    found ETCD "$e"
}

# replaces_of GOMOD [SKIP_REGEX]: the module's non-local replace directives as go.mod lines (a dependency's
# replaces do not apply when it is built as a dependency, so a wrapper module must restate them).
replaces_of() {
    go mod edit -json "$1" | python3 -c '
import json, re, sys
skip = sys.argv[1]
for r in json.load(sys.stdin).get("Replace") or []:
    old, new = r["Old"], r["New"]
    if not new.get("Version") or (skip and re.search(skip, old["Path"])):
        continue
    lhs = old["Path"] + (" " + old["Version"] if old.get("Version") else "")
    print("replace %s => %s %s" % (lhs, new["Path"], new["Version"]))
' "${2:-}"
}

gomod_of() { go mod download -json "$1" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p'; }
moddir_of() { go mod download -json "$1" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p'; }

# tools_go DIR PKG...: a tools.go that makes `go mod tidy` keep the main packages to build.
tools_go() {
    local dir=$1
    shift
    {
        printf '//go:build tools\n\npackage tools\n\nimport (\n'
        for p in "$@"; do printf '\t_ "%s"\n' "$p"; done
        printf ')\n'
    } >"$dir/tools.go"
}

venv_python() {
    local py="$here/../.venv/bin/python"
    [ -x "$py" ] || die "no .venv in $(cd "$here/.." && pwd): run 'make venv' first"
    echo "$py"
}

# The Python SDK version in .venv (its exec shim must match it) and the provider version its pulumi-kubernetes asks for.
python_sdk_version() { "$(venv_python)" -c 'import importlib.metadata as m; print(m.version("pulumi"))'; }
kubernetes_plugin_version() {
    "$(venv_python)" -c 'import json, pathlib, pulumi_kubernetes as k; print(json.loads((pathlib.Path(k.__file__).parent / "pulumi-plugin.json").read_text())["version"])'
}

# ---- pulumi: CLI, Python language host, exec and policy shims ----------------------------------------------------

build_pulumi() {
    local out=$1 dir v=v$PULUMI_VERSION
    dir=$(wrapper_dir pulumi)
    {
        echo "module resource-pool.invalid/pulumi-tools"
        echo "go 1.20"
        echo "require github.com/pulumi/pulumi/pkg/v3 $v"
        echo "require github.com/pulumi/pulumi/sdk/v3 $v"
        replaces_of "$(gomod_of "github.com/pulumi/pulumi/pkg/v3@$v")"
        replaces_of "$(gomod_of "github.com/pulumi/pulumi/sdk/v3@$v")"
    } | awk '!seen[$0]++' >"$dir/go.mod"
    tools_go "$dir" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi github.com/pulumi/pulumi/sdk/v3/python/cmd/pulumi-language-python
    local ld="-s -w -checklinkname=0 -X github.com/pulumi/pulumi/pkg/v3/version.Version=$v"
    ld="$ld -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$v"
    (
        cd "$dir"
        go mod tidy
        go build -trimpath -ldflags "$ld" -o "$out/" \
            github.com/pulumi/pulumi/pkg/v3/cmd/pulumi github.com/pulumi/pulumi/sdk/v3/python/cmd/pulumi-language-python
    )
    # The engine of this release runs Python policy packs through this shim (on PATH).
    install -m 0755 "$(moddir_of "github.com/pulumi/pulumi/sdk/v3@$v")/python/dist/pulumi-analyzer-policy-python" "$out/"
}

tool_pulumi() {
    local d="$CACHE/pulumi-$PULUMI_VERSION" p
    if p=$(on_path pulumi "^v$PULUMI_VERSION\$") && [ -x "$(dirname "$p")/pulumi-language-python" ]; then
        d=$(dirname "$p")
    elif [ ! -x "$d/pulumi" ] || [ ! -x "$d/pulumi-language-python" ]; then
        need_build pulumi
        timed pulumi "$d" build_pulumi
    fi
    found PULUMI_BIN_DIR "$d"
}

# The exec shim sits next to the language host, which runs it with the project's virtualenv python.
tool_pulumi_language_python() {
    local d="$CACHE/pulumi-$PULUMI_VERSION" sdk
    [ -x "$d/pulumi-language-python" ] || tool_pulumi >/dev/null
    sdk=$(python_sdk_version)
    if [ "$(cat "$d/pulumi-language-python-exec.version" 2>/dev/null)" != "$sdk" ]; then
        [ "$LOCATE" = 0 ] || die "the exec shim for the Python SDK $sdk is not installed: run 'make e2e-tools'"
        install -m 0755 "$(moddir_of "github.com/pulumi/pulumi/sdk/v3@v$sdk")/python/cmd/pulumi-language-python-exec" "$d/"
        echo "$sdk" >"$d/pulumi-language-python-exec.version"
        say "pulumi-language-python-exec from the Python SDK $sdk"
    fi
    found PULUMI_LANGUAGE_PYTHON "$d/pulumi-language-python"
}

# ---- pulumi-kubernetes provider ---------------------------------------------------------------------------------

build_pulumi_kubernetes() {
    local out=$1 dir src plugin_version=$2
    dir=$(wrapper_dir pulumi-kubernetes)
    src=$(moddir_of "github.com/pulumi/pulumi-kubernetes/provider/v4@$PULUMI_KUBERNETES_MODULE_VERSION")
    cp -r "$src/." "$dir/"
    chmod -R u+w "$dir"
    (
        cd "$dir"
        go mod edit -replace "github.com/pulumi/pulumi-kubernetes/sdk/v4=github.com/pulumi/pulumi-kubernetes/sdk/v4@$PULUMI_KUBERNETES_SDK_MODULE_VERSION"
        # No `go mod tidy`: here the provider is the main module, and tidy would also fetch what its tests
        # import; -mod=mod (GOFLAGS) adds the go.sum lines the build needs.
        # The provider embeds schema-embed.json and terraform-mapping-embed.json, which its `go generate` step
        # writes from the schema.json shipped in the module (cmd/pulumi-resource-kubernetes/generate.go).
        (cd cmd/pulumi-resource-kubernetes && VERSION="$plugin_version" go generate ./...)
        go build -trimpath -o "$out/" \
            -ldflags "-s -w -checklinkname=0 -X github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version.Version=$plugin_version" \
            ./cmd/pulumi-resource-kubernetes
    )
}

# Plugins are registered in a PULUMI_HOME of the cache; tests point their own PULUMI_HOME's plugins there.
tool_pulumi_kubernetes() {
    local pv key d home="$CACHE/pulumi-home"
    pv=$(kubernetes_plugin_version)
    key="pulumi-kubernetes-${PULUMI_KUBERNETES_MODULE_VERSION}-as-$pv"
    d="$CACHE/$key"
    if [ ! -x "$d/pulumi-resource-kubernetes" ]; then
        need_build pulumi-kubernetes
        timed pulumi-kubernetes "$d" build_pulumi_kubernetes_as "$pv"
    fi
    if [ ! -x "$home/plugins/resource-kubernetes-v$pv/pulumi-resource-kubernetes" ] ||
        ! cmp -s "$d/pulumi-resource-kubernetes" "$home/plugins/resource-kubernetes-v$pv/pulumi-resource-kubernetes"; then
        [ "$LOCATE" = 0 ] || die "the kubernetes plugin v$pv is not registered: run 'make e2e-tools'"
        local pdir
        pdir=$(LOCATE=1 tool_pulumi | sed -n 's/^PULUMI_BIN_DIR=//p')
        PULUMI_HOME=$home PULUMI_SKIP_UPDATE_CHECK=1 "$pdir/pulumi" plugin install resource kubernetes "$pv" \
            --reinstall --file "$d/pulumi-resource-kubernetes" >&2
    fi
    found PULUMI_PLUGINS_HOME "$home"
    found PULUMI_KUBERNETES_PLUGIN_VERSION "$pv"
}

# timed passes the staging dir last; this puts the plugin version after it.
build_pulumi_kubernetes_as() { build_pulumi_kubernetes "$2" "$1"; }

# ---- Prometheus 3 and Thanos ------------------------------------------------------------------------------------

build_prometheus() {
    local out=$1 rel
    rel="3.$(echo "$PROMETHEUS3_MODULE_VERSION" | sed -E 's/^v0\.3([0-9][0-9])\.([0-9]+).*/\1.\2/' | sed -E 's/^0//')"
    # No replace directives in its go.mod: `go install mod@version` builds it as published. The web UI's
    # assets are not embedded (no `builtinassets` tag): the tests use the HTTP API only.
    GOBIN="$out" go install -trimpath \
        -ldflags "-s -w -X github.com/prometheus/common/version.Version=$rel" \
        "github.com/prometheus/prometheus/cmd/prometheus@$PROMETHEUS3_MODULE_VERSION"
}

tool_prometheus() {
    local d="$CACHE/prometheus-$PROMETHEUS3_MODULE_VERSION"
    if [ ! -x "$d/prometheus" ]; then
        need_build prometheus
        timed prometheus "$d" build_prometheus
    fi
    found PROMETHEUS3 "$d/prometheus"
}

build_thanos() {
    local out=$1 dir
    dir=$(wrapper_dir thanos)
    {
        echo "module resource-pool.invalid/thanos-tools"
        echo "go 1.26.0"
        echo "require github.com/thanos-io/thanos $THANOS_VERSION"
        replaces_of "$(gomod_of "github.com/thanos-io/thanos@$THANOS_VERSION")"
    } >"$dir/go.mod"
    tools_go "$dir" github.com/thanos-io/thanos/cmd/thanos
    (
        cd "$dir"
        go mod tidy
        go build -trimpath -tags "$THANOS_BUILD_TAGS" \
            -ldflags "-s -w -X github.com/prometheus/common/version.Version=${THANOS_VERSION#v}" \
            -o "$out/" github.com/thanos-io/thanos/cmd/thanos
    )
}

tool_thanos() {
    # The build tags are part of the key: a binary built without them is a different (broken) program.
    local d="$CACHE/thanos-$THANOS_VERSION-${THANOS_BUILD_TAGS// /-}"
    if [ ! -x "$d/thanos" ]; then
        need_build thanos
        timed thanos "$d" build_thanos
    fi
    found THANOS "$d/thanos"
}

for t in "${TOOLS[@]}"; do
    case "$t" in
        kubernetes | etcd | pulumi | pulumi-language-python | pulumi-kubernetes | prometheus | thanos)
            "tool_${t//-/_}" ;;
        *) die "unknown tool '$t' (one of: ${ALL_TOOLS[*]})" ;;
    esac
done
