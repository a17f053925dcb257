// Package oidc keeps an id_token for the status page's auth proxy from a refresh-token
// chain at an OpenID Connect issuer (the SCS deployment's Dex): the token endpoint comes
// from the issuer's discovery document, the refresh is golang.org/x/oauth2's, the
// id_token is verified (signature, issuer, audience) and its exp read with go-oidc.
// The id_token is refreshed ahead of its expiry and once more when the status page
// refuses it.
//
// Dex rotates the refresh token on every refresh and refuses the old one a few seconds
// later, so the current refresh token lives in a ChainStore (a JetStream key-value bucket
// shared by the replicas) and is updated with compare-and-set: a replica takes a short
// lease on the chain before it spends the refresh token, stores the successor before it
// uses the new id_token, and the other replicas use the id_token stored with it.
package oidc

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"github.com/rs/zerolog"
	"golang.org/x/oauth2"

	"github.com/SovereignCloudStack/zuul-bridge/internal/retry"
)

// Options configure New.
type Options struct {
	Issuer   string // issuer URL; discovery at Issuer/.well-known/openid-configuration
	ClientID string // "" = "status-page-web", the SCS Dex's public client
	// ClientSecret returns the secret of a confidential client; nil or "" = public client.
	ClientSecret func() (string, error)
	// Seed returns the refresh token the operator obtained (read again at every refresh,
	// so that a new seed in a mounted Secret is picked up). nil or "" = no seed: only a
	// stored chain can be used.
	Seed func() (string, error)
	// Store keeps the chain (required): KVStore over kvstore.TokenChain.
	Store ChainStore
	// Owner names this replica in the chain's lease; it must differ between replicas
	// that run at the same time and should stay the same across a restart.
	Owner      string
	HTTPClient *http.Client // nil = own client with a 10 s timeout
	// ReuseWindow is how long the issuer accepts a refresh token again after it rotated
	// it, answering with the same successor (Dex's reuseInterval); <= 0 = 3s, Dex's
	// default.
	ReuseWindow time.Duration
	// LeaseTimeout is how long a refresh may hold the chain before another replica takes
	// over. <= 0 = two thirds of ReuseWindow (2s): a replica that takes over from one that
	// died after the issuer rotated the refresh token presents it again within the reuse
	// window and is answered with the successor the dead one never stored. A longer lease
	// lets such a death break the chain.
	LeaseTimeout time.Duration
	Observer     Observer // nil = none
	Log          zerolog.Logger
	Now          func() time.Time // nil = time.Now
}

// Observer hears the outcome of every refresh attempt. reason never holds a token.
type Observer interface {
	Refreshed()
	// RefreshFailed: refused is true when the issuer refused the refresh token or there
	// is none (the chain is broken; a new seed is needed), false for an unreachable
	// issuer or store.
	RefreshFailed(refused bool, reason string)
}

// ErrNoSeed: there is neither a stored chain nor a seed to start one.
var ErrNoSeed = errors.New("oidc: no refresh token: the chain store is empty and no seed is configured")

// RefreshError is a failed refresh at the issuer. Its text never holds a token.
type RefreshError struct {
	Refused bool // the issuer refused the refresh token or the client (4xx)
	local   bool // failed before anything was sent
	msg     string
	err     error
}

func (e *RefreshError) Error() string { return e.msg }
func (e *RefreshError) Unwrap() error { return e.err }

// Source is a statuspage.TokenSource. Safe for concurrent use; refreshes of one process
// are serialised.
type Source struct {
	o   Options
	hc  *http.Client
	log zerolog.Logger

	mu       sync.Mutex
	provider *gooidc.Provider
	verifier *gooidc.IDTokenVerifier
	cur      idToken
	rejected string    // the id_token the status page refused last
	forcedAt time.Time // when a refusal last forced a refresh
	pending  *pendingSave
	failing  bool
}

type idToken struct {
	raw           string
	exp, issuedAt time.Time
}

