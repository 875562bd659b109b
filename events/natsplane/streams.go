package natsplane

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/chimalli/chimalli/events"
	"github.com/nats-io/nats.go/jetstream"
)

// The streams' names.
const (
	// StreamEvents holds committed state events, one message per event.
	StreamEvents = events.StateStreamName
	// StreamAudit holds audit records, one message per record.
	StreamAudit = "CHIMALLI_AUDIT"
)

// Subject names under chimalli.<cluster>. (see Subject).
const (
	SubjectBanAdded      = "ban.added"
	SubjectBanLifted     = "ban.lifted"
	SubjectTrustConflict = events.TypeTrustConflict
	// SubjectCmdBan carries ban requests from outside the cluster. It is
	// in no stream: nodes answer it as requests.
	SubjectCmdBan = "cmd.ban"
)

// DefaultDuplicates is the streams' duplicate window when none is given:
// a message whose Nats-Msg-Id the stream saw within it is dropped.
const DefaultDuplicates = 10 * time.Minute

// SubjectPrefix returns "chimalli.<cluster>.", the prefix of every subject
// of the cluster.
func SubjectPrefix(cluster string) string { return "chimalli." + cluster + "." }

// Subject returns chimalli.<cluster>.<name>; a state event's name is its
// type (ban.added, trust.pinned, acl.rule_added, …).
func Subject(cluster, name string) string { return SubjectPrefix(cluster) + name }

// AuditSubject returns chimalli.<cluster>.audit.<node>, where node's
// audit records go.
func AuditSubject(cluster, node string) string { return Subject(cluster, "audit."+node) }

// EventSubjects returns the subjects CHIMALLI_EVENTS takes: the committed
// state events, each spelled out, and the publisher's gap marker
// (events.StateSubjects). Nothing else may publish into it.
func EventSubjects(cluster string) []string { return events.StateSubjects(cluster) }

// AuditSubjects returns the subjects CHIMALLI_AUDIT takes: audit.<node>,
// and trust.conflict (a node's observation, not committed state).
func AuditSubjects(cluster string) []string {
	return []string{Subject(cluster, "audit.*"), events.ConflictSubject(cluster)}
}

// StreamsConfig configures the streams.
type StreamsConfig struct {
	// ClusterName is the subjects' cluster token; empty means
	// DefaultClusterName.
	ClusterName string
	// Replicas is how many servers keep each stream (see ReplicasFor).
	// Below 1 means 1.
	Replicas int
	// EventsMaxAge bounds the age of state events; 0 keeps them forever.
	EventsMaxAge time.Duration
	// AuditMaxAge and AuditMaxBytes bound the audit stream, the oldest
	// records going first; 0 means no bound.
	AuditMaxAge   time.Duration
	AuditMaxBytes int64
	// Duplicates is the duplicate window (Nats-Msg-Id); 0 means
	// DefaultDuplicates. It is cut to a stream's max age when longer.
	Duplicates time.Duration
}

// StreamConfigs returns the two streams' configurations.
func StreamConfigs(cfg StreamsConfig) ([]jetstream.StreamConfig, error) {
	if cfg.ClusterName == "" {
		cfg.ClusterName = DefaultClusterName
	}
	if err := ValidateClusterName(cfg.ClusterName); err != nil {
		return nil, err
	}
	if cfg.EventsMaxAge < 0 || cfg.AuditMaxAge < 0 || cfg.AuditMaxBytes < 0 || cfg.Duplicates < 0 {
		return nil, errors.New("streams: negative limit")
	}
	dup := cfg.Duplicates
	if dup == 0 {
		dup = DefaultDuplicates
	}
	window := func(maxAge time.Duration) time.Duration {
		if maxAge > 0 && dup > maxAge {
			return maxAge
		}
		return dup
	}
	maxBytes := func(n int64) int64 {
		if n == 0 {
			return -1
		}
		return n
	}
	replicas := max(cfg.Replicas, 1)
	// The events stream is the state publisher's (events.StateStreamConfig:
	// its name, subjects, storage and retention), with this plane's limits.
	stateEvents := events.StateStreamConfig(cfg.ClusterName)
	stateEvents.Description = "Chimalli committed state events"
	stateEvents.MaxAge, stateEvents.MaxBytes, stateEvents.MaxMsgs = cfg.EventsMaxAge, -1, -1
	stateEvents.Replicas, stateEvents.Duplicates = replicas, window(cfg.EventsMaxAge)
	return []jetstream.StreamConfig{stateEvents, {
		Name:        StreamAudit,
		Description: "Chimalli audit records",
		Subjects:    AuditSubjects(cfg.ClusterName),
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxAge:      cfg.AuditMaxAge,
		MaxBytes:    maxBytes(cfg.AuditMaxBytes),
		MaxMsgs:     -1,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
		Duplicates:  window(cfg.AuditMaxAge),
	}}, nil
}

// EnsureStreams creates the streams, or updates them to cfg when they
// exist: calling it again with the same cfg changes nothing. It fails
// while clustered JetStream has no leader or too few servers for the
// replicas; see WaitStreams.
func EnsureStreams(ctx context.Context, js jetstream.JetStream, cfg StreamsConfig) error {
	scs, err := StreamConfigs(cfg)
	if err != nil {
		return err
	}
	for _, sc := range scs {
		if _, err := js.CreateOrUpdateStream(ctx, sc); err != nil {
			return fmt.Errorf("stream %s: %w", sc.Name, err)
		}
	}
	return nil
}

// WaitStreams calls EnsureStreams until it succeeds or ctx ends; onRetry,
// when not nil, is told each failure. A request sent while clustered
// JetStream has no leader gets no answer, so each attempt is bounded, from
// 500 ms doubling up to 4 s, and a failed one waits 100 ms before the
// next. A configuration error ends it at once.
func WaitStreams(ctx context.Context, js jetstream.JetStream, cfg StreamsConfig, onRetry func(error)) error {
	if _, err := StreamConfigs(cfg); err != nil {
		return err
	}
	bound := 500 * time.Millisecond
	for {
		actx, cancel := context.WithTimeout(ctx, bound)
		err := EnsureStreams(actx, js, cfg)
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("ensure streams: %w", errors.Join(ctx.Err(), err))
		}
		if onRetry != nil {
			onRetry(err)
		}
		t := time.NewTimer(100 * time.Millisecond)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("ensure streams: %w", errors.Join(ctx.Err(), err))
		}
		bound = min(2*bound, 4*time.Second)
	}
}
