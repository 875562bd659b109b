package gateway

import (
	"errors"
	"log/slog"
	"net"
	"strings"
)

// errAttr logs err without the network addresses that Go's *net.OpError
// prints ("read tcp 127.0.0.1:1965->192.0.2.7:51234: …"): one of them is
// the client's, and raw client addresses never leave the node.
func errAttr(err error) slog.Attr {
	return slog.String("err", clientSafe(err))
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