// pendingSave is a refreshed chain not yet stored: it is stored before anything else.
type pendingSave struct {
	c     Chain
	spent string // the refresh token c.RefreshToken replaces
	rev   uint64
}

const (
	defaultReuseWindow = 3 * time.Second
	// finishTimeout bounds a refresh once the refresh token is being spent: the request
	// (asked again when its answer is lost) and the saving of the successor run under a
	// context of their own that the caller's cancellation (a shutdown) does not end, since
	// a successor not stored is a chain broken for good.
	finishTimeout   = 15 * time.Second
	lostAnswerTries = 3                      // requests for one refresh when answers are lost
	lostAnswerPause = 100 * time.Millisecond // between them
	forcedEvery     = 30 * time.Second       // at most one refresh per this for refused tokens
	leaseWaitStep   = 100 * time.Millisecond
)

// New checks the options; nothing is contacted until the first token is needed.
func New(o Options) (*Source, error) {
	u, err := url.Parse(o.Issuer)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("oidc: issuer %q: must be an absolute http(s) URL", o.Issuer)
	}
	if o.ClientID == "" {
		o.ClientID = "status-page-web"
	}
	if o.Store == nil {
		return nil, errors.New("oidc: no store for the refresh-token chain")
	}
	if o.ReuseWindow <= 0 {
		o.ReuseWindow = defaultReuseWindow
	}
	if o.LeaseTimeout <= 0 {
		o.LeaseTimeout = o.ReuseWindow * 2 / 3
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Owner == "" {
		h, _ := os.Hostname()
		o.Owner = h
	}
	hc := o.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	return &Source{o: o, hc: hc, log: o.Log.With().Str("component", "oidc").Str("issuer", o.Issuer).Logger()}, nil
}

// BearerToken returns a valid id_token, refreshing when the current one is close to its
// expiry or was refused.
func (s *Source) BearerToken(ctx context.Context) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.usable(s.cur) && s.pending == nil {
		return s.cur.raw, nil
	}
	t, err := s.obtain(ctx)
	if err != nil {
		s.failed(err)
		return "", err
	}
	if s.failing {
		s.failing = false
		s.log.Info().Msg("id_token obtained again")
	}
	s.cur = t
	return t.raw, nil
}

// Rejected forces one refresh when the status page refused the current id_token (at
// most once per 30 s, so that a proxy that refuses every token does not drain the chain).
func (s *Source) Rejected(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if token == "" || token != s.cur.raw {
		return
	}
	now := s.o.Now()
	if !s.forcedAt.IsZero() && now.Sub(s.forcedAt) < forcedEvery {
		return
	}
	s.forcedAt, s.rejected = now, token
	s.log.Info().Msg("the status page refused the id_token; refreshing once")
}

// Run keeps the id_token fresh ahead of its expiry even when nothing is written (and so
// the refresh token in use), until ctx is done.
func (s *Source) Run(ctx context.Context) {
	backoff := time.Second
	for {
		_, err := s.BearerToken(ctx)
		wait := backoff
		if err == nil {
			backoff = time.Second
			s.mu.Lock()
			wait = s.cur.exp.Add(-margin(s.cur)).Sub(s.o.Now())
			s.mu.Unlock()
		} else {
			backoff = min(2*backoff, time.Minute)
		}
		if !retry.Sleep(ctx, max(wait, 50*time.Millisecond)) {
			return
		}
	}
}

// margin is how long before its expiry a token is replaced: a quarter of its lifetime,
// at most 5 minutes.
func margin(t idToken) time.Duration {
	life := t.exp.Sub(t.issuedAt)
	if t.issuedAt.IsZero() || life <= 0 {
		return 30 * time.Second
	}
	return min(life/4, 5*time.Minute)
}

func (s *Source) usable(t idToken) bool {
	return t.raw != "" && t.raw != s.rejected && s.o.Now().Before(t.exp.Add(-margin(t)))
}

