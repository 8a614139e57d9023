package relay_test

import (
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/relay-project/relay/relay"
)

// metric returns the value of one sample line of /metrics, e.g.
// `relay_request_errors_total{errorcode="access_denied",request="join"}`.
func metric(t *testing.T, body, sample string) float64 {
	t.Helper()
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(sample) + ` (\S+)$`)
	m := re.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no sample %s in /metrics", sample)
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}

func TestMetrics(t *testing.T) {
	r := startRelay(t, nil)
	a := authority(t, r)
	join(t, a, "c", "p", "")
	b := authority(t, r)
	join(t, b, "c", "p", "")
	a.Next()
	g := guest(t, r)
	g.Send(`{"cmd":"JOIN","channel":"c","protocol":"p"}`)
	g.NextMap()
	a.Send(`{"cmd":"X","channel":1,"to":-1}`)
	a.Next()
	b.Next()

	_, body := httpGetAll(t, "http://"+r.Addr+"/metrics")
	for sample, want := range map[string]float64{
		`relay_connections`:                    3,
		`relay_channels`:                       1,
		`relay_connections_accepted_total`:     3,
		`relay_requests_total{request="join"}`: 3,
		`relay_request_errors_total{errorcode="access_denied",request="join"}`: 1,
		`relay_messages_received_total`:                                        1,
		`relay_message_deliveries_total`:                                       2,
		`relay_disconnects_total{reason="slow_consumer"}`:                      0,
	} {
		if got := metric(t, body, sample); got != want {
			t.Errorf("%s = %v, want %v", sample, got, want)
		}
	}
	if metric(t, body, `relay_sent_messages_total`) < 5 {
		t.Errorf("sent messages not counted")
	}
	if regexp.MustCompile(`channel="|client="|"c"`).MatchString(body) {
		t.Errorf("a label carries a channel name or client id")
	}
}

// TestHTTPAPIRequestsAreCounted: every HTTP API answer is counted in
// relay_http_requests_total by route and status, the refusals the limits
// tables point at included; a path the API does not serve counts as
// "other", so the label stays bounded.
func TestHTTPAPIRequestsAreCounted(t *testing.T) {
	r := startRelay(t, func(c *relay.Config) { c.AuthorityIPs = []string{"none"} })
	base := "http://" + r.Addr
	post := func(path, body string) int {
		resp, err := http.Post(base+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post("/v1/tokens", `{"channel":"c","protocol":"p","clientmode":0,"extra":{}}`); code != 401 {
		t.Fatalf("unauthorised mint: %d", code)
	}
	if code := post("/v1/tokens", `{"channel":"c","protocol":"p","clientmode":0,"extra":{}}`); code != 401 {
		t.Fatalf("unauthorised mint: %d", code)
	}
	if code, _ := httpGetAll(t, base+"/v1/openapi.json"); code != 200 {
		t.Fatalf("openapi.json: %d", code)
	}
	if code, _ := httpGetAll(t, base+"/v1/nope/"+strings.Repeat("x", 20)); code != 404 {
		t.Fatalf("unknown path: %d", code)
	}
	_, body := httpGetAll(t, base+"/metrics")
	for sample, want := range map[string]float64{
		`relay_http_requests_total{code="401",route="/v1/tokens"}`:       2,
		`relay_http_requests_total{code="200",route="/v1/openapi.json"}`: 1,
		`relay_http_requests_total{code="404",route="other"}`:            1,
	} {
		if got := metric(t, body, sample); got != want {
			t.Errorf("%s = %v, want %v", sample, got, want)
		}
	}
}
