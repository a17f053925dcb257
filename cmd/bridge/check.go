package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/kelseyhightower/envconfig"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/SovereignCloudStack/zuul-bridge/internal/features"
	"github.com/SovereignCloudStack/zuul-bridge/internal/incident"
	"github.com/SovereignCloudStack/zuul-bridge/internal/natspub"
	"github.com/SovereignCloudStack/zuul-bridge/internal/rules"
	"github.com/SovereignCloudStack/zuul-bridge/internal/zuul"
)

// check validates the rules file and shows, for each payload file, which routes keep it
// and exactly what they would send. It connects to nothing, unless -online: then it also
// checks the names of the `statuspage:` routes against the status page at
// BRIDGE_STATUSPAGE_URL (read-only: the catalogue), and, with BRIDGE_NATS_URL set, that
// NATS has the JetStream that status page routes and reconciliation need.
// Exit codes: 0 all fine, 1 a payload is not a Zuul report, 2 the rules are invalid (or,
// with -online, name something the status page lacks, or need JetStream that NATS lacks),
// 3 the status page or NATS could not be read.
func check(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	rulesFile := fs.String("rules", os.Getenv("BRIDGE_RULES_FILE"), "rules file (default $BRIDGE_RULES_FILE, else the built-in rules)")
	online := fs.Bool("online", false, "also check the status page routes' names against the server at $BRIDGE_STATUSPAGE_URL")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	routes, err := rules.LoadFile(*rulesFile)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	source := *rulesFile
	if source == "" {
		source = "built-in default rules"
	}
	fmt.Fprintf(stdout, "rules: %s: %d route(s), valid\n", source, len(routes))
	sp := incident.NewManager(incident.ManagerOptions{Log: zerolog.Nop(), BridgeID: os.Getenv("BRIDGE_STATUSPAGE_INSTANCE")})
	spSinks := map[string]*incident.Sink{}
	for _, r := range routes {
		var sinks []string
		if r.NATS != nil {
			sinks = append(sinks, "nats "+r.NATS.Subject)
		}
		if r.StatusPage != nil {
			s, err := sp.AddRoute(r.Name, *r.StatusPage)
			if err != nil {
				fmt.Fprintln(stderr, err)
				return 2
			}
			spSinks[r.Name] = s
			sinks = append(sinks, "statuspage")
		}
		split := ""
		if r.SplitJobs {
			split = " (split: jobs, one event per voting build)"
		}
		fmt.Fprintf(stdout, "  %-28s line %-4d -> %s%s\n", r.Name, r.Line, strings.Join(sinks, ", "), split)
	}
	code := 0
	if *online && (len(spSinks) > 0 || os.Getenv("BRIDGE_ZUUL_URL") != "") {
		if c := checkJetStream(stdout, stderr); c != 0 {
			return c
		}
	}
	if *online && len(spSinks) > 0 {
		c, onlineSinks := checkOnline(routes, stdout, stderr)
		if c != 0 {
			return c
		}
		// Per-job routes resolve their component per report: against the server's catalogue.
		for name, s := range onlineSinks {
			spSinks[name] = s
		}
	}
	outboxCfg := OutboxConfig{Stream: envOr("BRIDGE_STATUSPAGE_OUTBOX_STREAM", "ZUUL_BRIDGE_OUTBOX"),
		Subject: envOr("BRIDGE_STATUSPAGE_OUTBOX_SUBJECT", "zuul-bridge.outbox")}
	for _, path := range fs.Args() {
		fmt.Fprintf(stdout, "\n%s\n", path)
		b, err := os.ReadFile(path)
		if err != nil {
			fmt.Fprintf(stdout, "  error: %v\n", err)
			code = 1
			continue
		}
		ev, err := zuul.Decode(b)
		if err != nil {
			fmt.Fprintf(stdout, "  not a Zuul report (%v): the bridge logs, counts, dead-letters and acknowledges it\n", err)
			code = 1
			continue
		}
		fmt.Fprintf(stdout, "  report %s: action %s, %s/%s %s branch %q, result %q (%s)\n",
			ev.ID, ev.Action, ev.Tenant, ev.Pipeline, ev.Project, ev.Branch, ev.Result, ev.Outcome)
		kept := false
		for _, r := range routes {
			if r.SplitJobs {
				n, c := checkJobs(stdout, r, ev, spSinks[r.Name], outboxCfg, *online)
				kept = kept || n > 0
				code = max(code, c)
				continue
			}
			ok, why := r.Match.Explain(ev)
			if !ok {
				fmt.Fprintf(stdout, "  route %s: no match: %s\n", r.Name, why)
				continue
			}
			kept = true
			fmt.Fprintf(stdout, "  route %s: MATCH: %s\n", r.Name, why)
			if r.NATS != nil {
				subj, _ := natspub.CompileSubject(r.NATS.Subject)
				msg, err := natspub.NewMessage(ev, r.Name, subj, r.NATS.IncludeRaw)
				if err != nil {
					fmt.Fprintf(stdout, "    nats: error: %v\n", err)
					continue
				}
				fmt.Fprintf(stdout, "    nats subject: %s\n    nats headers:\n", msg.Subject)
				keys := make([]string, 0, len(msg.Header))
				for k := range msg.Header {
					keys = append(keys, k)
				}
				sort.Strings(keys)
				for _, k := range keys {
					fmt.Fprintf(stdout, "      %s: %s\n", k, msg.Header.Get(k))
				}
				var pretty bytes.Buffer
				json.Indent(&pretty, msg.Data, "      ", "  ")
				fmt.Fprintf(stdout, "    nats body:\n      %s\n", pretty.String())
			}
			if s := spSinks[r.Name]; s != nil {
				if ev.Outcome != zuul.OutcomeFailure && ev.Outcome != zuul.OutcomeSuccess {
					fmt.Fprintf(stdout, "    status page: nothing queued (%s report: neither opens nor resolves)\n", ev.Outcome)
					continue
				}
				fmt.Fprintf(stdout, "    outbox: queued in stream %s, subject %s.%s\n",
					outboxCfg.Stream, outboxCfg.Subject, r.Name)
				plan := s.Plan(ev)
				if len(plan) == 0 {
					fmt.Fprintf(stdout, "    status page: no change\n")
				}
				for _, call := range plan {
					fmt.Fprintf(stdout, "    status page: %s\n", call)
				}
				printTexts(stdout, s, ev)
			}
		}
		if !kept {
			fmt.Fprintf(stdout, "  dropped: no route keeps it (acknowledged, nothing sent)\n")
		}
	}
	return code
}