func (s *Source) failed(err error) {
	var re *RefreshError
	refused := (errors.As(err, &re) && re.Refused) || errors.Is(err, ErrNoSeed)
	if s.o.Observer != nil {
		s.o.Observer.RefreshFailed(refused, err.Error())
	}
	if s.failing {
		return
	}
	s.failing = true
	ev := s.log.Warn()
	msg := "no id_token for the status page; writes wait and are retried"
	if refused {
		ev = s.log.Error()
		msg += "; the refresh-token chain is broken: put a new seed into the Secret"
	}
	ev.Err(err).Msg(msg)
}

// obtain returns a fresh id_token from the chain: the stored one if another replica
// refreshed a moment ago, else by spending the stored refresh token under a lease.
func (s *Source) obtain(ctx context.Context) (idToken, error) {
	if err := s.discover(ctx); err != nil {
		return idToken{}, err
	}
	if p := s.pending; p != nil {
		if err := s.keep(ctx, p.c, p.spent, p.rev); err != nil {
			return idToken{}, fmt.Errorf("oidc: store the new refresh token: %w", err)
		}
		s.pending = nil
	}
	for {
		if err := ctx.Err(); err != nil {
			return idToken{}, err
		}
		c, rev, err := s.o.Store.Load(ctx)
		if err != nil && !errors.Is(err, ErrNoChain) {
			return idToken{}, fmt.Errorf("oidc: read the refresh-token chain: %w", err)
		}
		seed := s.seed()
		if errors.Is(err, ErrNoChain) || (seed != "" && c.SeedHash != SeedHash(seed)) {
			if seed == "" {
				return idToken{}, ErrNoSeed
			}
			replaced := err == nil
			c = Chain{RefreshToken: seed, SeedHash: SeedHash(seed)}
			if rev, err = s.o.Store.Save(ctx, c, rev); errors.Is(err, ErrConflict) {
				continue
			} else if err != nil {
				return idToken{}, fmt.Errorf("oidc: store the seed: %w", err)
			}
			s.log.Info().Bool("replaced_chain", replaced).Msg("refresh-token chain starts from the configured seed")
		}
		if t := (idToken{c.IDToken, c.IDTokenExpiry, c.IDTokenIssued}); s.usable(t) {
			return t, nil // refreshed by another replica (or by this one before a restart)
		}
		now := s.o.Now()
		if c.RefreshingBy != "" && c.RefreshingBy != s.o.Owner && now.Before(c.RefreshingUntil) {
			// Another replica is spending the refresh token: wait for its result.
			if !retry.Sleep(ctx, leaseWaitStep) {
				return idToken{}, ctx.Err()
			}
			continue
		}
		if c.RefreshingBy != "" && c.RefreshingBy != s.o.Owner {
			s.log.Warn().Str("holder", c.RefreshingBy).Msg("taking over the refresh lease of a replica that did not finish")
		}
		c.RefreshingBy, c.RefreshingUntil = s.o.Owner, now.Add(s.o.LeaseTimeout)
		if rev, err = s.o.Store.Save(ctx, c, rev); errors.Is(err, ErrConflict) {
			continue
		} else if err != nil {
			return idToken{}, fmt.Errorf("oidc: take the refresh lease: %w", err)
		}
		t, err := s.spend(ctx, c, rev)
		if errors.Is(err, errMovedOn) {
			continue
		}
		return t, err
	}
}

// errMovedOn: the issuer refused the refresh token because another replica spent it
// first and stored the successor; the stored chain is to be used.
var errMovedOn = errors.New("oidc: the chain moved on")

