package main

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/kelseyhightower/envconfig"
	"github.com/rs/zerolog"

	"github.com/SovereignCloudStack/zuul-bridge/internal/natspub"
	"github.com/SovereignCloudStack/zuul-bridge/internal/secret"
	"github.com/SovereignCloudStack/zuul-bridge/internal/zuulweb"
)

// Config is the bridge's environment, prefix BRIDGE_. Field names become variable names
// through split_words (ClientID -> BRIDGE_MQTT_CLIENT_ID). No field has an explicit
// envconfig name: envconfig would then also read the unprefixed variable (NATS_URL),
// which Kubernetes service links set in every pod.
type Config struct {
	MQTT       MQTTConfig
	NATS       NATSConfig
	Statuspage StatuspageConfig
	Zuul       ZuulConfig
	HTTP       struct {
		Addr  string `default:":8080"`
		Pprof bool   // serve /debug/pprof/ (profiling; off by default)
		// Lifecycle enables POST /-/reload (rules reload), like Prometheus's
		// --web.enable-lifecycle; off by default.
		Lifecycle bool
	}
	Log struct {
		Level  string `default:"info"`
		Format string `default:"json"`
	}
	Rules struct {
		File string
	}
	Delivery struct {
		Deadline duration `default:"2m"`
		Workers  integer  `default:"4"`
	}
	Shutdown struct {
		Grace duration `default:"20s"`
	}
	MaxPayload struct {
		Bytes integer `default:"4194304"`
	} `split_words:"true"`

	warnings []string // deprecated settings in use, logged at start
}

// MQTTConfig: BRIDGE_MQTT_*.
type MQTTConfig struct {
	URL            string
	Topic          string `default:"zuul/#"`
	ClientID       string `split_words:"true" default:"zuul-bridge"`
	Username       string
	Password       string   `json:"-"`
	PasswordFile   string   `split_words:"true"`
	CAFile         string   `split_words:"true"`
	CertFile       string   `split_words:"true"`
	KeyFile        string   `split_words:"true"`
	SessionExpiry  duration `split_words:"true" default:"24h"`
	ReceiveMaximum integer  `split_words:"true" default:"128"`
}

// NATSConfig: BRIDGE_NATS_*.
type NATSConfig struct {
	URL               string
	User              string
	Password          string `json:"-"`
	PasswordFile      string `split_words:"true"`
	Token             string `json:"-"`
	TokenFile         string `split_words:"true"`
	CredsFile         string `split_words:"true"`
	NkeyFile          string `split_words:"true"`
	CAFile            string `split_words:"true"`
	CertFile          string `split_words:"true"`
	KeyFile           string `split_words:"true"`
	DeadletterSubject string `split_words:"true" default:"zuul-bridge.deadletter"`
	// JetstreamReplicas: replicas of everything the bridge keeps on JetStream (the outbox
	// stream, the incident, reconciliation and token-chain buckets); existing ones with
	// fewer are scaled up. 3 survives the loss of one NATS node.
	JetstreamReplicas integer `split_words:"true" default:"1"`
}

// ZuulConfig: BRIDGE_ZUUL_*, the zuul-web reconciliation.
type ZuulConfig struct {
	URL               string
	Token             string
	TokenFile         string   `split_words:"true"`
	Tenants           []string // tenants to read back; required with URL
	ReconcileInterval duration `split_words:"true" default:"5m"`
	Lookback          duration `default:"24h"`
	KVBucket          string   `split_words:"true" default:"zuul-bridge-reconcile"`
	// Settle: a failure is recovered from zuul-web only this long after its buildset
	// ended (its MQTT report may still be on its way).
	Settle duration `default:"10m"`
}