// checkJobs shows what a route with `split: jobs` makes of a report: its job events, which
// of them the route takes, and for each what it sends (the NATS subject and message id,
// the status page calls and texts, the component derived from the job). It returns how
// many the route takes, and 2 when -online found a derived component the page lacks.
func checkJobs(w io.Writer, r rules.Route, ev *zuul.Event, s *incident.Sink, outboxCfg OutboxConfig, online bool) (taken, code int) {
	jobs := ev.SplitJobs()
	if len(jobs) == 0 {
		fmt.Fprintf(w, "  route %s: no job events (split: jobs takes the voting builds of final reports)\n", r.Name)
		return 0, 0
	}
	var skipped, quiet []string
	var subj *natspub.Subject
	if r.NATS != nil {
		subj, _ = natspub.CompileSubject(r.NATS.Subject)
	}
	for _, je := range jobs {
		ok, why := r.Match.Explain(je)
		if !ok {
			skipped = append(skipped, je.Job)
			continue
		}
		taken++
		if je.Outcome != zuul.OutcomeFailure && r.NATS == nil && (s == nil || len(s.Plan(je)) == 0) {
			quiet = append(quiet, je.Job) // a success with nothing to resolve, a skipped job
			continue
		}
		fmt.Fprintf(w, "  route %s: job %s (%s, %s): MATCH: %s\n", r.Name, je.Job, je.Result, je.Outcome, why)
		fmt.Fprintf(w, "    event id: %s\n", je.ID)
		if subj != nil {
			msg, err := natspub.NewMessage(je, r.Name, subj, r.NATS.IncludeRaw)
			if err != nil {
				fmt.Fprintf(w, "    nats: error: %v\n", err)
			} else {
				fmt.Fprintf(w, "    nats subject: %s (Nats-Msg-Id %s)\n", msg.Subject, msg.Header.Get(nats.MsgIdHdr))
			}
		}
		if s == nil {
			continue
		}
		if je.Outcome != zuul.OutcomeFailure && je.Outcome != zuul.OutcomeSuccess {
			fmt.Fprintf(w, "    status page: nothing queued (%s: neither opens nor resolves)\n", je.Outcome)
			continue
		}
		fmt.Fprintf(w, "    outbox: queued in stream %s, subject %s.%s\n", outboxCfg.Stream, outboxCfg.Subject, r.Name)
		if online {
			if err := s.Ready(je); err != nil {
				fmt.Fprintf(w, "    status page: UNKNOWN COMPONENT: %v (this job's incidents wait; other jobs go on)\n", err)
				code = 2
				continue
			}
		}
		plan := s.Plan(je)
		if len(plan) == 0 {
			fmt.Fprintf(w, "    status page: no change\n")
		}
		for _, call := range plan {
			fmt.Fprintf(w, "    status page: %s\n", call)
		}
		printTexts(w, s, je)
	}
	if len(quiet) > 0 {
		fmt.Fprintf(w, "  route %s: %d job events taken that change nothing now (successes with no open incident, skipped jobs): %s\n",
			r.Name, len(quiet), firstNames(quiet, 8))
	}
	if len(skipped) > 0 {
		fmt.Fprintf(w, "  route %s: %d of %d job events not taken (match/exclude): %s\n", r.Name, len(skipped), len(jobs), firstNames(skipped, 8))
	}
	return taken, code
}

func firstNames(names []string, n int) string {
	if len(names) <= n {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(names[:n], ", "), len(names)-n)
}

