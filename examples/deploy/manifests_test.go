package deploy_test

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
	natsserver "github.com/nats-io/nats-server/v2/server"
	"go.yaml.in/yaml/v3"

	"github.com/relay-project/relay/relay"
)

// site is what one deployment manifest says about the relay, reduced to what
// can be checked against the relay itself.
type site struct {
	// env is every variable the manifest sets; values that come from a
	// secret store are a placeholder.
	env map[string]string
	// secrets are the variables whose value comes from the platform's
	// secret store (or, for a *_FILE variable, a file mounted from it).
	secrets map[string]bool
	// platformPort is the port the platform puts in PORT (Cloud Run); 0
	// when PORT comes from env or the relay's default.
	platformPort int
	// listen are the ports the platform routes clients to (a Service's
	// targetPort, internal_port, a published port): the relay's PORT.
	listen []int
	// declared are the ports the container declares (containerPort,
	// EXPOSE): PORT, and the RELAY_METRICS_ADDR port if there is one.
	declared []int
	// metrics are the ports a platform scrapes /metrics from.
	metrics []int
	// probes are the HTTP health checks the platform runs.
	probes []probe
	// stopGrace is how long the platform waits between SIGTERM and SIGKILL;
	// zero when the manifest does not say.
	stopGrace time.Duration
	// preStop is how long the platform waits before sending SIGTERM.
	preStop time.Duration
}

// probe is one HTTP health check. kind is startup, readiness or liveness.
type probe struct {
	kind string
	path string
	port int
}

// relayVars returns the names of every variable the relay reads.
func relayVars() map[string]relay.EnvVar {
	vars := map[string]relay.EnvVar{}
	for _, v := range relay.EnvVars() {
		vars[v.Name] = v
	}
	return vars
}

// isPluginConfigVar reports whether name is one of a plugin's variables in
// a relay that loads plugins: its configuration, RELAY_PLUGIN_CONFIG_<NAME>,
// or its resource allow-list, RELAY_PLUGIN_RESOURCES_<NAME>.
func isPluginConfigVar(known map[string]relay.EnvVar, name string) bool {
	if _, plugins := known["RELAY_PLUGINS"]; !plugins {
		return false
	}
	for _, prefix := range []string{"RELAY_PLUGIN_CONFIG_", "RELAY_PLUGIN_RESOURCES_"} {
		if strings.HasPrefix(name, prefix) && len(name) > len(prefix) {
			return true
		}
	}
	return false
}

