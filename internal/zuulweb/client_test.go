package zuulweb_test

import (
	"context"
	"errors"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/SovereignCloudStack/zuul-bridge/internal/zuulweb"
	"github.com/SovereignCloudStack/zuul-bridge/internal/zuulweb/zuulwebfake"
)

func newClient(t *testing.T, base string, token func() (string, error)) *zuulweb.Client {
	t.Helper()
	c, err := zuulweb.New(zuulweb.Options{BaseURL: base, Token: token})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func fake(t *testing.T, o zuulwebfake.Options) *zuulwebfake.Server {
	t.Helper()
	f := zuulwebfake.New(o)
	t.Cleanup(f.Close)
	return f
}

func readFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var t0 = time.Date(2024, 11, 28, 3, 0, 0, 0, time.UTC)

func periodic(result string, at time.Time) zuulwebfake.Buildset {
	bs := zuulwebfake.Buildset{
		Pipeline: "periodic-daily", Result: result, EventTime: at,
		Refs: []zuulwebfake.Ref{zuulwebfake.BranchRef("SovereignCloudStack/standards", "main")},
	}
	if result != "" {
		bs.LastBuildEnd = at.Add(40 * time.Minute)
		bs.Builds = []zuulwebfake.Build{{JobName: "scs-check-iaas", Result: result, Voting: true, Start: at, End: bs.LastBuildEnd}}
	}
	return bs
}

func TestNewRejectsBadBaseURL(t *testing.T) {
	for _, u := range []string{"", "zuul.example", "ftp://zuul.example", "https://user:pw@zuul.example"} {
		_, err := zuulweb.New(zuulweb.Options{BaseURL: u})
		if err == nil {
			t.Errorf("New(%q): no error", u)
		}
		if err != nil && strings.Contains(err.Error(), "pw") {
			t.Errorf("New(%q): error leaks the password: %v", u, err)
		}
	}
}

func TestBuildsetsDecodesSampleShapes(t *testing.T) {
	f := fake(t, zuulwebfake.Options{})
	if _, err := f.AddJSON("scs", readFile(t, "buildset-detail.json")); err != nil {
		t.Fatal(err)
	}
	c := newClient(t, f.URL, nil)
	page, err := c.Buildsets(context.Background(), "scs", zuulweb.Query{Pipeline: "periodic-daily"})
	if err != nil {
		t.Fatal(err)
	}
	if len(page) != 1 {
		t.Fatalf("got %d buildsets, want 1", len(page))
	}
	bs := page[0]
	if bs.ID != 48213 || bs.UUID != "4de2c18fe9b344db886195aeca71f6f7" || bs.Result != "FAILURE" || len(bs.Builds) != 0 {
		t.Errorf("list element: %+v", bs)
	}
	if want := time.Date(2024, 11, 28, 3, 0, 0, 0, time.UTC); !bs.EventTimestamp.Equal(want) || bs.EventTimestamp.Location() != time.UTC {
		t.Errorf("event_timestamp %v, want %v UTC", bs.EventTimestamp, want)
	}
	if len(bs.Refs) != 1 || bs.Refs[0].Change != 0 || bs.Refs[0].NewRev != "" || bs.Refs[0].RefURL != "https://github.com/SovereignCloudStack/standards" {
		t.Errorf("refs: %+v", bs.Refs)
	}
	d, err := c.Buildset(context.Background(), "scs", bs.UUID)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Builds) != 2 || d.Builds[1].JobName != "scs-check-kaas" || d.Builds[1].Result != "FAILURE" ||
		d.Builds[1].Final == nil || !*d.Builds[1].Final || len(d.Events) != 1 {
		t.Errorf("detail: %+v", d)
	}
}

