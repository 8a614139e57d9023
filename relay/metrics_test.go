package relay_test

import (
	"regexp"
	"strconv"
	"testing"
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
