package statuspagefake

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestToken(t *testing.T) {
	f := New(t, Options{Token: "s3cret"})
	c := newClient(t, f)
	st, out := c.do("POST", "/incidents", openIncident(f, "2026-11-21T10:00:00Z", 50))
	if st != 401 || string(out) != oathkeeper401 {
		t.Errorf("no token: %d %s", st, out)
	}
	c.must(200, "GET", "/components", nil) // reads are anonymous

	c.token = "wrong"
	c.must(401, "PATCH", "/incidents/"+newUUID(), map[string]string{"displayName": "x"})

	// "bearer" in any case.
	req, _ := http.NewRequest("DELETE", f.URL()+"/incidents/"+newUUID(), nil)
	req.Header.Set("Authorization", "bEaReR s3cret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Errorf("authorized delete of unknown id: %d", resp.StatusCode)
	}

	c.token = "s3cret"
	c.createIncident(openIncident(f, "2026-11-21T10:00:00Z", 50))
	var auth []bool
	for _, r := range f.Requests() {
		auth = append(auth, r.Authorized)
	}
	if want := []bool{false, false, false, true, true}; !slices.Equal(auth, want) {
		t.Errorf("authorized flags %v, want %v", auth, want)
	}
}

func TestFaultStatus(t *testing.T) {
	f := New(t, Options{})
	c := newClient(t, f)
	f.FailNext(2, Fault{Status: 503, Message: "upstream down"})
	for range 2 {
		st, out := c.do("GET", "/components", nil)
		if st != 503 || !strings.Contains(string(out), `"message":"upstream down"`) {
			t.Errorf("fault: %d %s", st, out)
		}
	}
	c.must(200, "GET", "/components", nil)

	// A hook picks requests by content; the body is passed in.
	f.SetFault(func(r *http.Request, body []byte) (Fault, bool) {
		return Fault{Status: 502}, r.Method == "POST" && strings.Contains(string(body), "boom")
	})
	c.must(502, "POST", "/incidents", map[string]string{"displayName": "boom"})
	c.createIncident(openIncident(f, "2026-11-21T10:00:00Z", 50))
	f.SetFault(nil)
	c.must(201, "POST", "/incidents", map[string]any{"displayName": "boom", "phase": map[string]int{"generation": 1, "order": 0}})

	reqs := f.Requests()
	var statuses []int
	for _, r := range reqs {
		statuses = append(statuses, r.Status)
	}
	if want := []int{503, 503, 200, 502, 201, 201}; !slices.Equal(statuses, want) {
		t.Errorf("statuses %v, want %v", statuses, want)
	}
	if reqs[3].Method != "POST" || reqs[3].Path != "/incidents" || !strings.Contains(string(reqs[3].Body), "boom") {
		t.Errorf("request record %+v", reqs[3])
	}
	f.ResetRequests()
	if len(f.Requests()) != 0 {
		t.Error("ResetRequests")
	}
}

func TestFaultHang(t *testing.T) {
	f := New(t, Options{})
	f.FailNext(1, Fault{Hang: true})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", f.URL()+"/components", nil)
	_, err := http.DefaultClient.Do(req)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("hang: err %v, want deadline exceeded", err)
	}
	// With http.Client.Timeout too.
	f.FailNext(1, Fault{Hang: true})
	cl := &http.Client{Timeout: 200 * time.Millisecond}
	if _, err := cl.Get(f.URL() + "/components"); err == nil {
		t.Fatal("hang: no error")
	}
	// The fake serves again afterwards, and both hung requests are recorded
	// without a status.
	newClient(t, f).must(200, "GET", "/components", nil)
	reqs := f.Requests()
	if len(reqs) != 3 || reqs[0].Status != 0 {
		t.Errorf("requests %+v", reqs)
	}
}

func TestFaultCloseConn(t *testing.T) {
	f := New(t, Options{})
	c := newClient(t, f)
	f.FailNext(1, Fault{CloseConn: true})
	req, _ := http.NewRequest("POST", f.URL()+"/incidents", strings.NewReader(`{"displayName":"x"}`))
	req.Header.Set("Content-Type", "application/json")
	_, err := c.http.Do(req)
	if err == nil {
		t.Fatal("closed connection: no error")
	}
	if n := len(f.Incidents()); n != 0 {
		t.Errorf("%d incidents stored", n)
	}
	c.must(200, "GET", "/components", nil)
	if reqs := f.Requests(); len(reqs) != 2 || reqs[0].Status != 0 {
		t.Errorf("requests %+v", reqs)
	}
}

// TestCloseReleasesHang checks that Close does not wait for a hung client.
func TestCloseReleasesHang(t *testing.T) {
	f := New(t, Options{})
	f.FailNext(1, Fault{Hang: true})
	errc := make(chan error, 1)
	go func() {
		resp, err := http.Get(f.URL() + "/components")
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	deadline := time.Now().Add(5 * time.Second)
	for len(f.Requests()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("request never arrived")
		}
		time.Sleep(5 * time.Millisecond)
	}
	f.Close()
	select {
	case <-errc:
	case <-time.After(10 * time.Second):
		t.Fatal("the request did not end within 10s of Close")
	}
}
