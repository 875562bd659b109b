package gateway

import (
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"strings"
)

// errAttr logs err without the network addresses that Go's *net.OpError
// prints ("read tcp 127.0.0.1:1965->192.0.2.7:51234: …"): one of them is
// the client's, and raw client addresses never leave the node. The text is
// built only if the record is logged.
func errAttr(err error) slog.Attr {
	return slog.Any("err", safeErr{err})
}

type safeErr struct{ err error }

func (e safeErr) LogValue() slog.Value { return slog.StringValue(clientSafe(e.err)) }

// clientAttr names the client at addr in a log record by its keyed hash
// (empty without a hasher), computed only if the record is logged: a
// disabled debug line costs no HMAC.
func clientAttr(h ClientHasher, addr netip.Addr) slog.Attr {
	return slog.Any("client", hashedClient{h, addr})
}

type hashedClient struct {
	h    ClientHasher
	addr netip.Addr
}

func (c hashedClient) LogValue() slog.Value {
	if c.h == nil {
		return slog.StringValue("")
	}
	return slog.StringValue(c.h.HashAddr(c.addr))
}

func clientSafe(err error) string {
	if err == nil {
		return ""
	}
	msg := err.Error()
	for e := err; e != nil; {
		var op *net.OpError
		if !errors.As(e, &op) {
			break
		}
		inner := "<nil>"
		if op.Err != nil {
			inner = op.Err.Error()
		}
		msg = strings.ReplaceAll(msg, op.Error(), op.Op+" "+op.Net+": "+inner)
		e = op.Err
	}
	return msg
}
