// Package e2e is the black-box end-to-end test suite of one standalone
// go-websocket node.
//
// TestMain builds the server binary from the repository root once, and every
// test starts its own node process on free loopback ports with a private data
// directory, configured through GOWS_<SECTION>_<KEY> environment overrides of
// the repository's conf.ini. The tests talk to the node only as a user would:
// real HTTP requests and real WebSocket connections (gorilla/websocket).
//
// Run: GOTOOLCHAIN=go1.27.3 go test -race -count=1 ./test/e2e/
//
// Set E2E_GOWS_BIN to a prebuilt binary to skip the build.
package e2e
