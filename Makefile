# strata: build, test and benchmark.
#   make setup   (as root, once per machine) installs system packages and the test user
#   make test    unit tests (race detector), then integration tests as $(TEST_USER)
#   make demo    builds examples/demo twice and prints each step's cache state
#   make bench   strata vs `buildah bud --layers` on a 10-step busybox image
#   make bench-attest  what provenance, SBOM and signing add to a build
#   make compare [REF=buildah|buildkit] [DOCKERFILE=... CONTEXT=...]  same image from strata and the reference?
#   make buildkit-tools  builds BuildKit and RootlessKit (for REF=buildkit)
#   make skopeo-tool     builds skopeo with sigstore (Debian's has it disabled; make integration runs it)
SHELL := /bin/bash
export CGO_ENABLED := 1
export CGO_CFLAGS := -O2 -g -Wno-deprecated-declarations
TAGS := containers_image_openpgp exclude_graphdriver_btrfs seccomp
# Integration tests are built with crash-test failpoints (no-ops otherwise).
IT_TAGS := $(TAGS) strata_failpoints
# Random kills in the crash harness on top of its 8 chosen phases.
CRASH_RANDOM_KILLS ?= 4
GO ?= go
GOTEST_FLAGS ?=
TEST_USER ?= strata-test
# Bases that integration tests make once (the mmdebstrap minbase) are kept here.
STRATA_TEST_CACHE ?= /var/tmp/strata-test-cache
WORK := /tmp/strata-make-$(shell id -u)
UNIT_PKGS = $(shell $(GO) list -tags '$(TAGS)' ./... | grep -v /integration)
APT_PACKAGES := runc uidmap libseccomp-dev busybox-static buildah docker-registry \
	mmdebstrap gcc pkg-config ca-certificates git make skopeo podman openssh-client \
	qemu-user-static binfmt-support arch-test umoci

.PHONY: setup build vet test unit integration bench demo clean gpu-e2e crash fuzz compare compare-buildah compare-golden buildkit-tools skopeo-tool bench-attest

# Each fuzz target for FUZZTIME; crashers land in testdata/fuzz and then run
# as regression tests with the unit tests.
FUZZTIME ?= 30s
FUZZ_TARGETS := layers:FuzzEncodeInjective mount:FuzzPatterns mount:FuzzNamesDigestApart \
	gpu:FuzzParseRequest runners:FuzzParseRegistryRef dockerfile:FuzzParse spec:FuzzParse
