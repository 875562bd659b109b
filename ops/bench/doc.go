// Package bench is Chimalli's Gemini load generator, the library behind
// `chimalli bench URL…`.
//
// Every request is one full Gemini exchange on its own connection: dial TCP,
// TLS handshake (SNI = the URL host unless it is an IP literal; session
// resumption through a shared tls.ClientSessionCache when Options.Resume is
// set), write "URL\r\n", read the response header (at most 1029 bytes,
// judged by gateway.ParseResponseHeader, the rule the gateway's own proxy
// applies), read the body to EOF, close. The generator never verifies server certificates
// (Gemini is trust-on-first-use and this is a load tool); instead it records
// the SHA-256 fingerprint of the first certificate each target presents and
// counts any later, different certificate as the error kind "cert_changed".
//
// Two loops are offered:
//
//   - Closed loop (Options.Rate == 0): Options.Concurrency workers each run
//     requests back to back as fast as the server answers. Latency is
//     measured from the moment a request starts.
//   - Open loop (Options.Rate > 0): a scheduler goroutine plans one slot every
//     1/Rate seconds from the start, independently of responses, and feeds the
//     slots' scheduled start times to the workers through a channel. Latency is
//     measured from the scheduled start, so when every worker is busy the
//     lateness shows in the latency instead of silently lowering the load
//     (no coordinated omission).
//
// A run lasts Options.Duration, or until Options.Requests measured requests
// have completed when that is set, after an optional warm-up whose requests
// are not recorded. Cancelling the context (Ctrl-C) stops a run early and Run
// still returns the partial Report.
//
// Latencies go into HDR histograms (microsecond resolution, 60 s maximum),
// one per worker, merged when the run ends so workers never contend.
//
// Safety: unless Options.AllowRemote is set, Run refuses any target whose
// host is not "localhost" and does not resolve only to loopback addresses
// (127.0.0.0/8, ::1), and every connection is checked again at connect time,
// so a DNS change during a run cannot redirect the load elsewhere.
package bench
