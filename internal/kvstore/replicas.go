package kvstore

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// ReplicasSetting is the variable that sets the replicas of everything the bridge keeps on
// JetStream (the outbox stream and the key-value buckets); errors about replicas name it.
const ReplicasSetting = "BRIDGE_NATS_JETSTREAM_REPLICAS"

// ReplicaCheck reports the JetStream objects (streams, buckets) that have fewer replicas
// than asked because NATS refused to create or scale them: loudly and in one place, as a
// log line naming the object, its replicas, the replicas asked and the fix, the gauge
// zuul_bridge_jetstream_replicas_short{object} (replicas missing, 0 when none) and a
// /readyz note. A nil *ReplicaCheck reports nothing, and a refused scale-up is an error
// instead (never an object silently used with fewer replicas). Safe for concurrent use.
type ReplicaCheck struct {
	log   zerolog.Logger
	gauge *prometheus.GaugeVec

	mu    sync.Mutex
	short map[string]string // object -> note
}

// NewReplicaCheck registers the gauge on reg (nil: not registered).
func NewReplicaCheck(log zerolog.Logger, reg prometheus.Registerer) *ReplicaCheck {
	r := &ReplicaCheck{log: log, short: map[string]string{},
		gauge: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "zuul_bridge_jetstream_replicas_short",
			Help: "Replicas a JetStream stream or bucket of the bridge lacks against " + ReplicasSetting +
				" because NATS refused to create or scale it (0: as asked); the log and /readyz say why."},
			[]string{"object"})}
	if reg != nil {
		reg.MustRegister(r.gauge)
	}
	return r
}

func (r *ReplicaCheck) ok(object string) {
	if r == nil {
		return
	}
	r.mu.Lock()
	_, was := r.short[object]
	delete(r.short, object)
	r.mu.Unlock()
	r.gauge.WithLabelValues(object).Set(0)
	if was {
		r.log.Info().Str("object", object).Msg("JetStream object now has the replicas asked")
	}
}

func (r *ReplicaCheck) refused(object string, have, want int, err error) {
	if r == nil {
		return
	}
	fix := fmt.Sprintf("run at least %d JetStream servers in the NATS cluster, or set %s to at most the servers there are, "+
		"or scale it yourself (nats stream edit %s --replicas %d)", want, ReplicasSetting, streamOf(object), want)
	note := fmt.Sprintf("%s has %d of the %d replicas asked (%s): NATS refused: %v; %s", object, have, want, ReplicasSetting, err, fix)
	r.mu.Lock()
	prev, known := r.short[object]
	r.short[object] = note
	r.mu.Unlock()
	r.gauge.WithLabelValues(object).Set(float64(want - have))
	if !known || prev != note {
		r.log.Error().Str("object", object).Int("replicas", have).Int("replicas_asked", want).Err(err).Str("fix", fix).
			Msg("JetStream object has fewer replicas than " + ReplicasSetting + " asks: losing a NATS node may stop what it holds")
	}
}

// Notes are the /readyz lines of the objects short of replicas, sorted.
func (r *ReplicaCheck) Notes() []string {
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, 0, len(r.short))
	for _, n := range r.short {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// streamOf is the stream behind an object's name ("stream X" or "bucket Y").
func streamOf(object string) string {
	if b, ok := strings.CutPrefix(object, "bucket "); ok {
		return "KV_" + b
	}
	if s, ok := strings.CutPrefix(object, "stream "); ok {
		return s
	}
	return object
}

// BucketObject and StreamObject name an object in reports and the gauge.
func BucketObject(bucket string) string { return "bucket " + bucket }

// StreamObject names a stream in reports and the gauge.
func StreamObject(stream string) string { return "stream " + stream }

// refusal reports whether err is the JetStream API refusing a request for good (as
// opposed to no answer, or a cluster busy electing a leader, which pass).
func refusal(err error) bool {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	switch apiErr.ErrorCode {
	case 10008: // JetStream system temporarily unavailable (no meta leader, say)
		return false
	}
	return apiErr.Code != 503 && apiErr.Code != 408
}

// ReplicasError makes the error of creating object with want replicas name the setting
// when NATS refused it (e.g. 3 replicas on a single server), and has check report it;
// other errors pass as they are.
func ReplicasError(err error, object string, want int, check *ReplicaCheck) error {
	if err == nil || want <= 1 || !refusal(err) || noJetStream(err) {
		return err
	}
	check.refused(object, 0, want, err)
	return fmt.Errorf("%s: NATS refuses to create it with %d replicas (%s; at most the number of JetStream servers): %w",
		object, want, ReplicasSetting, err)
}

// EnsureReplicas scales stream (object names it in reports) up to want replicas when it
// has fewer, changing nothing else of its configuration; NATS allows raising a stream's
// replicas in a cluster. An object with more replicas than asked is left as it is. When
// NATS refuses, check reports it and the object is used as it is (err nil); with a nil
// check the refusal is the error. A server that does not answer is an error to retry.
func EnsureReplicas(ctx context.Context, js jetstream.JetStream, stream jetstream.Stream, object string, want int, check *ReplicaCheck) error {
	if want <= 0 {
		want = 1
	}
	info := stream.CachedInfo()
	have := max(info.Config.Replicas, 1)
	if have >= want {
		check.ok(object)
		return nil
	}
	cfg := info.Config
	cfg.Replicas = want
	_, err := js.UpdateStream(ctx, cfg)
	switch {
	case err == nil:
		check.ok(object)
		if check != nil {
			check.log.Info().Str("object", object).Int("from", have).Int("to", want).Msg("JetStream object scaled up to the replicas asked")
		}
		return nil
	case !refusal(err) || check == nil:
		return fmt.Errorf("%s: scaling from %d to %d replicas (%s): %w", object, have, want, ReplicasSetting, err)
	}
	check.refused(object, have, want, err)
	return nil
}
