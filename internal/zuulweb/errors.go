package zuulweb

import (
	"encoding/json"
	"fmt"
	"html"
	"mime"
	"net/http"
	"regexp"
	"strings"
)

// APIError is a request that zuul-web answered with something other than a 2xx JSON body.
// Message is a one-line summary: for CherryPy's HTML error pages the title and the first
// paragraph (never JSON-parsed), for the 401 JSON body "error: description", for an empty
// body (403) the status text. URL is the request URL; it never holds the token, which only
// travels in the Authorization header.
type APIError struct {
	Status  int
	Message string
	URL     string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("zuulweb: GET %s: %d %s", e.URL, e.Status, e.Message)
}

// Temporary reports whether the same request may succeed later: a server error, a tenant
// that is not loaded yet (422), rate limiting (429). 4xx answers are permanent: a wrong
// path, tenant, parameter or token does not heal by itself.
func (e *APIError) Temporary() bool {
	return e.Status >= 500 || e.Status == http.StatusUnprocessableEntity || e.Status == http.StatusTooManyRequests
}

const maxMessage = 200

var (
	titleRE = regexp.MustCompile(`(?is)<title[^>]*>(.*?)</title>`)
	paraRE  = regexp.MustCompile(`(?is)<p[^>]*>(.*?)</p>`)
	tagRE   = regexp.MustCompile(`(?s)<[^>]*>`)
	spaceRE = regexp.MustCompile(`\s+`)
)

// summarise turns an error body into a bounded, single-line message.
func summarise(status int, contentType string, body []byte) string {
	mt, _, _ := mime.ParseMediaType(contentType)
	text := strings.TrimSpace(string(body))
	var msg string
	switch {
	case text == "":
		msg = http.StatusText(status)
	case mt == "application/json":
		// zuul.web.APIError bodies (401): {"description", "error", "realm"}.
		var j struct{ Error, Description string }
		if json.Unmarshal(body, &j) == nil && (j.Error != "" || j.Description != "") {
			msg = strings.Trim(j.Error+": "+j.Description, ": ")
		} else {
			msg = firstLine(text)
		}
	case mt == "text/html" || strings.HasPrefix(text, "<"):
		msg = htmlSummary(text)
	default:
		msg = firstLine(text)
	}
	return clip(msg)
}

// htmlSummary keeps what CherryPy puts in <title> ("404 Not Found") and the first <p>
// ("Nothing matches the given URI"), which is what tells the 404s apart.
func htmlSummary(s string) string {
	var parts []string
	if m := titleRE.FindStringSubmatch(s); m != nil {
		parts = append(parts, plain(m[1]))
	}
	if m := paraRE.FindStringSubmatch(s); m != nil {
		parts = append(parts, plain(m[1]))
	}
	if len(parts) == 0 {
		return firstLine(plain(s))
	}
	return strings.Join(parts, ": ")
}

func plain(s string) string {
	s = html.UnescapeString(tagRE.ReplaceAllString(s, " "))
	return strings.TrimSpace(spaceRE.ReplaceAllString(s, " "))
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return strings.TrimSpace(s)
}

func clip(s string) string {
	if len(s) <= maxMessage {
		return s
	}
	return strings.ToValidUTF8(s[:maxMessage], "") + "..."
}