// StatuspageConfig: BRIDGE_STATUSPAGE_*.
type StatuspageConfig struct {
	URL       string
	Token     string   `json:"-"`
	TokenFile string   `split_words:"true"`
	Timeout   duration `default:"10s"`
	// Instance names this deployment in the key store entries and the references of its
	// incidents: every replica must use the same value (not the per-pod client id), two
	// deployments sharing a status page different ones.
	Instance string `default:"zuul-bridge"`
	// KVBucket is the JetStream key-value bucket of the incident keys: it is how the
	// bridge knows its incidents (no marker in the public texts) and, with
	// compare-and-set, keeps several replicas from opening two incidents for one key.
	KVBucket string `split_words:"true" default:"zuul-bridge-incidents"`
	CAFile   string `split_words:"true"`
	CertFile string `split_words:"true"`
	KeyFile  string `split_words:"true"`

	// OIDC: BRIDGE_STATUSPAGE_OIDC_*, see auth.go.
	OIDC StatuspageOIDCConfig
	// RetryWindow is how long an item of the outbox is retried, counted from when it was
	// stored; then it is dead-lettered.
	RetryWindow duration `split_words:"true" default:"24h"`
	Outbox      OutboxConfig
}

// OutboxConfig: BRIDGE_STATUSPAGE_OUTBOX_*, the JetStream stream of status page work.
type OutboxConfig struct {
	Stream   string   `default:"ZUUL_BRIDGE_OUTBOX"`
	Subject  string   `default:"zuul-bridge.outbox"`
	Consumer string   `default:"zuul-bridge-outbox"`
	MaxAge   duration `split_words:"true" default:"168h"`
	MaxBytes integer  `split_words:"true" default:"1073741824"`
	// Replicas: deprecated alias of BRIDGE_NATS_JETSTREAM_REPLICAS, used when that is unset.
	Replicas integer
	AckWait  duration `split_words:"true" default:"10s"`
}

