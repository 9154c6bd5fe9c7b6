// Package integration holds strata's end-to-end tests: real runc, real
// containers/storage, run as an ordinary user with subuid/subgid ranges
// (make test arranges this when invoked as root). Each test says what it
// needs and skips with the reason when that is missing.
package integration