// checkSite checks what holds on every platform: the manifest sets only
// variables the relay reads, with values it accepts; the relay listens on the
// port the platform routes to and probes; readiness and startup probes ask
// /readyz and liveness probes /healthz; the platform waits for the drain. It
// returns the configuration the relay loads there.
func checkSite(t checker, s site) relay.Config {
	t.Helper()
	known := relayVars()
	for name := range s.env {
		if _, ok := known[name]; !ok && !isPluginConfigVar(known, name) {
			t.Errorf("sets %s, which the relay does not read (relay -h lists what it reads)", name)
		}
	}
	if s.platformPort != 0 {
		if _, ok := s.env["PORT"]; ok {
			t.Errorf("sets PORT, which this platform sets itself (to %d)", s.platformPort)
		}
	}

	// Load the configuration the relay would see there, the way it would.
	for _, v := range relay.EnvVars() {
		if _, set := os.LookupEnv(v.Name); set {
			t.Setenv(v.Name, v.Default) // t.Setenv restores it afterwards
			os.Unsetenv(v.Name)
		}
	}
	for name, value := range s.env {
		if name == "RELAY_AUTHORITY_TOKENS_FILE" {
			// The file is a mounted secret; stand one in with the same role.
			value = filepath.Join(t.TempDir(), "tokens")
			if err := os.WriteFile(value, []byte("placeholder-token\n"), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		t.Setenv(name, value)
	}
	if s.platformPort != 0 {
		t.Setenv("PORT", strconv.Itoa(s.platformPort))
	}
	cfg, err := relay.LoadConfig()
	if err != nil {
		t.Fatalf("the relay refuses this configuration: %v", err)
	}
	cfg.Logger = discardLogger()
	if cfg.NATSURL != "" {
		// Cluster mode: the manifest's NATS is not reachable from here, so
		// check its address and run the relay against a real NATS server
		// instead, as it would start there.
		checkNATSURL(t, cfg.NATSURL)
		tb, ok := t.(testing.TB)
		if !ok {
			t.Fatal("a cluster-mode site needs a testing.TB to start NATS")
		}
		cfg.NATSURL = startNATS(tb)
		if cfg.NATSCredsFile != "" && !filepath.IsAbs(cfg.NATSCredsFile) {
			t.Errorf("RELAY_NATS_CREDS_FILE=%q is not an absolute path (a mounted secret)", cfg.NATSCredsFile)
		}
		cfg.NATSCredsFile = "" // the test server has no accounts
	}
	srv, err := relay.New(cfg)
	if err != nil {
		t.Fatalf("the relay refuses this configuration: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}

	// The ops listener (RELAY_METRICS_ADDR) serves /metrics, /healthz and
	// /readyz; the main port serves the probes too, and /metrics only
	// without an ops listener.
	opsPort := 0
	if cfg.MetricsAddr != "" {
		_, port, err := net.SplitHostPort(cfg.MetricsAddr)
		if opsPort, err = strconv.Atoi(port); err != nil {
			t.Errorf("RELAY_METRICS_ADDR=%q has no port", cfg.MetricsAddr)
		}
	}
	servesHealth := func(port int) bool { return port == cfg.Port || (opsPort != 0 && port == opsPort) }
	if len(s.listen) == 0 {
		t.Errorf("names no port for the relay")
	}
	for _, p := range s.listen {
		if p != cfg.Port {
			t.Errorf("routes to port %d, but the relay listens on PORT=%d", p, cfg.Port)
		}
	}
	if len(s.declared) > 0 && !slices.Contains(s.declared, cfg.Port) {
		t.Errorf("declares ports %v but not PORT=%d", s.declared, cfg.Port)
	}
	for _, p := range s.declared {
		if !servesHealth(p) {
			t.Errorf("declares port %d, on which the relay listens for nothing (PORT=%d, RELAY_METRICS_ADDR=%q)", p, cfg.Port, cfg.MetricsAddr)
		}
	}
	for _, p := range s.metrics {
		if want := cmp.Or(opsPort, cfg.Port); p != want {
			t.Errorf("scrapes /metrics on port %d, but the relay serves it on %d", p, want)
		}
	}
	want := map[string]string{"startup": "/readyz", "readiness": "/readyz", "liveness": "/healthz"}
	for _, p := range s.probes {
		if p.path != want[p.kind] {
			t.Errorf("%s probe asks %s, want %s", p.kind, p.path, want[p.kind])
		}
		if !servesHealth(p.port) {
			t.Errorf("%s probe asks port %d, but the relay serves probes on PORT=%d (and RELAY_METRICS_ADDR=%q)", p.kind, p.port, cfg.Port, cfg.MetricsAddr)
		}
	}
	if s.stopGrace != 0 {
		if need := s.preStop + cfg.ShutdownTimeout + time.Second; s.stopGrace < need {
			t.Errorf("the platform kills the relay %v after asking it to stop, but its drain may take %v (preStop %v + RELAY_SHUTDOWN_TIMEOUT %v + 1s margin)",
				s.stopGrace, need, s.preStop, cfg.ShutdownTimeout)
		}
	}
	return cfg
}

// startNATS runs a NATS server with JetStream in the test process on a
// loopback port until the test ends, and returns its client URL.
func startNATS(tb testing.TB) string {
	tb.Helper()
	ns, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: natsserver.RANDOM_PORT,
		JetStream: true, StoreDir: tb.TempDir(), NoLog: true, NoSigs: true})
	if err != nil {
		tb.Fatal(err)
	}
	ns.Start()
	tb.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	if !ns.ReadyForConnections(10 * time.Second) {
		tb.Fatal("nats server not ready within 10s")
	}
	return ns.ClientURL()
}

// checkScale checks that a site runs more than one instance only in
// cluster mode: without RELAY_NATS_URL a channel lives in one instance's
// memory, and a second instance would split every channel in two.
func checkScale(t checker, s site, instances int) {
	t.Helper()
	if _, cluster := s.env["RELAY_NATS_URL"]; instances > 1 && !cluster {
		t.Errorf("%d instances without RELAY_NATS_URL: each would hold its own half of every channel", instances)
	}
}

// checkNATSURL checks that every server in a RELAY_NATS_URL is a NATS URL
// with a host and a port.
func checkNATSURL(t checker, urls string) {
	t.Helper()
	for _, u := range strings.Split(urls, ",") {
		pu, err := url.Parse(strings.TrimSpace(u))
		if err != nil || (pu.Scheme != "nats" && pu.Scheme != "tls") || pu.Hostname() == "" || pu.Port() == "" {
			t.Errorf("RELAY_NATS_URL server %q is not nats://HOST:PORT (or tls://HOST:PORT)", u)
		}
	}
}

// container is the part of a Kubernetes (and Knative) container spec the
// checks read.
type container struct {
	Name  string
	Image string
	Ports []struct {
		Name          string
		ContainerPort int `yaml:"containerPort"`
	}
	Env []struct {
		Name      string
		Value     string
		ValueFrom map[string]any `yaml:"valueFrom"`
	}
	VolumeMounts []struct {
		Name      string
		MountPath string `yaml:"mountPath"`
	} `yaml:"volumeMounts"`
	StartupProbe   *k8sProbe `yaml:"startupProbe"`
	ReadinessProbe *k8sProbe `yaml:"readinessProbe"`
	LivenessProbe  *k8sProbe `yaml:"livenessProbe"`
	Lifecycle      *struct {
		PreStop *struct {
			Sleep *struct{ Seconds int }
			Exec  any
		} `yaml:"preStop"`
	}
	SecurityContext *struct {
		ReadOnlyRootFilesystem   *bool `yaml:"readOnlyRootFilesystem"`
		AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
	} `yaml:"securityContext"`
}

type k8sProbe struct {
	HTTPGet *struct {
		Path string
		Port string // a number or a port name
	} `yaml:"httpGet"`
}

// site reads c into a site; ports named in probes resolve through c.Ports.
func (c *container) site(t *testing.T) site {
	t.Helper()
	s := site{env: map[string]string{}, secrets: map[string]bool{}}
	for _, e := range c.Env {
		if e.ValueFrom != nil {
			s.env[e.Name] = "placeholder-secret"
			_, s.secrets[e.Name] = e.ValueFrom["secretKeyRef"]
		} else {
			s.env[e.Name] = e.Value
		}
	}
	for _, p := range c.Ports {
		s.declared = append(s.declared, p.ContainerPort)
	}
	for _, kp := range []struct {
		kind string
		p    *k8sProbe
	}{{"startup", c.StartupProbe}, {"readiness", c.ReadinessProbe}, {"liveness", c.LivenessProbe}} {
		if kp.p == nil {
			continue
		}
		if kp.p.HTTPGet == nil {
			t.Errorf("%s probe is not an HTTP GET", kp.kind)
			continue
		}
		s.probes = append(s.probes, probe{kp.kind, kp.p.HTTPGet.Path, c.resolvePort(t, kp.p.HTTPGet.Port)})
	}
	if c.Lifecycle != nil && c.Lifecycle.PreStop != nil {
		if c.Lifecycle.PreStop.Exec != nil {
			t.Error("preStop runs a command, but the image has no shell and the relay needs no command to drain (SIGTERM does it)")
		}
		if sl := c.Lifecycle.PreStop.Sleep; sl != nil {
			s.preStop = time.Duration(sl.Seconds) * time.Second
		}
	}
	return s
}

// resolvePort turns a port number or a container port name into a number.
func (c *container) resolvePort(t *testing.T, port string) int {
	t.Helper()
	if n, err := strconv.Atoi(port); err == nil {
		return n
	}
	for _, p := range c.Ports {
		if p.Name == port {
			return p.ContainerPort
		}
	}
	t.Errorf("port %q is neither a number nor a named container port", port)
	return 0
}

func readFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// decodeYAMLDocs reads every document of a multi-document YAML file.
func decodeYAMLDocs(t *testing.T, name string) []*yaml.Node {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	var docs []*yaml.Node
	for {
		var n yaml.Node
		if err := dec.Decode(&n); err != nil {
			if errors.Is(err, io.EOF) {
				return docs
			}
			t.Fatalf("%s: %v", name, err)
		}
		docs = append(docs, &n)
	}
}

func TestCloudRun(t *testing.T) {
	var svc struct {
		APIVersion string `yaml:"apiVersion"`
		Kind       string
		Spec       struct {
			Template struct {
				Metadata struct{ Annotations map[string]string }
				Spec     struct {
					TimeoutSeconds       int `yaml:"timeoutSeconds"`
					ContainerConcurrency int `yaml:"containerConcurrency"`
					Containers           []container
				}
			}
		}
	}
	if err := yaml.Unmarshal(readFile(t, "cloudrun.yaml"), &svc); err != nil {
		t.Fatalf("cloudrun.yaml: %v", err)
	}
	if svc.APIVersion != "serving.knative.dev/v1" || svc.Kind != "Service" {
		t.Fatalf("cloudrun.yaml is a %s %s, want a serving.knative.dev/v1 Service", svc.APIVersion, svc.Kind)
	}
	tmpl := svc.Spec.Template
	if tmpl.Spec.TimeoutSeconds != 3600 {
		t.Errorf("timeoutSeconds = %d: a WebSocket is one request, so it should be Cloud Run's most, 3600", tmpl.Spec.TimeoutSeconds)
	}
	if c := tmpl.Spec.ContainerConcurrency; c < 1 || c > 1000 {
		t.Errorf("containerConcurrency = %d, want 1..1000 (open WebSockets per instance)", c)
	}
	ann := tmpl.Metadata.Annotations
	if ann["run.googleapis.com/sessionAffinity"] != "true" {
		t.Error("no session affinity: reconnecting clients should return to their instance")
	}
	if len(tmpl.Spec.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(tmpl.Spec.Containers))
	}
	c := tmpl.Spec.Containers[0]
	if len(c.Ports) != 1 || c.Ports[0].Name != "http1" {
		t.Errorf("ports = %+v, want one named http1 (WebSockets need HTTP/1.1 to the container)", c.Ports)
	}
	s := c.site(t)
	if n, err := strconv.Atoi(ann["autoscaling.knative.dev/maxScale"]); err != nil || n < 1 {
		t.Errorf("maxScale %q, want a number", ann["autoscaling.knative.dev/maxScale"])
	} else {
		checkScale(t, s, n)
	}
	if len(c.Ports) > 0 {
		// Cloud Run routes to this port and puts it in PORT.
		s.platformPort = c.Ports[0].ContainerPort
		s.listen = []int{s.platformPort}
	}
	s.stopGrace = 10 * time.Second // Cloud Run's fixed SIGTERM-to-SIGKILL time
	kinds := map[string]bool{}
	for _, p := range s.probes {
		kinds[p.kind] = true
	}
	if !kinds["startup"] || !kinds["liveness"] {
		t.Errorf("probes %v, want a startup and a liveness probe", s.probes)
	}
	checkAuthority(t, s, checkSite(t, s))
}

func TestFly(t *testing.T) {
	var fly struct {
		App         string
		KillSignal  string `toml:"kill_signal"`
		KillTimeout string `toml:"kill_timeout"`
		Env         map[string]string
		HTTPService struct {
			InternalPort       int  `toml:"internal_port"`
			MinMachinesRunning int  `toml:"min_machines_running"`
			ForceHTTPS         bool `toml:"force_https"`
			Concurrency        struct {
				Type      string
				SoftLimit int `toml:"soft_limit"`
				HardLimit int `toml:"hard_limit"`
			}
			Checks []struct {
				Method, Path, Interval, Timeout string
				GracePeriod                     string `toml:"grace_period"`
			}
		} `toml:"http_service"`
		Metrics *struct {
			Port int
			Path string
		}
	}
	if _, err := toml.DecodeFile("fly.toml", &fly); err != nil {
		t.Fatalf("fly.toml: %v", err)
	}
	if fly.KillSignal != "SIGTERM" {
		t.Errorf("kill_signal = %q: the relay drains on SIGTERM", fly.KillSignal)
	}
	grace, err := time.ParseDuration(fly.KillTimeout)
	if err != nil {
		t.Errorf("kill_timeout = %q: %v", fly.KillTimeout, err)
	}
	hs := fly.HTTPService
	if hs.Concurrency.Type != "connections" {
		t.Errorf("concurrency type %q: a WebSocket is one long connection, balance on connections", hs.Concurrency.Type)
	}
	if hs.Concurrency.SoftLimit < 1 || hs.Concurrency.HardLimit < hs.Concurrency.SoftLimit {
		t.Errorf("concurrency limits soft %d hard %d", hs.Concurrency.SoftLimit, hs.Concurrency.HardLimit)
	}
	if hs.MinMachinesRunning != 1 {
		t.Errorf("min_machines_running = %d, want 1", hs.MinMachinesRunning)
	}
	if fly.Env["RELAY_CLIENT_IP_HEADER"] != "Fly-Client-IP" || fly.Env["RELAY_TRUSTED_PROXIES"] == "" {
		t.Error("Fly-Client-IP is not configured as the client address from trusted proxies")
	}
	s := site{env: fly.Env, secrets: map[string]bool{}, listen: []int{hs.InternalPort}, stopGrace: grace}
	// Fly's secrets reach the machine as variables; the manifest must name
	// the token only in its `fly secrets set` instructions.
	if _, ok := fly.Env["RELAY_AUTHORITY_TOKENS"]; ok {
		t.Error("fly.toml sets RELAY_AUTHORITY_TOKENS in [env]: a secret belongs in `fly secrets set`")
	} else if strings.Contains(string(readFile(t, "fly.toml")), "fly secrets set RELAY_AUTHORITY_TOKENS=") {
		s.env["RELAY_AUTHORITY_TOKENS"] = "placeholder-secret"
		s.secrets["RELAY_AUTHORITY_TOKENS"] = true
	}
	if m := fly.Metrics; m != nil {
		if m.Path != "/metrics" {
			t.Errorf("[metrics] path %q, want /metrics", m.Path)
		}
		s.metrics = append(s.metrics, m.Port)
	}
	if len(hs.Checks) == 0 {
		t.Error("no health checks")
	}
	for _, c := range hs.Checks {
		// Fly checks the internal port; failing ones take the machine out
		// of the proxy's rotation, which is what readiness means.
		s.probes = append(s.probes, probe{"readiness", c.Path, hs.InternalPort})
	}
	checkAuthority(t, s, checkSite(t, s))
}

func TestKubernetes(t *testing.T) {
	type meta struct {
		Name   string
		Labels map[string]string
	}
	var (
		deploy struct {
			Spec struct {
				Replicas int
				Selector struct {
					MatchLabels map[string]string `yaml:"matchLabels"`
				}
				Template struct {
					Metadata meta
					Spec     struct {
						TerminationGracePeriodSeconds *int `yaml:"terminationGracePeriodSeconds"`
						SecurityContext               struct {
							RunAsNonRoot bool `yaml:"runAsNonRoot"`
							RunAsUser    int  `yaml:"runAsUser"`
						} `yaml:"securityContext"`
						Containers []container
						Volumes    []struct {
							Name   string
							Secret *struct {
								SecretName string `yaml:"secretName"`
							}
						}
					}
				}
			}
		}
		svc struct {
			Spec struct {
				Selector map[string]string
				Ports    []struct {
					Name       string
					Port       int
					TargetPort string `yaml:"targetPort"`
				}
			}
		}
		pdb struct {
			Spec struct {
				MinAvailable   *string `yaml:"minAvailable"`
				MaxUnavailable *string `yaml:"maxUnavailable"`
				Selector       struct {
					MatchLabels map[string]string `yaml:"matchLabels"`
				}
			}
		}
	)
	seen := map[string]bool{}
	for _, doc := range decodeYAMLDocs(t, "kubernetes.yaml") {
		var head struct {
			APIVersion string `yaml:"apiVersion"`
			Kind       string
		}
		if err := doc.Decode(&head); err != nil {
			t.Fatal(err)
		}
		var err error
		switch head.APIVersion + " " + head.Kind {
		case "apps/v1 Deployment":
			err = doc.Decode(&deploy)
		case "v1 Service":
			err = doc.Decode(&svc)
		case "policy/v1 PodDisruptionBudget":
			err = doc.Decode(&pdb)
		default:
			t.Errorf("unexpected object %s %s", head.APIVersion, head.Kind)
		}
		if err != nil {
			t.Fatalf("%s: %v", head.Kind, err)
		}
		seen[head.Kind] = true
	}
	for _, k := range []string{"Deployment", "Service", "PodDisruptionBudget"} {
		if !seen[k] {
			t.Fatalf("kubernetes.yaml has no %s", k)
		}
	}

	ds := deploy.Spec
	pod := ds.Template
	if !matches(ds.Selector.MatchLabels, pod.Metadata.Labels) {
		t.Error("the Deployment's selector does not match its pods")
	}
	if !matches(svc.Spec.Selector, pod.Metadata.Labels) {
		t.Error("the Service's selector does not match the relay's pods")
	}
	if !matches(pdb.Spec.Selector.MatchLabels, pod.Metadata.Labels) {
		t.Error("the PodDisruptionBudget's selector does not match the relay's pods")
	}
	if pdb.Spec.MinAvailable != nil {
		if n, err := strconv.Atoi(*pdb.Spec.MinAvailable); err == nil && n >= ds.Replicas {
			t.Errorf("PodDisruptionBudget minAvailable %d with %d replicas blocks every node drain", n, ds.Replicas)
		}
	}
	if !pod.Spec.SecurityContext.RunAsNonRoot || pod.Spec.SecurityContext.RunAsUser != 65532 {
		t.Error("the pod does not run as the image's non-root user 65532")
	}
	if len(pod.Spec.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(pod.Spec.Containers))
	}
	c := pod.Spec.Containers[0]
	if sc := c.SecurityContext; sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Error("the root filesystem is not read-only (the relay writes nothing outside its plugin cache)")
	}
	s := c.site(t)
	checkScale(t, s, ds.Replicas)
	s.stopGrace = 30 * time.Second // Kubernetes' default
	if g := pod.Spec.TerminationGracePeriodSeconds; g != nil {
		s.stopGrace = time.Duration(*g) * time.Second
	}
	kinds := map[string]bool{}
	for _, p := range s.probes {
		kinds[p.kind] = true
	}
	if !kinds["readiness"] || !kinds["liveness"] {
		t.Errorf("probes %v, want readiness and liveness probes", s.probes)
	}
	if len(svc.Spec.Ports) == 0 {
		t.Error("the Service exposes no port")
	}
	for _, p := range svc.Spec.Ports {
		s.listen = append(s.listen, c.resolvePort(t, p.TargetPort))
	}
	// A *_FILE variable naming a file in a volume mounted from a Secret is
	// a secret too.
	for name, value := range s.env {
		if !strings.HasSuffix(name, "_FILE") {
			continue
		}
		for _, m := range c.VolumeMounts {
			for _, v := range pod.Spec.Volumes {
				if v.Name == m.Name && v.Secret != nil && strings.HasPrefix(value, strings.TrimSuffix(m.MountPath, "/")+"/") {
					s.secrets[name] = true
				}
			}
		}
	}
	cfg := checkSite(t, s)
	checkAuthority(t, s, cfg)
	// Only the ingress controller's own addresses are trusted, never a
	// range the other pods share.
	for _, p := range cfg.TrustedProxies {
		if pr, err := netip.ParsePrefix(p); err == nil && !pr.IsSingleIP() {
			t.Errorf("RELAY_TRUSTED_PROXIES has the range %s: trust only the ingress controller's pod addresses, one by one", p)
		}
	}
}