func TestBuildsetsKeysetPaging(t *testing.T) {
	f := fake(t, zuulwebfake.Options{})
	for i := range 7 {
		f.Add("scs", periodic("SUCCESS", t0.Add(time.Duration(i)*time.Hour)))
	}
	c := newClient(t, f.URL, nil)
	var ids []int64
	q := zuulweb.Query{Pipeline: "periodic-daily", Limit: 3}
	for {
		page, err := c.Buildsets(context.Background(), "scs", q)
		if err != nil {
			t.Fatal(err)
		}
		for _, bs := range page {
			ids = append(ids, bs.ID)
		}
		if len(page) < q.Limit {
			break
		}
		q.IdxMax = page[len(page)-1].ID - 1
	}
	if len(ids) != 7 {
		t.Fatalf("paged %d buildsets, want 7: %v", len(ids), ids)
	}
	for i := 1; i < len(ids); i++ {
		if ids[i] >= ids[i-1] {
			t.Fatalf("not newest first: %v", ids)
		}
	}
	if n := f.CountRequests("idx_max="); n != 2 {
		t.Errorf("%d requests with idx_max, want 2", n)
	}
}

func TestExcludeResultOnOldVersionRetriesWithout(t *testing.T) {
	f := fake(t, zuulwebfake.Options{Version: "10.1.0"})
	f.Add("scs", periodic("SUCCESS", t0))
	f.Add("scs", periodic("DEQUEUED", t0.Add(time.Hour)))
	f.Add("scs", periodic("", t0.Add(2*time.Hour))) // running
	f.Add("scs", periodic("FAILURE", t0.Add(3*time.Hour)))
	c := newClient(t, f.URL, nil)
	q := zuulweb.Query{Pipeline: "periodic-daily", ExcludeResult: []string{"DEQUEUED"}}
	for round := range 2 {
		page, err := c.Buildsets(context.Background(), "scs", q)
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		var got []string
		for _, bs := range page {
			got = append(got, bs.Result)
		}
		// Filtered on the client as SQL NOT IN would: DEQUEUED and running dropped.
		if strings.Join(got, ",") != "FAILURE,SUCCESS" {
			t.Errorf("round %d: results %v", round, got)
		}
	}
	if n := f.CountRequests("exclude_result="); n != 1 {
		t.Errorf("exclude_result sent %d times, want once (then remembered as unsupported)", n)
	}
	if n := f.CountRequests("/buildsets"); n != 3 {
		t.Errorf("%d buildsets requests, want 3 (404, retry, second call)", n)
	}
}

