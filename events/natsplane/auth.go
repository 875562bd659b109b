package natsplane

import (
	"errors"
	"fmt"

	"github.com/chimalli/chimalli/events"
	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
)

// Connection types a user may be restricted to.
const (
	connTypeInProcess = jwt.ConnectionTypeInProcess
	connTypeStandard  = jwt.ConnectionTypeStandard
)

// tlsUsers returns the users the client port maps certificates to. Each
// may connect over the network only (not in process), and a certificate
// must map to one of them: there is no anonymous user.
func tlsUsers(users []User, cluster string) ([]*server.User, error) {
	seen := map[string]bool{}
	var out []*server.User
	for _, u := range users {
		if u.Cert == "" {
			return nil, errors.New("user with no certificate name")
		}
		if seen[u.Cert] {
			return nil, fmt.Errorf("user %q listed twice", u.Cert)
		}
		seen[u.Cert] = true
		su := &server.User{Username: u.Cert, AllowedConnectionTypes: map[string]struct{}{connTypeStandard: {}}}
		switch u.Role {
		case RoleAdmin:
			// nil permissions: everything in the account.
		case RoleNode:
			su.Permissions = nodePermissions(cluster)
		default:
			return nil, fmt.Errorf("user %q: unknown role %d", u.Cert, u.Role)
		}
		out = append(out, su)
	}
	if len(out) == 0 {
		return nil, errors.New("client port with no users: nobody could connect")
	}
	return out, nil
}

// nodePermissions are a node's: its cluster's subjects, the JetStream API
// (streams, consumers, acknowledgements, flow control), and replies to
// requests it receives. A node answers ban requests (cmd.ban) but may not
// make one: only the admin role may, so a node's certificate, or its
// in-process connection, cannot ban through the back door of the event
// plane.
func nodePermissions(cluster string) *server.Permissions {
	own := SubjectPrefix(cluster) + ">"
	return &server.Permissions{
		Publish: &server.SubjectPermission{
			Allow: []string{own, "$JS.API.>", "$JS.ACK.>", "$JS.FC.>"},
			Deny:  []string{events.BanSubject(cluster)},
		},
		Subscribe: &server.SubjectPermission{
			Allow: []string{own, "_INBOX.>"},
		},
		Response: &server.ResponsePermission{MaxMsgs: 1},
	}
}