// loadConfig reads the environment and checks every value, reporting all problems at
// once, each by its variable name. Values of secrets never appear in an error.
func loadConfig() (*Config, error) {
	var c Config
	if err := envconfig.Process("BRIDGE", &c); err != nil {
		// Only reachable for a type envconfig parses itself; ours record their errors.
		return nil, err
	}
	if _, set := os.LookupEnv("BRIDGE_STATUSPAGE_OUTBOX_REPLICAS"); set {
		if _, both := os.LookupEnv("BRIDGE_NATS_JETSTREAM_REPLICAS"); !both && c.Statuspage.Outbox.Replicas.err == nil {
			c.NATS.JetstreamReplicas = c.Statuspage.Outbox.Replicas
		}
		c.warnings = append(c.warnings, "BRIDGE_STATUSPAGE_OUTBOX_REPLICAS is deprecated and applies only when "+
			"BRIDGE_NATS_JETSTREAM_REPLICAS is unset; set BRIDGE_NATS_JETSTREAM_REPLICAS (the replicas of every stream and bucket)")
	}
	var errs []error
	bad := func(name, format string, a ...any) {
		errs = append(errs, fmt.Errorf("BRIDGE_%s: %s", name, fmt.Sprintf(format, a...)))
	}
	for name, v := range map[string]interface{ error() error }{
		"DELIVERY_DEADLINE": c.Delivery.Deadline, "DELIVERY_WORKERS": c.Delivery.Workers,
		"SHUTDOWN_GRACE": c.Shutdown.Grace, "MAX_PAYLOAD_BYTES": c.MaxPayload.Bytes,
		"MQTT_SESSION_EXPIRY": c.MQTT.SessionExpiry, "MQTT_RECEIVE_MAXIMUM": c.MQTT.ReceiveMaximum,
		"STATUSPAGE_TIMEOUT": c.Statuspage.Timeout, "ZUUL_RECONCILE_INTERVAL": c.Zuul.ReconcileInterval,
		"ZUUL_LOOKBACK": c.Zuul.Lookback, "STATUSPAGE_RETRY_WINDOW": c.Statuspage.RetryWindow,
		"STATUSPAGE_OUTBOX_MAX_AGE": c.Statuspage.Outbox.MaxAge, "STATUSPAGE_OUTBOX_MAX_BYTES": c.Statuspage.Outbox.MaxBytes,
		"STATUSPAGE_OUTBOX_REPLICAS": c.Statuspage.Outbox.Replicas, "STATUSPAGE_OUTBOX_ACK_WAIT": c.Statuspage.Outbox.AckWait,
		"NATS_JETSTREAM_REPLICAS": c.NATS.JetstreamReplicas,
	} {
		if err := v.error(); err != nil {
			bad(name, "%v", err)
		}
	}
	if c.MQTT.URL == "" {
		bad("MQTT_URL", "required (e.g. mqtt://mosquitto:1883)")
	} else if err := mqttConfig(&c).Validate(); err != nil {
		// package mqtt owns its rules; here its messages get the variables' names.
		for _, e := range unjoin(err) {
			field, msg, _ := strings.Cut(e.Error(), ": ")
			name, ok := mqttVars[field]
			if !ok {
				name, msg = "MQTT", e.Error()
			}
			bad(name, "%s", msg)
		}
	}
	if c.NATS.URL == "" {
		bad("NATS_URL", "required (e.g. nats://nats:4222)")
	} else {
		for _, u := range strings.Split(c.NATS.URL, ",") {
			if err := checkURL(strings.TrimSpace(u), "nats", "tls", "ws", "wss"); err != nil {
				bad("NATS_URL", "%v", err)
			}
		}
	}
	if c.Statuspage.URL != "" {
		if err := checkURL(c.Statuspage.URL, "http", "https"); err != nil {
			bad("STATUSPAGE_URL", "%v", err)
		}
	}
	if c.Zuul.URL != "" {
		if err := checkURL(c.Zuul.URL, "http", "https"); err != nil {
			bad("ZUUL_URL", "%v", err)
		}
		for i, tenant := range c.Zuul.Tenants {
			c.Zuul.Tenants[i] = strings.TrimSpace(tenant)
		}
		if len(c.Zuul.Tenants) == 0 {
			bad("ZUUL_TENANTS", "required with BRIDGE_ZUUL_URL: the tenants to read back, comma-separated (e.g. scs)")
		}
		for _, tenant := range c.Zuul.Tenants {
			if err := zuulweb.CheckPathSegment(tenant); err != nil {
				bad("ZUUL_TENANTS", "tenant %q is not a tenant name (empty, \".\", \"..\", or with '/', '?' or '#')", tenant)
			}
		}
	}
	if err := natspub.CheckSubject(c.NATS.DeadletterSubject); err != nil || strings.ContainsAny(c.NATS.DeadletterSubject, "*>") {
		bad("NATS_DEADLETTER_SUBJECT", "%q is not a publish subject (no wildcards, no empty token, no whitespace, at most %d bytes)",
			c.NATS.DeadletterSubject, natspub.MaxSubjectBytes)
	}
	if c.MQTT.ClientID == "" {
		bad("MQTT_CLIENT_ID", "must not be empty: the broker keeps the session under it")
	}
	if v := c.MQTT.ReceiveMaximum.v; c.MQTT.ReceiveMaximum.err == nil && (v < 1 || v > 65535) {
		bad("MQTT_RECEIVE_MAXIMUM", "must be 1..65535, got %d", v)
	}
	if d := c.MQTT.SessionExpiry.v; c.MQTT.SessionExpiry.err == nil && (d < time.Minute || d > 136*365*24*time.Hour) {
		bad("MQTT_SESSION_EXPIRY", "must be at least 1m (the broker keeps reports for this long while the bridge is down), got %s", d)
	}
	for name, v := range map[string]integer{"DELIVERY_WORKERS": c.Delivery.Workers, "MAX_PAYLOAD_BYTES": c.MaxPayload.Bytes,
		"STATUSPAGE_OUTBOX_MAX_BYTES": c.Statuspage.Outbox.MaxBytes} {
		if v.err == nil && v.v < 1 {
			bad(name, "must be positive, got %d", v.v)
		}
	}
	if v := c.NATS.JetstreamReplicas; v.err == nil && (v.v < 1 || v.v > 5) {
		name := "NATS_JETSTREAM_REPLICAS"
		if _, set := os.LookupEnv("BRIDGE_" + name); !set {
			name = "STATUSPAGE_OUTBOX_REPLICAS"
		}
		bad(name, "must be 1..5 (JetStream keeps at most 5 replicas; 3 survives the loss of a NATS node), got %d", v.v)
	}
	for name, v := range map[string]duration{"DELIVERY_DEADLINE": c.Delivery.Deadline, "SHUTDOWN_GRACE": c.Shutdown.Grace,
		"STATUSPAGE_TIMEOUT": c.Statuspage.Timeout, "ZUUL_RECONCILE_INTERVAL": c.Zuul.ReconcileInterval, "ZUUL_LOOKBACK": c.Zuul.Lookback,
		"ZUUL_SETTLE": c.Zuul.Settle, "STATUSPAGE_RETRY_WINDOW": c.Statuspage.RetryWindow, "STATUSPAGE_OUTBOX_MAX_AGE": c.Statuspage.Outbox.MaxAge,
		"STATUSPAGE_OUTBOX_ACK_WAIT": c.Statuspage.Outbox.AckWait} {
		if v.err == nil && v.v <= 0 {
			bad(name, "must be positive, got %s", v.v)
		}
	}
	if _, err := zerolog.ParseLevel(c.Log.Level); err != nil || c.Log.Level == "" {
		bad("LOG_LEVEL", "%q is not a level (trace, debug, info, warn, error)", c.Log.Level)
	}
	if c.Log.Format != "json" && c.Log.Format != "console" {
		bad("LOG_FORMAT", "%q: use json or console", c.Log.Format)
	}
	// Secrets: the value or a file, not both; a named file must be readable now.
	secret := func(name, value, file string) {
		if value != "" && file != "" {
			bad(name, "set either BRIDGE_%s or BRIDGE_%s_FILE, not both", name, name)
		}
		if file != "" {
			if _, err := secret.ReadFile(file); err != nil {
				bad(name+"_FILE", "%v", err)
			}
		}
	}
	secret("MQTT_PASSWORD", c.MQTT.Password, c.MQTT.PasswordFile)
	secret("NATS_PASSWORD", c.NATS.Password, c.NATS.PasswordFile)
	secret("NATS_TOKEN", c.NATS.Token, c.NATS.TokenFile)
	secret("STATUSPAGE_TOKEN", c.Statuspage.Token, c.Statuspage.TokenFile)
	secret("ZUUL_TOKEN", c.Zuul.Token, c.Zuul.TokenFile)
	checkStatuspageAuth(&c, bad)
	for name, f := range map[string]string{
		"MQTT_CA_FILE": c.MQTT.CAFile, "MQTT_CERT_FILE": c.MQTT.CertFile, "MQTT_KEY_FILE": c.MQTT.KeyFile,
		"NATS_CA_FILE": c.NATS.CAFile, "NATS_CERT_FILE": c.NATS.CertFile, "NATS_KEY_FILE": c.NATS.KeyFile,
		"STATUSPAGE_CA_FILE": c.Statuspage.CAFile, "STATUSPAGE_CERT_FILE": c.Statuspage.CertFile, "STATUSPAGE_KEY_FILE": c.Statuspage.KeyFile,
		"NATS_CREDS_FILE": c.NATS.CredsFile, "NATS_NKEY_FILE": c.NATS.NkeyFile, "RULES_FILE": c.Rules.File,
	} {
		if f == "" {
			continue
		}
		if _, err := os.Stat(f); err != nil {
			bad(name, "%v", err)
		}
	}
	for p, pair := range map[string][2]string{
		"MQTT": {c.MQTT.CertFile, c.MQTT.KeyFile}, "NATS": {c.NATS.CertFile, c.NATS.KeyFile},
		"STATUSPAGE": {c.Statuspage.CertFile, c.Statuspage.KeyFile},
	} {
		if (pair[0] == "") != (pair[1] == "") {
			bad(p+"_CERT_FILE", "a client certificate needs both BRIDGE_%s_CERT_FILE and BRIDGE_%s_KEY_FILE", p, p)
		}
	}
	if o := c.Statuspage.Outbox; o.Subject == "" || strings.ContainsAny(o.Subject, " \t*>") || strings.HasSuffix(o.Subject, ".") {
		bad("STATUSPAGE_OUTBOX_SUBJECT", "%q: a subject prefix without wildcards (e.g. zuul-bridge.outbox)", o.Subject)
	}
	if o := c.Statuspage.Outbox; o.Stream == "" || strings.ContainsAny(o.Stream, " \t.*>") {
		bad("STATUSPAGE_OUTBOX_STREAM", "%q: a stream name without spaces, dots or wildcards", o.Stream)
	}
	if o := c.Statuspage.Outbox; o.Consumer == "" || strings.ContainsAny(o.Consumer, " \t.*>") {
		bad("STATUSPAGE_OUTBOX_CONSUMER", "%q: a consumer name without spaces, dots or wildcards", o.Consumer)
	}
	for name, bucket := range map[string]string{"STATUSPAGE_KV_BUCKET": c.Statuspage.KVBucket, "ZUUL_KV_BUCKET": c.Zuul.KVBucket} {
		if bucket == "" || strings.ContainsAny(bucket, " \t.*>") {
			bad(name, "%q: a bucket name without spaces, dots or wildcards", bucket)
		}
	}
	if w, a := c.Statuspage.RetryWindow, c.Statuspage.Outbox.MaxAge; w.err == nil && a.err == nil && a.v > 0 && a.v <= w.v {
		// The stream would drop an item before its retries end, without a dead letter.
		bad("STATUSPAGE_OUTBOX_MAX_AGE", "%s must be longer than BRIDGE_STATUSPAGE_RETRY_WINDOW (%s)", a.v, w.v)
	}
	if len(errs) > 0 {
		sortErrors(errs)
		return nil, fmt.Errorf("configuration:\n  %w", joinLines(errs))
	}
	return &c, nil
}