// printTexts shows the exact public texts a report puts on the status page, as a
// person reads them there: the incident it opens and the update it posts as a further
// failure, or the closing update of a success.
func printTexts(w io.Writer, s *incident.Sink, ev *zuul.Event) {
	t, err := s.Texts(ev)
	if err != nil {
		fmt.Fprintf(w, "    status page texts: error: %v\n", err)
		return
	}
	show := func(label, text string) {
		if text != "" {
			fmt.Fprintf(w, "      %-28s %s\n", label+":", text)
		}
	}
	if t == (incident.PublicTexts{}) {
		return
	}
	fmt.Fprintf(w, "    status page texts:\n")
	show("title", t.Title)
	show("description", t.Description)
	show("update title", t.UpdateTitle)
	show("update", t.Update)
	label := "closing update"
	if ev.Outcome != zuul.OutcomeSuccess {
		label = "quiet-period closing"
	}
	show(label+" title", t.ResolveTitle)
	show(label, t.Resolve)
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// checkOnline reads the status page's catalogue and resolves every route's names. It
// returns the routes' sinks on that catalogue, for the components of per-job routes,
// which are resolved per report.
func checkOnline(routes []rules.Route, stdout, stderr io.Writer) (int, map[string]*incident.Sink) {
	var sc StatuspageConfig
	if err := envconfig.Process("BRIDGE_STATUSPAGE", &sc); err != nil {
		fmt.Fprintln(stderr, err)
		return 3, nil
	}
	if sc.URL == "" {
		fmt.Fprintln(stderr, "check -online: BRIDGE_STATUSPAGE_URL is not set")
		return 3, nil
	}
	if err := sc.Timeout.error(); err != nil {
		fmt.Fprintf(stderr, "BRIDGE_STATUSPAGE_TIMEOUT: %v\n", err)
		return 3, nil
	}
	sp, err := newStatuspage(&Config{Statuspage: sc}, zerolog.Nop(), nil, nil)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 3, nil
	}
	sinks := map[string]*incident.Sink{}
	for _, r := range routes {
		if r.StatusPage != nil {
			s, err := sp.AddRoute(r.Name, *r.StatusPage)
			if err != nil {
				fmt.Fprintln(stderr, err)
				return 2, nil
			}
			sinks[r.Name] = s
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*sc.Timeout.v+5*time.Second)
	defer cancel()
	unknown, err := sp.CheckNames(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "status page %s: %v\n", sc.URL, err)
		return 3, nil
	}
	fmt.Fprintf(stdout, "status page %s:\n", sc.URL)
	code := 0
	for _, r := range routes {
		if r.StatusPage == nil {
			continue
		}
		if err, bad := unknown[r.Name]; bad {
			fmt.Fprintf(stdout, "  route %s: UNKNOWN NAMES: %s\n", r.Name, strings.ReplaceAll(err.Error(), "\n", "; "))
			code = 2
			continue
		}
		if r.SplitJobs && (len(r.StatusPage.Components) > 0 || strings.Contains(r.StatusPage.Component, "{{")) {
			fmt.Fprintf(stdout, "  route %s: every name exists; the component is derived per job (checked for each payload below)\n", r.Name)
			continue
		}
		fmt.Fprintf(stdout, "  route %s: every name exists\n", r.Name)
	}
	return code, sinks
}

// checkJetStream connects to the NATS server at BRIDGE_NATS_URL (with the BRIDGE_NATS_*
// credentials) and says whether it has the JetStream that status page routes and
// reconciliation need. Without BRIDGE_NATS_URL there is nothing to check.
func checkJetStream(stdout, stderr io.Writer) int {
	var nc NATSConfig
	if err := envconfig.Process("BRIDGE_NATS", &nc); err != nil {
		fmt.Fprintln(stderr, err)
		return 3
	}
	if nc.URL == "" {
		return 0
	}
	conn, err := connectNATS(&Config{NATS: nc, MQTT: MQTTConfig{ClientID: "check"}}, zerolog.Nop(), newHealth(prometheus.NewRegistry()))
	if err != nil {
		fmt.Fprintf(stderr, "NATS %s: %v\n", nc.URL, err)
		return 3
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for !conn.IsConnected() {
		if ctx.Err() != nil {
			fmt.Fprintf(stderr, "NATS %s: not reachable: %v\n", nc.URL, conn.LastError())
			return 3
		}
		time.Sleep(50 * time.Millisecond)
	}
	js, err := jetstream.New(conn)
	if err == nil {
		_, err = js.AccountInfo(ctx)
	}
	switch {
	case err == nil:
		fmt.Fprintf(stdout, "NATS %s: JetStream available (status page routes and reconciliation can start)\n", nc.URL)
		return 0
	case errors.Is(err, jetstream.ErrJetStreamNotEnabled), errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount),
		errors.Is(err, nats.ErrNoResponders):
		fmt.Fprintf(stdout, "NATS %s: NO JETSTREAM (%v): status page routes and reconciliation will not start; %s\n",
			nc.URL, err, features.JetStreamFix)
		return 2
	default:
		fmt.Fprintf(stderr, "NATS %s: JetStream account info: %v\n", nc.URL, err)
		return 3
	}
}
