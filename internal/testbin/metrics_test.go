package testbin

import (
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"testing"
)

// Metrics reads every sample by its series, labels and all (a label's
// value may hold a space), and leaves out comments and lines with no
// number.
func TestMetrics(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, `# HELP chat_users Users online.
# TYPE chat_users gauge
chat_users 3
chat_disconnects_total{reason="slow consumer"} 2
chat_cluster_frames_in_total{peer="n1"} 1.5e+06
not_a_sample
broken NaNa
`)
	}))
	defer srv.Close()
	got := Metrics(t, srv.URL)
	want := map[string]float64{
		"chat_users": 3,
		`chat_disconnects_total{reason="slow consumer"}`: 2,
		`chat_cluster_frames_in_total{peer="n1"}`:        1.5e6,
	}
	if !maps.Equal(got, want) {
		t.Errorf("Metrics = %v, want %v", got, want)
	}
}

func TestEnvInt(t *testing.T) {
	for _, tc := range []struct {
		env  string
		want int
	}{{"", 7}, {"12", 12}, {"0", 7}, {"-3", 7}, {"ten", 7}} {
		t.Setenv("TESTBIN_ENVINT", tc.env)
		if got := EnvInt("TESTBIN_ENVINT", 7); got != tc.want {
			t.Errorf("EnvInt with %q = %d, want %d", tc.env, got, tc.want)
		}
	}
}
