# strata: build, test and benchmark. Run `make setup` once as root.
SHELL := /bin/bash
export CGO_ENABLED := 1
export CGO_CFLAGS := -O2 -g -Wno-deprecated-declarations
TAGS := containers_image_openpgp exclude_graphdriver_btrfs seccomp
GO ?= go
TEST_USER ?= strata-test
# Where integration tests keep their cached bases (minbase tarball etc.).
STRATA_TEST_CACHE ?= /var/tmp/strata-test-cache
BIN := $(CURDIR)/.bin

.PHONY: setup build vet test unit integration bench demo clean

build:
	$(GO) build -tags '$(TAGS)' ./...

vet:
	$(GO) vet -tags '$(TAGS)' ./...