// matches reports whether selector is non-empty and every label in it is on
// labels.
func matches(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// composeService is the part of a compose service the checks read.
type composeService struct {
	Build struct {
		Context string
	}
	Image           string
	Command         []string
	Ports           []string
	Environment     map[string]string
	DependsOn       map[string]any `yaml:"depends_on"`
	StopSignal      string         `yaml:"stop_signal"`
	StopGracePeriod string         `yaml:"stop_grace_period"`
	ReadOnly        bool           `yaml:"read_only"`
	Healthcheck     struct {
		Test []string
	}
}

func readCompose(t *testing.T, name string) map[string]composeService {
	t.Helper()
	var compose struct {
		Services map[string]composeService
	}
	if err := yaml.Unmarshal(readFile(t, name), &compose); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return compose.Services
}

// checkRelayService checks a compose service that runs the relay.
func checkRelayService(t *testing.T, svc composeService) {
	t.Helper()
	if ctx := filepath.Join(".", svc.Build.Context); !fileExists(filepath.Join(ctx, "Dockerfile")) {
		t.Errorf("build context %s has no Dockerfile", svc.Build.Context)
	}
	if !slices.Equal(svc.Healthcheck.Test, []string{"CMD", "/relay", "healthcheck"}) {
		t.Errorf("healthcheck %q, want the binary's own: CMD /relay healthcheck", svc.Healthcheck.Test)
	}
	if svc.StopSignal != "SIGTERM" {
		t.Errorf("stop_signal %q, want SIGTERM", svc.StopSignal)
	}
	if !svc.ReadOnly {
		t.Error("read_only is off")
	}
	grace, err := time.ParseDuration(svc.StopGracePeriod)
	if err != nil {
		t.Errorf("stop_grace_period %q: %v", svc.StopGracePeriod, err)
	}
	s := site{env: map[string]string{}, stopGrace: grace}
	for name, value := range svc.Environment {
		s.env[name] = expandDefaults(value)
	}
	for _, p := range svc.Ports {
		// HOST:CONTAINER or CONTAINER; the relay listens on the container side.
		_, inside, _ := strings.Cut(p, ":")
		if inside == "" {
			inside = p
		}
		n, err := strconv.Atoi(inside)
		if err != nil {
			t.Errorf("port %q: %v", p, err)
		}
		s.listen = append(s.listen, n)
	}
	checkSite(t, s)
}

func TestCompose(t *testing.T) {
	services := readCompose(t, "compose.yaml")
	svc, ok := services["relay"]
	if !ok || len(services) != 1 {
		t.Fatalf("services %v, want only relay", services)
	}
	checkRelayService(t, svc)
}

// compose-cluster.yaml: three relay instances with one configuration on a
// NATS service with JetStream, each reachable on its own host port, each
// started after NATS, each one a valid relay site (run against a real NATS).
func TestComposeCluster(t *testing.T) {
	services := readCompose(t, "compose-cluster.yaml")
	nats, ok := services["nats"]
	if !ok {
		t.Fatal("no nats service")
	}
	if !strings.HasPrefix(nats.Image, "nats:2.") || !slices.Contains(nats.Command, "-js") {
		t.Errorf("nats service runs %s %q: want the nats:2.x image with JetStream (-js)", nats.Image, nats.Command)
	}
	var relays []string
	for name := range services {
		if name != "nats" {
			relays = append(relays, name)
		}
	}
	slices.Sort(relays)
	if len(relays) != 3 {
		t.Fatalf("relay services %v, want three", relays)
	}
	hostPorts := map[string]bool{}
	first := services[relays[0]]
	for _, name := range relays {
		svc := services[name]
		t.Run(name, func(t *testing.T) {
			if got := svc.Environment["RELAY_NATS_URL"]; got != "nats://nats:4222" {
				t.Errorf("RELAY_NATS_URL %q, want the nats service's client port, nats://nats:4222", got)
			}
			if _, ok := svc.DependsOn["nats"]; !ok {
				t.Error("does not depend on nats")
			}
			if !maps.Equal(svc.Environment, first.Environment) {
				t.Errorf("environment %v differs from %s's %v: every instance needs the same configuration", svc.Environment, relays[0], first.Environment)
			}
			for _, p := range svc.Ports {
				host, _, _ := strings.Cut(p, ":")
				if hostPorts[host] {
					t.Errorf("host port %s is published twice", host)
				}
				hostPorts[host] = true
			}
			checkRelayService(t, svc)
		})
	}
}

// expandDefaults replaces compose's ${VAR:-default} with its default, as
// compose does when VAR is unset.
func expandDefaults(s string) string {
	return regexp.MustCompile(`\$\{[A-Za-z_][A-Za-z0-9_]*:-([^}]*)\}`).ReplaceAllString(s, "$1")
}

func fileExists(name string) bool {
	_, err := os.Stat(name)
	return err == nil
}

// instruction is one Dockerfile instruction.
type instruction struct {
	cmd  string // upper case
	args string
}

// parseDockerfile returns a Dockerfile's instructions in order, continuation
// lines joined, comments dropped.
func parseDockerfile(t *testing.T, name string) []instruction {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []instruction
	var cur strings.Builder
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "#") || (line == "" && cur.Len() == 0) {
			continue
		}
		if strings.HasSuffix(line, `\`) {
			cur.WriteString(strings.TrimSuffix(line, `\`) + " ")
			continue
		}
		cur.WriteString(line)
		cmd, args, _ := strings.Cut(strings.TrimSpace(cur.String()), " ")
		out = append(out, instruction{strings.ToUpper(cmd), strings.TrimSpace(args)})
		cur.Reset()
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestDockerfile(t *testing.T) {
	ins := parseDockerfile(t, "../../Dockerfile")
	var (
		final      int // index of the last FROM
		buildsWith bool
		s          = site{env: map[string]string{}}
	)
	for i, in := range ins {
		if in.cmd == "FROM" {
			final = i
		}
	}
	if from := ins[final].args; from != "gcr.io/distroless/static-debian12:nonroot" {
		t.Errorf("final stage FROM %s, want distroless static nonroot", from)
	}
	for i, in := range ins {
		switch in.cmd {
		case "RUN":
			if i < final && strings.Contains(in.args, "sh examples/deploy/build-image.sh /out") {
				buildsWith = true
			}
		case "ENV":
			for _, kv := range strings.Fields(in.args) {
				k, v, ok := strings.Cut(kv, "=")
				if !ok {
					t.Errorf("ENV %s: use the KEY=value form", in.args)
				}
				s.env[k] = strings.Trim(v, `"`)
			}
		case "EXPOSE":
			for _, p := range strings.Fields(in.args) {
				n, err := strconv.Atoi(strings.TrimSuffix(p, "/tcp"))
				if err != nil {
					t.Errorf("EXPOSE %s: %v", p, err)
				}
				s.declared = append(s.declared, n)
			}
		}
	}
	s.listen = s.declared // docker run -p maps to the exposed port
	if _, ok := relayVars()["RELAY_PLUGIN_CACHE_DIR"]; ok && s.env["RELAY_PLUGIN_CACHE_DIR"] != "/cache" {
		t.Error("the final stage does not set ENV RELAY_PLUGIN_CACHE_DIR=/cache: the relay would miss the precompiled plugin cache")
	}
	if !buildsWith {
		t.Error("the build stage does not run examples/deploy/build-image.sh, the layout CI tests")
	}
	last := func(cmd string) string {
		for i := len(ins) - 1; i > final; i-- {
			if ins[i].cmd == cmd {
				return ins[i].args
			}
		}
		return ""
	}
	if u := last("USER"); u != "65532:65532" && u != "nonroot" && u != "nonroot:nonroot" {
		t.Errorf("USER %q, want the non-root 65532", u)
	}
	if ep := execForm(t, last("ENTRYPOINT")); !slices.Equal(ep, []string{"/relay"}) {
		t.Errorf("ENTRYPOINT %q, want [/relay]", ep)
	}
	if sig := last("STOPSIGNAL"); sig != "SIGTERM" {
		t.Errorf("STOPSIGNAL %q, want SIGTERM", sig)
	}
	hc := last("HEALTHCHECK")
	_, cmd, _ := strings.Cut(hc, "CMD ")
	if !slices.Equal(execForm(t, cmd), []string{"/relay", "healthcheck"}) {
		t.Errorf("HEALTHCHECK %q, want CMD [\"/relay\", \"healthcheck\"] (no shell in the image)", hc)
	}
	for _, want := range []string{"/out/relay /relay", "/out/plugins/ /plugins/", "/out/cache/ /cache/"} {
		found := false
		for _, in := range ins[final:] {
			found = found || (in.cmd == "COPY" && strings.Contains(in.args, "--from=build") && strings.HasSuffix(in.args, want))
		}
		if !found {
			t.Errorf("the final stage does not COPY --from=build %s", want)
		}
	}
	checkSite(t, s)
}

