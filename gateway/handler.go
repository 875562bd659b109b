package gateway

import (
	"context"
	"io"
)

// ResponseWriter writes one Gemini response: a header, then, for status 20,
// a body.
type ResponseWriter interface {
	// WriteHeader sends "<status> <meta>\r\n". Calls after the first return
	// an error and write nothing.
	WriteHeader(status int, meta string) error
	// Write writes body bytes. It fails if no 2x header was written.
	io.Writer
	// HeaderWritten reports whether a header has been sent.
	HeaderWritten() bool
}

// Flusher is implemented by a ResponseWriter that buffers: Flush sends
// what it holds to the client now. A handler that streams (the proxy,
// relaying a slow upstream) uses it so that the client sees each part as
// it comes.
type Flusher interface {
	Flush() error
}

// Handler serves an allowed request. A handler that fails before writing a
// header returns an *Error (or any error, taken as ReasonInternal); the
// adapter turns it into a status. After the header is written, a returned
// error only ends the response.
type Handler interface {
	ServeGemini(ctx context.Context, w ResponseWriter, r *Request) error
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, w ResponseWriter, r *Request) error

// ServeGemini calls f.
func (f HandlerFunc) ServeGemini(ctx context.Context, w ResponseWriter, r *Request) error {
	return f(ctx, w, r)
}
