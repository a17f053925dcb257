package natspub

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/SovereignCloudStack/zuul-bridge/internal/natspub/natstest"
)

// Issue 23: reports published to subjects a three-replica stream covers, while the node
// leading the stream is lost, are either confirmed (stored) or fail retryably; none is
// reported sent and missing from the stream. The client connected to the lost node
// reconnects to another.
func TestPublishSurvivesLeaderLoss(t *testing.T) {
	for _, mode := range []string{"crash/client-on-leader", "crash/client-on-follower", "stop/client-on-leader"} {
		t.Run(mode, func(t *testing.T) { testPublishLeaderLoss(t, mode) })
	}
}

func testPublishLeaderLoss(t *testing.T, mode string) {
	c := natstest.StartCluster(t, 3)
	admin := natstest.Connect(t, c.URL())
	js, _ := jetstream.New(admin)
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		_, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "ZUUL", Subjects: []string{"zuul.>"}, Replicas: 3,
			Storage: jetstream.FileStorage, Duplicates: time.Minute})
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
	}
	leader := c.StreamLeader("ZUUL", 10*time.Second)
	first := leader
	if strings.HasSuffix(mode, "client-on-follower") {
		for _, s := range c.Servers {
			if s != leader {
				first = s
				break
			}
		}
	}
	urls := []string{c.ClientURL(first)}
	for _, u := range c.URLs {
		if u != urls[0] {
			urls = append(urls, u)
		}
	}
	reconnected := make(chan string, 1)
	nc := natstest.Connect(t, strings.Join(urls, ","), nats.DontRandomize(), nats.MaxReconnects(-1),
		nats.ReconnectWait(100*time.Millisecond), nats.ReconnectBufSize(-1),
		nats.ReconnectHandler(func(nc *nats.Conn) { reconnected <- nc.ConnectedUrl() }))
	p, err := NewPublisher(nc, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	sink, err := p.Sink("r", RouteConfig{})
	if err != nil {
		t.Fatal(err)
	}

	const total, lossAfter = 40, 10
	var sent []string
	failed := map[string]int{} // failed attempts by error, all retryable
	var lost time.Time
	var resumed time.Duration
	ev := sample(t, "periodic-daily_failure_mixed.json")
	for i := 0; i < total; {
		if i == lossAfter && lost.IsZero() {
			lost = time.Now()
			if strings.HasPrefix(mode, "crash") {
				c.Crash(leader)
			} else {
				c.Stop(leader)
			}
		}
		if !lost.IsZero() && time.Since(lost) > 30*time.Second {
			t.Fatalf("%d of %d reports sent within 30s of the loss; failures: %v", i, total, failed)
		}
		ev.ID = fmt.Sprintf("ev-%02d", i)
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		retry, err := sink.Send(ctx, ev)
		cancel()
		if err != nil {
			if !retry {
				t.Fatalf("report %s failed for good during the loss: %v", ev.ID, err)
			}
			msg := err.Error()
			if strings.HasPrefix(msg, "jetstream publish to") {
				msg = "jetstream publish: " + msg[strings.LastIndex(msg, "): ")+3:]
			}
			failed[msg]++
			time.Sleep(50 * time.Millisecond) // the delivery's backoff, not synchronisation
			continue
		}
		if i == lossAfter {
			resumed = time.Since(lost)
		}
		sent = append(sent, ev.ID+"/r")
		i++
	}
	t.Logf("%s: publishing resumed %v after the loss; failed attempts (retried): %v", mode, resumed.Round(time.Millisecond), failed)
	if strings.Contains(mode, "client-on-leader") {
		select {
		case u := <-reconnected:
			t.Logf("client reconnected to %s", u)
		default:
			t.Error("the client of the lost node did not reconnect")
		}
	}

	// Every report confirmed is in the stream (the stream's surviving copies, read on a
	// surviving node), once.
	st, err := js.Stream(t.Context(), "ZUUL")
	if err != nil {
		t.Fatal(err)
	}
	info := st.CachedInfo()
	stored := map[string]int{}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := st.GetMsg(t.Context(), seq)
		if err != nil {
			t.Fatalf("message %d: %v", seq, err)
		}
		stored[m.Header.Get(jetstream.MsgIDHeader)]++
	}
	for _, id := range sent {
		if stored[id] == 0 {
			t.Errorf("report %s confirmed but not in the stream", id)
		}
		if stored[id] > 1 {
			t.Errorf("report %s stored %d times (the message id should drop copies)", id, stored[id])
		}
	}
	if info.State.Msgs != uint64(len(sent)) {
		t.Errorf("stream holds %d messages, %d reports confirmed", info.State.Msgs, len(sent))
	}
}
