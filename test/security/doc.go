// Package security is the black-box security and hostile-input suite of
// go-websocket.
//
// TestMain builds the real server binary once (go build -o BIN . at the
// repository root). Every test starts its own node(s) on free loopback ports
// with a private data directory, configured through GOWS_<SECTION>_<KEY>
// overrides of the repository's conf.ini, and talks to them only as a
// backend, a browser or an attacker would: HTTP requests, WebSocket
// connections (gorilla/websocket) and raw TCP bytes. Each node's log (its
// stderr) is captured; assertions read it and it is printed when a test fails.
//
// What is covered (SPEC sections 3, 5 and 6, README "Running it safely in
// production"):
//   - auth_test.go: API tokens (both path sets, rotation, /healthz open),
//     connect tokens (JWT HS256 and every way to get one wrong, the token's
//     userId in membership events), allowed origins, start-up warnings, the
//     stats endpoint and the profiler behind the token.
//   - limits_test.go: body size, frame size, connections per node and per
//     system, per-system API rate limit (also under concurrent calls), and
//     the metrics that count them; a trickled frame cannot outlive pongWait.
//   - tenant_test.go: one system can never see, address or close another
//     system's clients; forged and tampered clientIds are "not online".
//   - secrets_test.go: API tokens, the connect secret and credentials sent
//     in requests never appear in logs, responses, frames or /metrics.
//   - hostile_test.go: garbage frames, HTTP garbage, a never-ending frame,
//     slowloris, an invalid-request flood; the node keeps serving fast and
//     leaks nothing. probe_test.go is its latency probe, a re-execution of
//     the test binary.
//   - protocol_test.go: the WebSocket details real clients rely on: every
//     registered close code echoed and the others answered with 1002, a
//     close reason that is not UTF-8 answered with 1007, bad opening
//     handshakes (HTTP/1.0, no or short key, wrong version) answered with
//     the JSON 400, subprotocol selection, upgrades logged with status 101.
//
// Helpers: harness_test.go (nodes, API calls, metrics) and wsclient_test.go
// (connect options and tokens), over the shared test/internal/nodeproc
// (build, node processes) and test/internal/wstest (WebSocket client, raw
// frames, API client, polls).
//
// Run: GOTOOLCHAIN=go1.27.3 go test -race -count=1 ./test/security/
package security
