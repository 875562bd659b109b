package main

import (
	"github.com/chimalli/chimalli/events"
	"github.com/chimalli/chimalli/gateway"
)

// auditSink turns the gateway's Outcomes into audit records: the client
// address becomes its keyed hash here, so no raw address reaches the
// record, and the path is the canonical one without the query. Each
// record goes to the audit file (when set) and to the event plane, under
// the same ID.
type auditSink struct {
	log    *events.AuditLog       // nil: no audit.file
	pub    *events.AuditPublisher // nil until the event plane runs
	hasher *events.IPHasher
}

var _ gateway.AuditSink = auditSink{}

func (a auditSink) Audit(o *gateway.Outcome) {
	rec := events.AuditRecord{
		Time:     o.Start.UTC(),
		Client:   a.hasher.HashAddr(o.Addr),
		Stage:    events.StageRequest,
		Status:   o.Status,
		Reason:   o.Reason.String(),
		Bytes:    o.Bytes,
		Duration: o.Duration,
	}
	if o.Stage == gateway.StageAccept {
		rec.Stage = events.StageAccept
	}
	if r := o.Request; r != nil && r.Scheme != 0 {
		rec.Scheme, rec.Host, rec.Path = r.Scheme.String(), r.Host, r.Path
		if r.ClientCert != nil {
			rec.Cert = r.ClientID.CertFingerprint().String()
		}
	}
	switch {
	case a.log != nil && a.pub != nil:
		events.RecordToBoth(a.log, a.pub, &rec) // one ID, checked and encoded once
	case a.log != nil:
		a.log.Record(&rec)
	case a.pub != nil:
		a.pub.Record(&rec)
	}
}
