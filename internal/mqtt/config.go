package mqtt

import (
	"errors"
	"fmt"
	"math"
	"net/url"
	"strings"
	"time"
)

// Config describes one subscription. Zero values of the optional fields mean
// the documented defaults.
type Config struct {
	URL          string // mqtt://host:1883, tcp://, mqtts://host:8883, tls://, ssl://, ws://, wss://
	ClientID     string // required and fixed: the broker keeps the session under it
	Topic        string // subscription filter, e.g. "zuul/#" or "$share/group/zuul/#"
	Username     string
	Password     []byte // optional
	PasswordFile string // optional; re-read at every connect so a rotated secret is picked up

	CAFile   string // PEM CA bundle for the broker certificate; empty = system roots
	CertFile string // optional client certificate (PEM), needs KeyFile
	KeyFile  string

	SessionExpiry  time.Duration // default 24h; how long the broker queues for us while we are away
	ReceiveMaximum uint16        // default 32; bounds unacknowledged messages in flight
	KeepAlive      time.Duration // default 30s
	ConnectTimeout time.Duration // default 10s
	BackoffMin     time.Duration // reconnect backoff, capped exponential; default 1s
	BackoffMax     time.Duration // default 60s

	// OnConnectionChange, if set, is called with true when the subscription
	// becomes ready and with false when a ready connection is lost (e.g. to
	// export a metric). It must not block.
	OnConnectionChange func(up bool)
}

// Defaults of the optional fields.
const (
	DefaultSessionExpiry  = 24 * time.Hour
	DefaultReceiveMaximum = 128
	DefaultKeepAlive      = 30 * time.Second
	DefaultConnectTimeout = 10 * time.Second
	DefaultBackoffMin     = time.Second
	DefaultBackoffMax     = 60 * time.Second
)

// withDefaults fills the optional fields that are zero.
func (c Config) withDefaults() Config {
	if c.SessionExpiry == 0 {
		c.SessionExpiry = DefaultSessionExpiry
	}
	if c.ReceiveMaximum == 0 {
		c.ReceiveMaximum = DefaultReceiveMaximum
	}
	if c.KeepAlive == 0 {
		c.KeepAlive = DefaultKeepAlive
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = DefaultConnectTimeout
	}
	if c.BackoffMin == 0 {
		c.BackoffMin = DefaultBackoffMin
	}
	if c.BackoffMax == 0 {
		c.BackoffMax = DefaultBackoffMax
	}
	return c
}

var tlsSchemes = map[string]bool{"mqtts": true, "tls": true, "ssl": true, "wss": true}
var plainSchemes = map[string]bool{"mqtt": true, "tcp": true, "ws": true}

// Validate reports every problem at once, each naming the field. Errors never
// contain the password, and a URL is never echoed back (it could carry one).
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	u, err := parseURL(c.URL)
	if err != nil {
		errs = append(errs, err)
	}
	if c.ClientID == "" {
		add("ClientID: required (the broker keeps the persistent session under it)")
	} else if len(c.ClientID) > math.MaxUint16 {
		add("ClientID: longer than %d bytes", math.MaxUint16)
	}
	if err := validateFilter(c.Topic); err != nil {
		add("Topic: %w", err)
	}
	if len(c.Password) > 0 && c.PasswordFile != "" {
		add("Password, PasswordFile: set at most one")
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		add("CertFile, KeyFile: set both or neither")
	}
	if u != nil && !tlsSchemes[u.Scheme] && (c.CAFile != "" || c.CertFile != "" || c.KeyFile != "") {
		add("CAFile, CertFile, KeyFile: only used with a TLS URL (mqtts://, tls://, ssl://, wss://), URL scheme is %q", u.Scheme)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"SessionExpiry", c.SessionExpiry}, {"KeepAlive", c.KeepAlive}, {"ConnectTimeout", c.ConnectTimeout},
		{"BackoffMin", c.BackoffMin}, {"BackoffMax", c.BackoffMax},
	} {
		if d.v < 0 {
			add("%s: must not be negative, got %s", d.name, d.v)
		}
	}
	// MQTT carries these in whole seconds (uint32 and uint16); a sub-second
	// value would silently become 0, which means "no session" or "no keep-alive".
	if c.SessionExpiry > 0 && (c.SessionExpiry < time.Second || c.SessionExpiry/time.Second > math.MaxUint32) {
		add("SessionExpiry: must be between 1s and %ds, got %s", uint32(math.MaxUint32), c.SessionExpiry)
	}
	if c.KeepAlive > 0 && (c.KeepAlive < time.Second || c.KeepAlive/time.Second > math.MaxUint16) {
		add("KeepAlive: must be between 1s and %ds, got %s", math.MaxUint16, c.KeepAlive)
	}
	if c.BackoffMin > 0 && c.BackoffMax > 0 && c.BackoffMin > c.BackoffMax {
		add("BackoffMin, BackoffMax: BackoffMin (%s) is greater than BackoffMax (%s)", c.BackoffMin, c.BackoffMax)
	}
	return errors.Join(errs...)
}