func TestExcludeResultOnNewVersionServerSide(t *testing.T) {
	f := fake(t, zuulwebfake.Options{Version: "11.2.0"})
	f.Add("scs", periodic("DEQUEUED", t0))
	f.Add("scs", periodic("FAILURE", t0.Add(time.Hour)))
	c := newClient(t, f.URL, nil)
	page, err := c.Buildsets(context.Background(), "scs", zuulweb.Query{ExcludeResult: []string{"DEQUEUED"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(page) != 1 || page[0].Result != "FAILURE" {
		t.Errorf("page: %+v", page)
	}
	if n := f.CountRequests("/buildsets"); n != 1 {
		t.Errorf("%d requests, want 1", n)
	}
}

func TestUnknownTenantIsNotRetriedAsOldVersion(t *testing.T) {
	f := fake(t, zuulwebfake.Options{Version: "10.0.0"})
	c := newClient(t, f.URL, nil)
	_, err := c.Buildsets(context.Background(), "nope", zuulweb.Query{ExcludeResult: []string{"DEQUEUED"}})
	var ae *zuulweb.APIError
	if !errors.As(err, &ae) || ae.Status != 404 || !strings.Contains(ae.Message, "Unknown tenant") {
		t.Fatalf("err = %v, want 404 Unknown tenant", err)
	}
	// A later call on a known tenant still tries exclude_result: the 404 proved nothing.
	f.AddTenant("scs")
	if _, err := c.Buildsets(context.Background(), "scs", zuulweb.Query{ExcludeResult: []string{"DEQUEUED"}}); err != nil {
		t.Fatal(err)
	}
	if n := f.CountRequests("exclude_result="); n != 2 {
		t.Errorf("exclude_result sent %d times, want 2", n)
	}
}

func TestErrors(t *testing.T) {
	const secret = "s3cr3t-token-value"
	tests := []struct {
		name    string
		opts    zuulwebfake.Options
		token   string
		call    func(*zuulweb.Client) error
		status  int
		message string
		temp    bool
	}{
		{"unknown buildset", zuulwebfake.Options{}, "", func(c *zuulweb.Client) error {
			_, err := c.Buildset(context.Background(), "scs", "0123456789abcdef0123456789abcdef")
			return err
		}, 404, "404 Not Found: Buildset not found", false},
		{"unknown tenant", zuulwebfake.Options{}, "", func(c *zuulweb.Client) error {
			_, err := c.Buildsets(context.Background(), "nope", zuulweb.Query{})
			return err
		}, 404, "Unknown tenant", false},
		{"missing token", zuulwebfake.Options{Tokens: []string{secret}}, "", func(c *zuulweb.Client) error {
			_, err := c.Buildsets(context.Background(), "scs", zuulweb.Query{})
			return err
		}, 401, `MissingAuthError: Missing "Authorization" header`, false},
		{"wrong token", zuulwebfake.Options{Tokens: []string{"other"}}, secret, func(c *zuulweb.Client) error {
			_, err := c.Pipelines(context.Background(), "scs")
			return err
		}, 401, "AuthTokenInvalidSignatureException: Invalid signature", false},
		{"forbidden token", zuulwebfake.Options{Forbidden: []string{secret}}, secret, func(c *zuulweb.Client) error {
			_, err := c.Pipelines(context.Background(), "scs")
			return err
		}, 403, "Forbidden", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := fake(t, tc.opts)
			f.AddTenant("scs", "periodic-daily")
			var tok func() (string, error)
			if tc.token != "" {
				tok = func() (string, error) { return tc.token, nil }
			}
			err := tc.call(newClient(t, f.URL, tok))
			var ae *zuulweb.APIError
			if !errors.As(err, &ae) {
				t.Fatalf("err = %v, want *APIError", err)
			}
			if ae.Status != tc.status || !strings.Contains(ae.Message, tc.message) || ae.Temporary() != tc.temp {
				t.Errorf("got %d %q temporary=%v, want %d %q %v", ae.Status, ae.Message, ae.Temporary(), tc.status, tc.message, tc.temp)
			}
			if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "<") {
				t.Errorf("error leaks the token or raw HTML: %v", err)
			}
		})
	}
}

func TestTokenIsSentAndServerErrorsAreTemporary(t *testing.T) {
	f := fake(t, zuulwebfake.Options{Tokens: []string{"good"}})
	f.AddTenant("scs", "periodic-daily", "check")
	c := newClient(t, f.URL, func() (string, error) { return "good", nil })
	ps, err := c.Pipelines(context.Background(), "scs")
	if err != nil || strings.Join(ps, ",") != "periodic-daily,check" {
		t.Fatalf("pipelines %v, %v", ps, err)
	}
	for _, status := range []int{500, 422} {
		f.FailNext(status)
		_, err := c.Buildsets(context.Background(), "scs", zuulweb.Query{})
		var ae *zuulweb.APIError
		if !errors.As(err, &ae) || ae.Status != status || !ae.Temporary() {
			t.Errorf("status %d: err = %v, want a temporary APIError", status, err)
		}
	}
	// A token source that fails stops the request, with its error.
	boom := errors.New("token file unreadable")
	c2 := newClient(t, f.URL, func() (string, error) { return "", boom })
	if _, err := c2.Pipelines(context.Background(), "scs"); !errors.Is(err, boom) {
		t.Errorf("err = %v, want the token error", err)
	}
}

func TestWrongBaseURLGetsTheWebUI(t *testing.T) {
	f := fake(t, zuulwebfake.Options{})
	f.AddTenant("scs")
	// zuul-web serves its index.html with 200 for any path it has no route for.
	c := newClient(t, f.URL+"/zuul", nil)
	_, err := c.Buildsets(context.Background(), "scs", zuulweb.Query{})
	var ae *zuulweb.APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusOK || !strings.Contains(ae.Message, "not JSON") {
		t.Fatalf("err = %v, want an APIError saying the body is not JSON", err)
	}
}

func TestInvalidPathSegments(t *testing.T) {
	c := newClient(t, "http://127.0.0.1:1", nil)
	if _, err := c.Buildset(context.Background(), "scs", ""); err == nil {
		t.Error("empty uuid accepted")
	}
	if _, err := c.Buildsets(context.Background(), "a/b", zuulweb.Query{}); err == nil {
		t.Error("tenant with a slash accepted")
	}
}