// spend spends the chain's refresh token under the lease taken at rev and stores its
// successor. From here on the caller's cancellation is not heeded (see finishTimeout).
func (s *Source) spend(ctx context.Context, c Chain, rev uint64) (idToken, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finishTimeout)
	defer cancel()
	raw, next, err := s.refreshLost(ctx, c.RefreshToken)
	if re := (*RefreshError)(nil); errors.As(err, &re) && re.Refused {
		if cur, _, lerr := s.o.Store.Load(ctx); lerr == nil && cur.RefreshToken != c.RefreshToken {
			// Our lease ran out and another replica spent the token first and stored its
			// successor (or a new seed came): nothing is broken.
			s.log.Info().Msg("the issuer refused the refresh token, but another replica stored its successor meanwhile; using that")
			return idToken{}, errMovedOn
		}
	}
	if err != nil {
		c.RefreshingBy, c.RefreshingUntil = "", time.Time{}
		_, _ = s.o.Store.Save(ctx, c, rev) // give the lease back; it expires anyway
		return idToken{}, err
	}
	// The refresh token is spent: its successor is stored whatever the id_token is
	// worth, and before the id_token is used, so that a process killed from here on
	// leaves a chain whose refresh token the issuer accepts.
	t, verr := s.verify(ctx, raw)
	done := Chain{RefreshToken: next, ParentHash: SeedHash(c.RefreshToken), SeedHash: c.SeedHash, Refreshes: c.Refreshes + 1}
	if verr == nil {
		done.IDToken, done.IDTokenExpiry, done.IDTokenIssued = t.raw, t.exp, t.issuedAt
	}
	if err := s.keep(ctx, done, c.RefreshToken, rev); err != nil {
		s.pending = &pendingSave{c: done, spent: c.RefreshToken, rev: rev}
		return idToken{}, fmt.Errorf("oidc: store the new refresh token (kept to store again): %w", err)
	}
	if verr != nil {
		return idToken{}, verr
	}
	if s.o.Observer != nil {
		s.o.Observer.Refreshed()
	}
	s.log.Debug().Uint64("refreshes", done.Refreshes).Time("expires", t.exp).Msg("id_token refreshed")
	return t, nil
}

// keep stores done, the successor of the refresh token spent, with compare-and-set on
// rev (the revision of our lease). A valid successor is never thrown away: on a conflict
// the stored chain is read again and
//   - still holds spent (another replica took over our lease, or took it and gave it back
//     after the issuer refused it): the successor we hold is the token the issuer handed
//     out last, so it is stored over that chain (and the other replica, if it gets an
//     answer at all, gets the same successor within the reuse window);
//   - holds our successor already (the other replica was answered with it): done;
//   - holds anything else (a new seed, or our successor spent already by another
//     replica): the stored chain is newer and stays; our id_token is valid all the same.
//
// The stored chain only ever moves forward along the chain (or to a new seed), so a
// chain that still holds spent is never newer than done.
func (s *Source) keep(ctx context.Context, done Chain, spent string, rev uint64) error {
	for {
		_, err := s.o.Store.Save(ctx, done, rev)
		if !errors.Is(err, ErrConflict) {
			return err
		}
		stored, srev, err := s.o.Store.Load(ctx)
		switch {
		case err != nil && !errors.Is(err, ErrNoChain):
			return err
		case err == nil && stored.RefreshToken == done.RefreshToken:
			return nil
		case err == nil && stored.RefreshToken != spent:
			ev, msg := s.log.Info(), "the refresh-token chain moved on during the refresh (a new seed, or refreshed further by another replica); keeping the stored one"
			switch stored.ParentHash {
			case SeedHash(done.RefreshToken):
				msg = "another replica refreshed with our new refresh token already; keeping the stored chain"
			case SeedHash(spent):
				// Not with Dex, which answers a reused token with the same successor.
				ev, msg = s.log.Warn(), "the issuer handed out two successors of one refresh token; keeping the stored one"
			}
			ev.Msg(msg)
			return nil
		}
		// Still the chain we spent (or none: deleted or damaged): store ours over it.
		s.log.Info().Msg("another replica took over the refresh lease meanwhile; storing our new refresh token over its chain")
		rev = srev
	}
}