// parseURL checks the broker URL. Its errors never include the URL text,
// because url.Parse errors quote the whole input, credentials and all.
func parseURL(raw string) (*url.URL, error) {
	if raw == "" {
		return nil, errors.New("URL: required, e.g. mqtt://broker:1883 or mqtts://broker:8883")
	}
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("URL: not a valid URL: %v", err)
	}
	u.Scheme = strings.ToLower(u.Scheme)
	if !tlsSchemes[u.Scheme] && !plainSchemes[u.Scheme] {
		return nil, fmt.Errorf("URL: scheme %q not supported, use mqtt, tcp, mqtts, tls, ssl, ws or wss", u.Scheme)
	}
	if u.User != nil {
		return nil, errors.New("URL: must not contain credentials, use Username and Password")
	}
	if u.Hostname() == "" || u.Port() == "" {
		return nil, errors.New("URL: needs host and port, e.g. mqtt://broker:1883")
	}
	return u, nil
}

// validateFilter checks an MQTT subscription filter, including the
// $share/<group>/<filter> form of shared subscriptions.
func validateFilter(f string) error {
	if f == "" {
		return errors.New("required, e.g. zuul/#")
	}
	if rest, ok := strings.CutPrefix(f, "$share/"); ok {
		group, filter, found := strings.Cut(rest, "/")
		if !found || group == "" || filter == "" {
			return fmt.Errorf("shared subscription %q must look like $share/<group>/<filter>", f)
		}
		if strings.ContainsAny(group, "+#") {
			return fmt.Errorf("share group %q must not contain + or #", group)
		}
		f = filter
	}
	levels := strings.Split(f, "/")
	for i, l := range levels {
		switch {
		case l == "#" && i != len(levels)-1:
			return fmt.Errorf("%q: # is only allowed as the last level", f)
		case strings.Contains(l, "#") && l != "#", strings.Contains(l, "+") && l != "+":
			return fmt.Errorf("%q: wildcards must fill a whole level", f)
		}
	}
	return nil
}

// String shows the configuration for logs and debugging, secrets redacted,
// so that printing a Config by mistake (%v, %+v) cannot leak the password.
func (c Config) String() string {
	pw := "unset"
	switch {
	case len(c.Password) > 0:
		pw = "set (redacted)"
	case c.PasswordFile != "":
		pw = "from file " + c.PasswordFile
	}
	return fmt.Sprintf("mqtt.Config{URL: %q, ClientID: %q, Topic: %q, Username: %q, Password: %s, CAFile: %q, CertFile: %q, KeyFile: %q, SessionExpiry: %s, ReceiveMaximum: %d, KeepAlive: %s, ConnectTimeout: %s, Backoff: %s..%s}",
		redactedURL(c.URL), c.ClientID, c.Topic, c.Username, pw, c.CAFile, c.CertFile, c.KeyFile,
		c.SessionExpiry, c.ReceiveMaximum, c.KeepAlive, c.ConnectTimeout, c.BackoffMin, c.BackoffMax)
}

// GoString makes %#v redact as well.
func (c Config) GoString() string { return c.String() }

// redactedURL hides credentials a URL might carry (Validate rejects them, but
// String must be safe on an unvalidated Config too).
func redactedURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	if u.User != nil {
		u.User = url.User("REDACTED")
	}
	return u.String()
}
