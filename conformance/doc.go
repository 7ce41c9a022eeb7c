// Package conformance is the suite of checks every regioncache backend must
// pass: the executable form of the contract written down in package backends.
//
// A backend author runs it from a _test.go file:
//
//	func TestConformance(t *testing.T) {
//		conformance.Run(t, conformance.Harness{Name: "mystore", Open: func(ctx context.Context, dir string) (backends.Backend, error) {
//			return mystore.Open(backends.Args{"base_dir": dir})
//		}})
//	}
//
// Each check runs as a subtest on freshly opened instances in a fresh
// directory. Checks for capabilities the backend does not declare are
// skipped with the reason "backend lacks capability X"; a backend that
// declares backends.Discarder (it keeps nothing, like the null backend) is
// held to what such a store can promise: every write accepted, every read a
// miss.
//
// The same checks run without a *testing.T through Check, which returns a
// Report (one Result per check) that the regioncache CLI prints as a table.
// Checks are plain functions returning errors, in the manner of
// testing/fstest.TestFS, and every check runs under a timeout so that a
// backend that hangs fails instead of stopping the suite.
//
// See docs/conformance.md for what each check demands and why.
package conformance