// execForm parses a JSON array instruction argument.
func execForm(t *testing.T, s string) []string {
	t.Helper()
	var out []string
	if err := json.Unmarshal([]byte(s), &out); err != nil {
		t.Errorf("%q is not the exec (JSON array) form: %v", s, err)
	}
	return out
}

// TestCheckSiteCatches makes sure the shared checks fail on the mistakes
// they are there for, so a green run of the manifest tests means something.
func TestCheckSiteCatches(t *testing.T) {
	good := func() site {
		return site{
			env:       map[string]string{"RELAY_SHUTDOWN_TIMEOUT": "8s"},
			listen:    []int{7328},
			declared:  []int{7328},
			probes:    []probe{{"readiness", "/readyz", 7328}, {"liveness", "/healthz", 7328}},
			stopGrace: 10 * time.Second,
		}
	}
	cases := map[string]func(s *site){
		"unknown variable":    func(s *site) { s.env["RELAY_PROT"] = "1" },
		"bad value":           func(s *site) { s.env["RELAY_SHUTDOWN_TIMEOUT"] = "soon" },
		"bad proxy range":     func(s *site) { s.env["RELAY_TRUSTED_PROXIES"] = "10.0.0.0/33" },
		"wrong port":          func(s *site) { s.listen = []int{8080} },
		"stray port":          func(s *site) { s.declared = []int{7328, 9090} },
		"PORT not declared":   func(s *site) { s.declared = []int{9090}; s.env["RELAY_METRICS_ADDR"] = ":9090" },
		"metrics on PORT":     func(s *site) { s.env["RELAY_METRICS_ADDR"] = ":9090"; s.metrics = []int{7328} },
		"metrics elsewhere":   func(s *site) { s.metrics = []int{9090} },
		"PORT moves relay":    func(s *site) { s.env["PORT"] = "9000" },
		"probe path":          func(s *site) { s.probes[0].path = "/healthz" },
		"probe port":          func(s *site) { s.probes[1].port = 9090 },
		"kill before drain":   func(s *site) { s.stopGrace = 5 * time.Second },
		"drain after preStop": func(s *site) { s.preStop = 5 * time.Second },
		"platform PORT clash": func(s *site) { s.platformPort = 7328; s.env["PORT"] = "7328" },
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			s := good()
			mutate(&s)
			rec := &recorder{T: t}
			done := make(chan struct{})
			go func() {
				defer close(done)
				checkSite(rec, s)
			}()
			<-done
			if !rec.failed {
				t.Errorf("checkSite passed a manifest with this mistake")
			}
		})
	}
	t.Run("good", func(t *testing.T) { checkSite(t, good()) })
	t.Run("good with an ops listener", func(t *testing.T) {
		s := good()
		s.env["RELAY_METRICS_ADDR"] = ":9090"
		s.declared = []int{7328, 9090}
		s.metrics = []int{9090}
		s.probes[0].port = 9090
		checkSite(t, s)
	})
}