fuzz:
	@for t in $(FUZZ_TARGETS); do pkg=$${t%%:*}; fn=$${t##*:}; \
		echo "== $$pkg $$fn ($(FUZZTIME))"; \
		$(GO) test -tags '$(TAGS)' -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(FUZZTIME) ./$$pkg/ 2>&1 | tail -3 || exit 1; done

# The crash harness alone, with 16 random kills besides the 8 phases.
crash:
	$(MAKE) integration IT_RUN='-test.run TestTwoProcesses' NORACE_RUN='^TestCrashHarness$$' SIGNAL_RUN='^$$' CRASH_RANDOM_KILLS=16

setup:
	@if [ "$$(id -u)" != 0 ]; then echo "make setup must run as root (it installs packages and adds $(TEST_USER))"; exit 1; fi
	@# arm64 and i386 packages too (busybox-static:arm64 for the
	@# foreign-platform test, busybox-static:i386 for the 32-bit one).
	dpkg --print-foreign-architectures | grep -qx arm64 || dpkg --add-architecture arm64
	dpkg --print-foreign-architectures | grep -qx i386 || dpkg --add-architecture i386
	apt-get update -q
	@# binfmt_misc first, so that qemu-user-static's install registers its
	@# emulators (then they work for ordinary users too).
	mountpoint -q /proc/sys/fs/binfmt_misc || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $(APT_PACKAGES)
	-update-binfmts --enable qemu-aarch64 >/dev/null 2>&1
	@# Debian's static arm64 and i386 busyboxes, unpacked (not installed).
	for a in arm64 i386; do f=/var/lib/strata-test-fixtures/$$a; install -d -m 755 $$f && \
		{ test -x $$f/bin/busybox || { d=$$(mktemp -d) && \
		(cd $$d && apt-get download -q busybox-static:$$a && dpkg-deb -x busybox-static_*_$$a.deb $$d/x) && \
		install -d $$f/bin && install -m 755 $$d/x/bin/busybox $$f/bin/busybox && rm -rf $$d; }; } || exit 1; done
	@# fuse-overlayfs breaks native overlay storage for ordinary users here.
	-DEBIAN_FRONTEND=noninteractive apt-get purge -y -q fuse-overlayfs >/dev/null 2>&1
	id -u $(TEST_USER) >/dev/null 2>&1 || useradd --create-home --shell /bin/bash $(TEST_USER)
	grep -q '^$(TEST_USER):' /etc/subuid || echo '$(TEST_USER):200000:65536' >> /etc/subuid
	grep -q '^$(TEST_USER):' /etc/subgid || echo '$(TEST_USER):200000:65536' >> /etc/subgid
	@# A root-owned file the test user cannot read, for the hostile-input test.
	install -d -m 755 /var/lib/strata-test-fixtures/unreadable
	echo fine > /var/lib/strata-test-fixtures/unreadable/ok.txt
	echo secret > /var/lib/strata-test-fixtures/unreadable/locked.txt
	chmod 644 /var/lib/strata-test-fixtures/unreadable/ok.txt
	chmod 600 /var/lib/strata-test-fixtures/unreadable/locked.txt
	@# A 96 MiB tmpfs for the full-disk test.
	install -d -m 755 /var/lib/strata-test-fixtures/smalldisk
	mountpoint -q /var/lib/strata-test-fixtures/smalldisk || \
		mount -t tmpfs -o size=96m,mode=1777 tmpfs /var/lib/strata-test-fixtures/smalldisk
	chmod 1777 /var/lib/strata-test-fixtures/smalldisk
	@# A registry mirror in the system's registries.conf.d, for a name only
	@# TestSystemRegistryMirror uses (it serves the mirror on that port).
	install -d -m 755 /etc/containers/registries.conf.d
	printf '[[registry]]\nprefix = "mirror-test.strata.invalid"\nlocation = "mirror-test.strata.invalid"\n[[registry.mirror]]\nlocation = "127.0.0.1:5959"\ninsecure = true\n' \
		> /etc/containers/registries.conf.d/50-strata-test-mirror.conf
	@# Harmless fake GPU nodes (copies of /dev/null, 1:3) for the rootless GPU
	@# test, only where no NVIDIA driver is loaded.
	@if [ ! -e /proc/driver/nvidia ]; then for n in nvidia0 nvidiactl; do \
		[ -e /dev/$$n ] || mknod -m 666 /dev/$$n c 1 3; done; fi

build:
	$(GO) build -tags '$(TAGS)' ./...

vet:
	$(GO) vet -tags '$(TAGS)' ./...
	$(GO) vet -tags '$(IT_TAGS)' ./integration
	@# The SBOM module (syft) is a module of its own.
	cd sbom && $(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }

test: vet unit integration

# Under the race detector every Go process waits a second at exit (TSan's
# atexit_sleep_ms), and Buildah re-executes the test binary for each copy,
# untar and user lookup: atexit_sleep_ms=0 took TestDockerfileFidelity
# from 154 s to 11 s. Errors still stop the process (halt_on_error).
RACE_ENV := GORACE=atexit_sleep_ms=0
unit:
	$(RACE_ENV) $(GO) test -race -tags '$(TAGS)' $(GOTEST_FLAGS) $(UNIT_PKGS)

# Integration tests run as an unprivileged user: a rootless builder tested
# as root proves nothing. As root, the test binaries are built here and run
# as $(TEST_USER); as any other user, they run as that user. In-process
# tests run under the race detector; the crash harness, whose children are
# killed processes, runs from a binary built with the failpoints and
# without the race detector (it is several times faster). So do the tests
# in SLOW_IT, whose time goes to apt, pip and registries in sequential
# builds (under race they took 705 s, 306 s and 134 s of a 46-minute run).
SLOW_IT := TestPythonAppOnDebianMirror|TestCacheMountsShared|TestAddPythonOnRegistryBase|TestDebianMirrorArm64
NORACE_RUN ?= ^(TestCrashHarness|$(SLOW_IT))$$
SIGNAL_RUN ?= ^(TestSignals|TestCLIUserNamespace)$$
# The corpus built by strata and by buildah side by side is a comparison of
# two builders, not a test of strata: it runs in make compare-golden.
COMPARE_IT := TestSideBySideWithBuildah
RUN_AS = if [ "$$(id -u)" = 0 ]; then \
		id -u $(TEST_USER) >/dev/null 2>&1 || { echo "no user $(TEST_USER): run make setup"; exit 1; }; \
		su $(TEST_USER) -c "$$cmd"; \
	else bash -c "$$cmd"; fi
IT_ENV = cd $(WORK) && $(RACE_ENV) STRATA_SKOPEO=$(SKOPEO_TOOL) STRATA_SBOM=$(WORK)/strata-sbom STRATA_CLI=$(WORK)/strata STRATA_CLI_RACE=$(WORK)/strata-race STRATA_CLI_FAILPOINTS=$(WORK)/strata-fp STRATA_COMPARE=$(WORK)/strata-compare STRATA_TEST_CACHE=$(STRATA_TEST_CACHE) STRATA_CRASH_RANDOM_KILLS=$(CRASH_RANDOM_KILLS) STRATA_INTEGRATION=1
integration: skopeo-tool
	@mkdir -p $(WORK) $(STRATA_TEST_CACHE) && chmod 1777 $(WORK) $(STRATA_TEST_CACHE)
	$(GO) test -race -c -tags '$(TAGS)' -o $(WORK)/integration.test ./integration
	$(GO) test -c -tags '$(IT_TAGS)' -o $(WORK)/crash.test ./integration
	$(GO) build -tags '$(TAGS)' -o $(WORK)/strata ./cmd/strata
	@# The CLI once more with the race detector, for the tests that drive it
	@# over pull, build, export and push (TestRegistryMirror).
	$(GO) build -race -tags '$(TAGS)' -o $(WORK)/strata-race ./cmd/strata
	@# ... and with the failpoints, for the signal tests.
	$(GO) build -tags '$(IT_TAGS)' -o $(WORK)/strata-fp ./cmd/strata
	$(GO) build -tags '$(TAGS)' -o $(WORK)/strata-compare ./cmd/strata-compare
	@# strata-sbom, the SBOM module's command (builder.SBOM, --sbom).
	cd sbom && $(GO) build -o $(WORK)/strata-sbom ./cmd/strata-sbom
	chmod 755 $(WORK)/integration.test $(WORK)/crash.test $(WORK)/strata $(WORK)/strata-race $(WORK)/strata-fp $(WORK)/strata-compare $(WORK)/strata-sbom
	@echo "running integration tests as $(TEST_USER) (or the current user)"
	@cmd='$(IT_ENV) ./integration.test -test.v -test.timeout 60m -test.skip "^($(SLOW_IT)|$(COMPARE_IT))$$" $(IT_RUN)'; $(RUN_AS)
	@cmd='$(IT_ENV) ./crash.test -test.v -test.timeout 30m -test.run "$(NORACE_RUN)"'; $(RUN_AS)
	@# The signal tests start builds from outside the user namespace, as a
	@# CI runner does (TestMain skips the re-exec for them).
	@cmd='$(IT_ENV) STRATA_TEST_OUTSIDE_NS=1 ./crash.test -test.v -test.timeout 20m -test.run "$(SIGNAL_RUN)"'; $(RUN_AS)

# On a host with an NVIDIA driver: the GPU step test, rootless as
# $(TEST_USER) and then as root.
gpu-e2e:
	@mkdir -p $(WORK) && chmod 1777 $(WORK)
	$(GO) test -c -tags '$(TAGS) gpu_e2e' -o $(WORK)/gpu-e2e.test ./integration
	chmod 755 $(WORK)/gpu-e2e.test
	cd $(WORK) && su $(TEST_USER) -c 'cd $(WORK) && STRATA_INTEGRATION=1 ./gpu-e2e.test -test.v -test.run GPUEndToEnd'
	cd $(WORK) && STRATA_INTEGRATION=1 STRATA_ALLOW_ROOT=1 ./gpu-e2e.test -test.v -test.run GPUEndToEnd

demo:
	@mkdir -p $(WORK) && chmod 1777 $(WORK)
	$(GO) build -tags '$(TAGS)' -o $(WORK)/demo ./examples/demo
	$(GO) build -tags '$(TAGS)' -o $(WORK)/bench ./cmd/strata-bench
	cp -r examples/demo/app $(WORK)/ && chmod -R a+rX $(WORK)
	@cmd='cd $(WORK) && ./bench -make-base $(WORK)/busybox.tar && ./demo -base $(WORK)/busybox.tar -app $(WORK)/app && echo "--- again, unchanged:" && ./demo -base $(WORK)/busybox.tar -app $(WORK)/app'; \
	if [ "$$(id -u)" = 0 ]; then su $(TEST_USER) -c "$$cmd"; else bash -c "$$cmd"; fi

# Command against command first (strata build, buildah bud --layers and,
# after make buildkit-tools, BuildKit's buildctl: a process per build, fresh
# stores, BENCH_ROUNDS rounds interleaved, medians with their range), then
# the library-session figures.
BENCH_ROUNDS ?= 3
bench:
	@mkdir -p $(WORK) && chmod 1777 $(WORK)
	$(GO) build -tags '$(TAGS)' -o $(WORK)/bench ./cmd/strata-bench
	$(GO) build -tags '$(TAGS)' -o $(WORK)/strata ./cmd/strata
	$(GO) build -tags '$(TAGS)' -o $(WORK)/compare ./cmd/strata-compare
	@cmd='cd $(WORK) && ./bench -peers -compare $(WORK)/compare -cli $(WORK)/strata -tools $(BUILDKIT_TOOLS) -rounds $(BENCH_ROUNDS) -work $(WORK)/bench-peers && ./bench -work $(WORK)/bench-run'; \
	if [ "$$(id -u)" = 0 ]; then su $(TEST_USER) -c "$$cmd"; else bash -c "$$cmd"; fi

# What provenance, SBOM and signing add to a build of a Python app image on
# the minbase (a push and an oci: layout per mode, rounds interleaved).
bench-attest:
	@mkdir -p $(WORK) && chmod 1777 $(WORK)
	$(GO) build -tags '$(TAGS)' -o $(WORK)/bench ./cmd/strata-bench
	$(GO) build -tags '$(TAGS)' -o $(WORK)/strata ./cmd/strata
	cd sbom && $(GO) build -o $(WORK)/strata-sbom ./cmd/strata-sbom
	@cmd='cd $(WORK) && ./bench -attest -cli $(WORK)/strata -sbom $(WORK)/strata-sbom -rounds $(BENCH_ROUNDS) -work $(WORK)/bench-attest'; \
	if [ "$$(id -u)" = 0 ]; then su $(TEST_USER) -c "$$cmd"; else bash -c "$$cmd"; fi

# strata and `buildah bud --layers` build the same Dockerfile; their root
# filesystems and configs are compared (times ignored) and both commands
# are timed (a process per build on each side).
# Without DOCKERFILE, every file of the Dockerfile corpus is built with the
# corpus context. BASES="name=rootfs.tar ..." serves FROM names (busybox is
# made from the host's busybox-static); EDIT=file adds a timed rebuild after
# appending an empty line to that file (in a copy of the context); COMPARE_FLAGS passes anything else
# (-build-arg K=V, -target S, -secret ID=V, -v).
DOCKERFILE ?=
CONTEXT ?=
BASES ?=
EDIT ?=
COMPARE_FLAGS ?=
COMPARE_ARGS = $(if $(DOCKERFILE),-dockerfile $(abspath $(DOCKERFILE)) $(if $(CONTEXT),-context $(abspath $(CONTEXT))),\
	-corpus $(abspath dockerfile/testdata/corpus) -context $(abspath $(or $(CONTEXT),dockerfile/testdata/context))) \
	$(foreach b,$(BASES),-base $(firstword $(subst =, ,$(b)))=$(abspath $(lastword $(subst =, ,$(b))))) \
	$(if $(EDIT),-edit $(EDIT)) $(COMPARE_FLAGS)
# REF=buildkit compares with BuildKit instead (make buildkit-tools first;
# over the corpus it also writes the outcome lines to
# dockerfile/testdata/compare-buildkit.txt, the committed result).
REF ?= buildah
compare:
	@mkdir -p $(WORK) && chmod 1777 $(WORK)
	$(GO) build -tags '$(TAGS)' -o $(WORK)/compare ./cmd/strata-compare
	$(GO) build -tags '$(TAGS)' -o $(WORK)/strata ./cmd/strata
	$(if $(filter buildkit,$(REF)),@test -x $(BUILDKIT_TOOLS)/buildkitd || { echo "run make buildkit-tools first"; exit 1; })
	@cmd='cd $(WORK) && ./compare -ref $(REF) -tools $(BUILDKIT_TOOLS) -work $(WORK)/compare-run -cli $(WORK)/strata $(COMPARE_ARGS) | tee $(WORK)/compare-$(REF).out; exit $${PIPESTATUS[0]}'; \
	if [ "$$(id -u)" = 0 ]; then su $(TEST_USER) -c "$$cmd"; else bash -c "$$cmd"; fi; rc=$$?; \
	if [ "$(REF)" = buildkit ] && [ -z "$(DOCKERFILE)" ] && [ $$rc -le 1 ]; then \
		grep -E '^== |\(strata \| buildkit\)$$|Dockerfiles:' $(WORK)/compare-buildkit.out | sed 's/^== //' > dockerfile/testdata/compare-buildkit.txt; fi; \
	exit $$(( rc > 1 ? rc : 0 ))
compare-buildah:
	$(MAKE) compare REF=buildah

# The corpus against buildah, checked against dockerfile/testdata/compare.golden
# (TestSideBySideWithBuildah, about 2 minutes after make setup).
compare-golden:
	@mkdir -p $(WORK) $(STRATA_TEST_CACHE) && chmod 1777 $(WORK) $(STRATA_TEST_CACHE)
	$(GO) test -c -tags '$(TAGS)' -o $(WORK)/compare.test ./integration
	$(GO) build -tags '$(TAGS)' -o $(WORK)/strata ./cmd/strata
	$(GO) build -tags '$(TAGS)' -o $(WORK)/strata-compare ./cmd/strata-compare
	chmod 755 $(WORK)/compare.test $(WORK)/strata $(WORK)/strata-compare
	@cmd='$(IT_ENV) ./compare.test -test.v -test.timeout 30m -test.run "^($(COMPARE_IT))$$"'; $(RUN_AS)

# BuildKit (buildkitd, buildctl) and RootlessKit, built once from the Go
# module proxy into $(BUILDKIT_TOOLS) (go install refuses BuildKit for the
# exclude directives in its go.mod; a build inside a copy of the module
# works). About 6 minutes on 2 cores.
BUILDKIT_VERSION ?= v0.34.2
ROOTLESSKIT_VERSION ?= v2.3.6
BUILDKIT_TOOLS ?= /var/tmp/strata-tools/buildkit-$(BUILDKIT_VERSION)
buildkit-tools:
	@if [ -x $(BUILDKIT_TOOLS)/buildkitd ] && [ -x $(BUILDKIT_TOOLS)/buildctl ] && [ -x $(BUILDKIT_TOOLS)/rootlesskit ]; then \
		echo "BuildKit tools are in $(BUILDKIT_TOOLS)"; exit 0; fi; \
	set -e; tmp=$$(mktemp -d); trap 'chmod -R u+w '$$tmp'; rm -rf '$$tmp EXIT; \
	for m in github.com/moby/buildkit@$(BUILDKIT_VERSION) github.com/rootless-containers/rootlesskit/v2@$(ROOTLESSKIT_VERSION); do \
		d=$$(GOFLAGS= $(GO) mod download -json $$m | sed -n 's/^\t"Dir": "\(.*\)",$$/\1/p'); \
		test -n "$$d"; cp -r $$d $$tmp/$$(basename $${m%%@*}); done; \
	chmod -R u+w $$tmp; mkdir -p $(BUILDKIT_TOOLS).part; \
	(cd $$tmp/buildkit && CGO_ENABLED=0 GOFLAGS=-mod=mod $(GO) build -o $(abspath $(BUILDKIT_TOOLS)).part/ ./cmd/buildkitd ./cmd/buildctl); \
	(cd $$tmp/v2 && CGO_ENABLED=0 GOFLAGS=-mod=mod $(GO) build -o $(abspath $(BUILDKIT_TOOLS)).part/ ./cmd/rootlesskit); \
	chmod 755 $(BUILDKIT_TOOLS).part $(BUILDKIT_TOOLS).part/*; rm -rf $(BUILDKIT_TOOLS); mv $(BUILDKIT_TOOLS).part $(BUILDKIT_TOOLS); \
	echo "BuildKit tools are in $(BUILDKIT_TOOLS)"

# skopeo with sigstore, for the signature tests (TestSignedPush): Debian's
# skopeo, podman and buildah 1.28 are built with sigstore disabled
# ("Debian-local change: sigstore disabled" for any sigstoreSigned policy).
# Built once from the Go module proxy (a copy of the module, its deps by
# go.mod; vendor/ is not in the module zip) into $(SKOPEO_TOOL).
SKOPEO_VERSION ?= v1.16.1
SKOPEO_TOOL ?= /var/tmp/strata-tools/skopeo-$(SKOPEO_VERSION)/skopeo
skopeo-tool:
	@if [ -x $(SKOPEO_TOOL) ]; then echo "skopeo $(SKOPEO_VERSION) is $(SKOPEO_TOOL)"; exit 0; fi; \
	set -e; tmp=$$(mktemp -d); trap 'chmod -R u+w '$$tmp'; rm -rf '$$tmp EXIT; \
	d=$$(GOFLAGS= $(GO) mod download -json github.com/containers/skopeo@$(SKOPEO_VERSION) | sed -n 's/^\t"Dir": "\(.*\)",$$/\1/p'); \
	test -n "$$d"; cp -r $$d $$tmp/skopeo; chmod -R u+w $$tmp; rm -rf $$tmp/skopeo/vendor; \
	mkdir -p $$(dirname $(SKOPEO_TOOL)); \
	(cd $$tmp/skopeo && CGO_ENABLED=0 GOFLAGS='-mod=mod -buildvcs=false' $(GO) build \
		-tags 'containers_image_openpgp exclude_graphdriver_btrfs exclude_graphdriver_devicemapper' -o $(SKOPEO_TOOL).part ./cmd/skopeo); \
	chmod 755 $$(dirname $(SKOPEO_TOOL)) $(SKOPEO_TOOL).part; mv $(SKOPEO_TOOL).part $(SKOPEO_TOOL); \
	echo "skopeo $(SKOPEO_VERSION) is $(SKOPEO_TOOL)"

clean:
	rm -rf $(WORK)