func checkURL(raw string, schemes ...string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("not a URL: %v", redactErr(err))
	}
	for _, s := range schemes {
		if u.Scheme == s {
			if u.Host == "" {
				return fmt.Errorf("%s: no host", redactURL(u))
			}
			return nil
		}
	}
	return fmt.Errorf("%s: scheme must be one of %s", redactURL(u), strings.Join(schemes, ", "))
}

// redactURL drops a password from a URL before it is shown.
func redactURL(u *url.URL) string {
	return u.Redacted()
}

// redactErr: url.Parse errors quote the whole input, which may hold a password.
func redactErr(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// mqttVars names the variable behind each field that mqtt.Config.Validate reports.
var mqttVars = map[string]string{
	"URL": "MQTT_URL", "Topic": "MQTT_TOPIC", "ClientID": "MQTT_CLIENT_ID", "Username": "MQTT_USERNAME",
	"Password, PasswordFile": "MQTT_PASSWORD", "CertFile, KeyFile": "MQTT_CERT_FILE",
	"CAFile, CertFile, KeyFile": "MQTT_CA_FILE", "SessionExpiry": "MQTT_SESSION_EXPIRY",
	"ReceiveMaximum": "MQTT_RECEIVE_MAXIMUM",
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// duration and integer record a parse error instead of stopping envconfig at the first
// bad variable, so that every bad value is reported at once.
type duration struct {
	v   time.Duration
	err error
}

func (d *duration) Decode(s string) error {
	d.v, d.err = time.ParseDuration(s)
	if d.err != nil {
		d.err = fmt.Errorf("%q is not a duration (use units: 90s, 5m, 24h)", s)
	}
	return nil
}

func (d duration) error() error { return d.err }

type integer struct {
	v   int
	err error
}

func (i *integer) Decode(s string) error {
	i.v, i.err = strconv.Atoi(s)
	if i.err != nil {
		i.err = fmt.Errorf("%q is not a whole number", s)
	}
	return nil
}

func (i integer) error() error { return i.err }