// refreshLost is refresh, asked again at once when no answer came (the connection broke,
// the answer was garbled or the issuer failed): the issuer may have rotated rt already,
// and within its reuse window it answers rt again with the same successor. A refusal is
// final.
func (s *Source) refreshLost(ctx context.Context, rt string) (raw, next string, err error) {
	for try := 1; ; try++ {
		raw, next, err = s.refresh(ctx, rt)
		var re *RefreshError
		if err == nil || try == lostAnswerTries || (errors.As(err, &re) && (re.Refused || re.local)) {
			return raw, next, err
		}
		s.log.Info().Err(err).Int("try", try).Msg("no answer to the refresh; asking again within the issuer's reuse window")
		if !retry.Sleep(ctx, lostAnswerPause) {
			return raw, next, err
		}
	}
}

func (s *Source) seed() string {
	if s.o.Seed == nil {
		return ""
	}
	v, err := s.o.Seed()
	if err != nil {
		s.log.Debug().Err(err).Msg("seed not readable; using the stored chain")
		return ""
	}
	return strings.TrimSpace(v)
}

func (s *Source) discover(ctx context.Context) error {
	if s.provider != nil {
		return nil
	}
	p, err := gooidc.NewProvider(gooidc.ClientContext(ctx, s.hc), s.o.Issuer)
	if err != nil {
		return fmt.Errorf("oidc: discovery: %w", err)
	}
	s.provider = p
	s.verifier = p.VerifierContext(gooidc.ClientContext(context.Background(), s.hc),
		&gooidc.Config{ClientID: s.o.ClientID, SkipExpiryCheck: true})
	return nil
}

// refresh spends rt once at the token endpoint and returns the raw id_token and the
// refresh token to spend next.
func (s *Source) refresh(ctx context.Context, rt string) (string, string, error) {
	secret := ""
	if s.o.ClientSecret != nil {
		v, err := s.o.ClientSecret()
		if err != nil {
			return "", "", &RefreshError{local: true, msg: "oidc: client secret: " + err.Error(), err: err}
		}
		secret = strings.TrimSpace(v)
	}
	conf := oauth2.Config{ClientID: s.o.ClientID, ClientSecret: secret, Endpoint: s.provider.Endpoint()}
	if secret == "" {
		conf.Endpoint.AuthStyle = oauth2.AuthStyleInParams // a public client sends its id only
	}
	ctx = context.WithValue(ctx, oauth2.HTTPClient, s.hc)
	tok, err := conf.TokenSource(ctx, &oauth2.Token{RefreshToken: rt}).Token()
	if err != nil {
		var re *oauth2.RetrieveError
		refused := errors.As(err, &re) && re.Response != nil && re.Response.StatusCode >= 400 && re.Response.StatusCode < 500
		msg := strings.NewReplacer(rt, "<redacted>").Replace(err.Error())
		if secret != "" {
			msg = strings.ReplaceAll(msg, secret, "<redacted>")
		}
		return "", "", &RefreshError{Refused: refused, msg: "oidc: refresh: " + msg, err: redacted{err}}
	}
	raw, _ := tok.Extra("id_token").(string)
	return raw, tok.RefreshToken, nil // oauth2 keeps rt when the issuer sends none
}

// verify checks the id_token's signature, issuer and audience and reads its exp and iat;
// whether it is still fresh is decided by usable, with the margin.
func (s *Source) verify(ctx context.Context, raw string) (idToken, error) {
	if raw == "" {
		return idToken{}, &RefreshError{msg: "oidc: refresh: the issuer answered without an id_token (scope openid missing from the seed?)"}
	}
	idt, err := s.verifier.Verify(ctx, raw)
	if err != nil {
		return idToken{}, &RefreshError{msg: "oidc: refresh: the id_token does not verify: " + err.Error()}
	}
	return idToken{raw: raw, exp: idt.Expiry, issuedAt: idt.IssuedAt}, nil
}

// redacted hides an error's text (which may quote a token) but keeps it for errors.As.
type redacted struct{ err error }

func (r redacted) Error() string { return "(redacted)" }
func (r redacted) Unwrap() error { return r.err }