// checker is what checkSite needs of a *testing.T.
type checker interface {
	Helper()
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
	Fatal(args ...any)
	Setenv(key, value string)
	TempDir() string
	Cleanup(func())
}

// recorder is a checker that notes failures instead of reporting them; its
// Fatal methods end the calling goroutine, as testing.T's do.
type recorder struct {
	*testing.T
	failed bool
}

func (r *recorder) Errorf(format string, args ...any) {
	r.failed = true
	r.Logf("expected failure: "+format, args...)
}

func (r *recorder) Fatalf(format string, args ...any) {
	r.Errorf(format, args...)
	runtime.Goexit()
}

func (r *recorder) Fatal(args ...any) {
	r.Errorf("%s", fmt.Sprint(args...))
	runtime.Goexit()
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// checkScale refuses several instances without cluster mode and accepts
// them with it.
func TestCheckScaleCatches(t *testing.T) {
	rec := &recorder{T: t}
	checkScale(rec, site{env: map[string]string{}}, 3)
	if !rec.failed {
		t.Error("checkScale passed three instances without RELAY_NATS_URL")
	}
	checkScale(t, site{env: map[string]string{"RELAY_NATS_URL": "nats://nats:4222"}}, 3)
	checkScale(t, site{env: map[string]string{}}, 1)
	rec = &recorder{T: t}
	checkNATSURL(rec, "nats://a:4222,http://b")
	if !rec.failed {
		t.Error("checkNATSURL passed an http:// server")
	}
}

// relayVarRE finds the relay's variable names in any text.
var relayVarRE = regexp.MustCompile(`\bRELAY_[A-Z0-9_]*[A-Z0-9]\b`)

// Every variable the deployment files and their README name, in settings
// and in comments alike (the optional cluster settings are comments), is
// one the relay reads: a renamed or misspelt variable in a commented
// recipe fails here, not on someone's first deploy.
func TestEveryNamedVariableExists(t *testing.T) {
	known := relayVars()
	files, err := filepath.Glob("*")
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, f := range files {
		if strings.HasSuffix(f, ".go") || !fileExists(f) {
			continue
		}
		for _, name := range relayVarRE.FindAllString(string(readFile(t, f)), -1) {
			checked++
			if _, ok := known[name]; !ok && !isPluginConfigVar(known, name) && name != "RELAY_PLUGIN_CONFIG_NAME" {
				t.Errorf("%s names %s, which the relay does not read", f, name)
			}
		}
	}
	if checked == 0 {
		t.Fatal("no RELAY_ variable found: the scan is broken")
	}
}
