package plugin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// A plugin has no network. What it needs from the network (an identity
// provider's JWKS, a block list) it reads as a resource: a URL the operator
// allowed in RELAY_PLUGIN_RESOURCES_<NAME>, fetched by the host at start-up
// and again in the background, handed to the guest through the
// relay.resource import. See plugin-sdk/ABI.md, "Resources".

// Defaults for zero ResourceConfig fields.
const (
	// DefaultResourceTimeout bounds one fetch of a resource.
	DefaultResourceTimeout = 5 * time.Second
	// DefaultResourceMinRefresh is the shortest time between two fetches of
	// a resource asked for by the plugin, and the floor of Cache-Control
	// max-age.
	DefaultResourceMinRefresh = time.Minute
	// DefaultResourceMaxRefresh is the longest time a fetched resource is
	// kept before it is fetched again (the ceiling of max-age, and the
	// interval when the response has none).
	DefaultResourceMaxRefresh = time.Hour
	// DefaultResourceMaxBytes caps a resource's size.
	DefaultResourceMaxBytes = 1 << 20
)

// Fetch outcomes reported to ResourceConfig.ObserveFetch.
const (
	// FetchChanged is a fetch that brought new content.
	FetchChanged = "changed"
	// FetchUnchanged is a fetch that brought the content already held
	// (or a 304 Not Modified).
	FetchUnchanged = "unchanged"
	// FetchFailed is a fetch that failed (network, status, size); the last
	// good content is kept.
	FetchFailed = "error"
)

// ResourceConfig configures how the host fetches the resources plugins may
// read. The zero value of each field means its default.
type ResourceConfig struct {
	// Timeout bounds one fetch. Default DefaultResourceTimeout.
	Timeout time.Duration
	// MinRefresh is the floor of a response's Cache-Control max-age, the
	// shortest gap between fetches a plugin asks for (RefreshResource) and
	// the ceiling of the backoff after failures. Default DefaultResourceMinRefresh.
	MinRefresh time.Duration
	// MaxRefresh is the ceiling of max-age, and the refresh interval of a
	// response without one. Default DefaultResourceMaxRefresh.
	MaxRefresh time.Duration
	// MaxBytes caps a resource's size; a larger response is a failed fetch.
	// Default DefaultResourceMaxBytes.
	MaxBytes int
	// StartWithout lets Load succeed when a resource cannot be fetched at
	// start-up: the plugin then sees it as unavailable until a background
	// fetch succeeds. By default such a failure stops Load.
	StartWithout bool
	// Client makes the requests. Default: an http.Client that follows up to
	// three redirects within the same scheme and host.
	Client *http.Client
	// ObserveFetch, when set, is called after every fetch with the
	// plugin's name, the resource's URL and one of the Fetch* outcomes.
	ObserveFetch func(plugin, url, outcome string)
}

func (c ResourceConfig) withDefaults() ResourceConfig {
	if c.Timeout <= 0 {
		c.Timeout = DefaultResourceTimeout
	}
	if c.MinRefresh <= 0 {
		c.MinRefresh = DefaultResourceMinRefresh
	}
	if c.MaxRefresh <= 0 {
		c.MaxRefresh = DefaultResourceMaxRefresh
	}
	if c.MaxRefresh < c.MinRefresh {
		c.MaxRefresh = c.MinRefresh
	}
	if c.MaxBytes <= 0 {
		c.MaxBytes = DefaultResourceMaxBytes
	}
	if c.Client == nil {
		c.Client = &http.Client{CheckRedirect: sameOriginRedirects}
	}
	return c
}

// sameOriginRedirects keeps a fetch on the host the operator allowed: a
// redirect elsewhere would let a compromised endpoint point the relay at
// an address nobody listed.
func sameOriginRedirects(req *http.Request, via []*http.Request) error {
	if len(via) >= 3 {
		return errors.New("more than 3 redirects")
	}
	if req.URL.Scheme != via[0].URL.Scheme || req.URL.Host != via[0].URL.Host {
		return fmt.Errorf("redirect to another origin (%s://%s)", req.URL.Scheme, req.URL.Host)
	}
	return nil
}

// ResourcesEnvName returns the environment variable that lists the
// resources the plugin called name may read: RELAY_PLUGIN_RESOURCES_
// followed by the name as in ConfigEnvName (jwt-auth gives
// RELAY_PLUGIN_RESOURCES_JWT_AUTH).
func ResourcesEnvName(name string) string {
	return "RELAY_PLUGIN_RESOURCES_" + strings.TrimPrefix(ConfigEnvName(name), "RELAY_PLUGIN_CONFIG_")
}

// ParseResources parses a RELAY_PLUGIN_RESOURCES_<NAME> value: URLs
// (http or https) separated by commas or spaces.
func ParseResources(v string) ([]string, error) {
	var urls []string
	for _, s := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\t' }) {
		u, err := url.Parse(s)
		if err != nil {
			return nil, fmt.Errorf("resource %q: %w", s, err)
		}
		if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("resource %q: want an http or https URL", s)
		}
		urls = append(urls, s)
	}
	return urls, nil
}

// ResourceStatus describes one resource for metrics and health checks.
type ResourceStatus struct {
	Plugin, URL string
	// Version counts the distinct contents fetched; 0 means none yet.
	Version uint32
	// FetchedAt is the time of the last successful fetch (zero: never).
	FetchedAt time.Time
	// Err is the last fetch's error, nil after a success.
	Err error
}

// Resources returns the status of every plugin resource.
func (h *Host) Resources() []ResourceStatus {
	if h == nil || h.resources == nil {
		return nil
	}
	var out []ResourceStatus
	for _, r := range h.resources.all {
		r.mu.Lock()
		st := ResourceStatus{Plugin: r.plugin, URL: r.url, FetchedAt: r.fetchedAt, Err: r.lastErr}
		r.mu.Unlock()
		if s := r.snap.Load(); s != nil {
			st.Version = s.version
		}
		out = append(out, st)
	}
	return out
}

// resourceSet is every resource of one Host and the goroutines refreshing them.
type resourceSet struct {
	cfg    ResourceConfig
	logger *slog.Logger
	all    []*resource
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// resource is one URL one plugin may read.
type resource struct {
	set           *resourceSet
	plugin, url   string
	snap          atomic.Pointer[resourceSnapshot]
	kick          chan struct{}
	mu            sync.Mutex
	next          time.Time // when the refresher fetches next
	lastAttempt   time.Time
	fetchedAt     time.Time
	failures      int
	etag, lastMod string
	lastErr       error
}

// resourceSnapshot is content as the guests see it; never changed once stored.
type resourceSnapshot struct {
	data    []byte
	version uint32
}

// startResources fetches every plugin's resources once (in parallel) and
// starts refreshing them. Unless StartWithout, any failure is returned.
func (h *Host) startResources(ctx context.Context) error {
	set := &resourceSet{cfg: h.cfg.Resources.withDefaults(), logger: h.logger}
	for _, p := range h.plugins {
		p.resources = map[string]*resource{}
		for _, u := range p.spec.Resources {
			if p.resources[u] != nil {
				continue
			}
			r := &resource{set: set, plugin: p.spec.Name, url: u, kick: make(chan struct{}, 1)}
			p.resources[u] = r
			set.all = append(set.all, r)
		}
	}
	if len(set.all) == 0 {
		return nil
	}
	h.resources = set
	errs := make([]error, len(set.all))
	var wg sync.WaitGroup
	for i, r := range set.all {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := r.fetch(ctx); err != nil {
				errs[i] = fmt.Errorf("plugin %s: resource %s (%s): %w", r.plugin, r.url, ResourcesEnvName(r.plugin), err)
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		if !set.cfg.StartWithout {
			return fmt.Errorf("%w (the relay fetches every plugin resource at start-up; set RELAY_PLUGIN_RESOURCE_STARTUP=wait to start without them and have the plugin refuse what needs them until they arrive)", err)
		}
		h.logger.Warn("starting without plugin resources; plugins see them as unavailable until a fetch succeeds", "error", err.Error())
	}
	bg, cancel := context.WithCancel(context.Background())
	set.cancel = cancel
	for _, r := range set.all {
		set.wg.Add(1)
		go func() {
			defer set.wg.Done()
			r.refreshLoop(bg)
		}()
	}
	return nil
}

// stop ends the background fetches and waits for them.
func (s *resourceSet) stop() {
	if s != nil && s.cancel != nil {
		s.cancel()
		s.wg.Wait()
	}
}

func (r *resource) refreshLoop(ctx context.Context) {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		r.mu.Lock()
		wait := time.Until(r.next)
		r.mu.Unlock()
		t.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-r.kick:
			t.Stop()
			continue // next moved earlier
		case <-t.C:
		}
		_ = r.fetch(ctx)
	}
}

// requestRefresh moves the next fetch to the earliest moment MinRefresh
// allows after the last attempt. It reports whether that moment is now.
func (r *resource) requestRefresh() bool {
	now := time.Now()
	r.mu.Lock()
	due := r.lastAttempt.Add(r.set.cfg.MinRefresh)
	if due.Before(now) {
		due = now
	}
	moved := due.Before(r.next)
	if moved {
		r.next = due
	}
	r.mu.Unlock()
	if moved {
		select {
		case r.kick <- struct{}{}:
		default:
		}
	}
	return !due.After(now)
}

// fetch gets the resource once and schedules the next fetch: after the
// response's max-age (within MinRefresh..MaxRefresh) on success, after an
// exponential backoff (1 s doubling, at most MinRefresh) on failure, when
// the last good content is kept.
func (r *resource) fetch(ctx context.Context) error {
	cfg := r.set.cfg
	r.mu.Lock()
	r.lastAttempt = time.Now()
	etag, lastMod := r.etag, r.lastMod
	r.mu.Unlock()

	data, maxAge, newTag, newMod, notModified, err := r.get(ctx, etag, lastMod)
	outcome := FetchFailed
	r.mu.Lock()
	now := time.Now()
	if err == nil {
		r.failures, r.lastErr, r.fetchedAt = 0, nil, now
		r.etag, r.lastMod = newTag, newMod
		outcome = FetchUnchanged
		if old := r.snap.Load(); !notModified && (old == nil || !bytes.Equal(old.data, data)) {
			var v uint32 = 1
			if old != nil {
				v = old.version + 1
			}
			r.snap.Store(&resourceSnapshot{data: data, version: v})
			outcome = FetchChanged
		}
		if maxAge < 0 {
			maxAge = cfg.MaxRefresh
		}
		r.next = now.Add(min(max(maxAge, cfg.MinRefresh), cfg.MaxRefresh))
	} else {
		r.failures++
		r.lastErr = err
		backoff := min(time.Second<<min(r.failures-1, 20), cfg.MinRefresh)
		backoff += time.Duration(rand.Int64N(int64(backoff)/10 + 1)) // spread relays restarted together
		r.next = now.Add(backoff)
	}
	failures := r.failures
	r.mu.Unlock()

	if cfg.ObserveFetch != nil {
		cfg.ObserveFetch(r.plugin, r.url, outcome)
	}
	switch {
	case err != nil:
		r.set.logger.Warn("plugin resource fetch failed; keeping the last good content", "plugin", r.plugin, "resource", r.url, "failures", failures, "error", err.Error())
	case outcome == FetchChanged:
		r.set.logger.Info("plugin resource fetched", "plugin", r.plugin, "resource", r.url, "bytes", len(data))
	}
	return err
}

// get makes one conditional GET; maxAge is as parseMaxAge.
func (r *resource) get(ctx context.Context, etag, lastMod string) (data []byte, maxAge time.Duration, newTag, newMod string, notModified bool, err error) {
	cfg := r.set.cfg
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.url, nil)
	if err != nil {
		return nil, 0, "", "", false, err
	}
	req.Header.Set("Accept", "application/json, */*;q=0.5")
	req.Header.Set("User-Agent", "relay-plugin-resources")
	if etag != "" {
		req.Header.Set("If-None-Match", etag)
	}
	if lastMod != "" {
		req.Header.Set("If-Modified-Since", lastMod)
	}
	resp, err := cfg.Client.Do(req)
	if err != nil {
		return nil, 0, "", "", false, err
	}
	defer resp.Body.Close()
	maxAge = parseMaxAge(resp.Header.Get("Cache-Control"))
	switch {
	case resp.StatusCode == http.StatusNotModified && (etag != "" || lastMod != ""):
		return nil, maxAge, etag, lastMod, true, nil
	case resp.StatusCode != http.StatusOK:
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		return nil, 0, "", "", false, fmt.Errorf("HTTP status %s", resp.Status)
	}
	data, err = io.ReadAll(io.LimitReader(resp.Body, int64(cfg.MaxBytes)+1))
	switch {
	case err != nil:
		return nil, 0, "", "", false, fmt.Errorf("reading the body: %w", err)
	case len(data) > cfg.MaxBytes:
		return nil, 0, "", "", false, fmt.Errorf("larger than %d bytes (RELAY_PLUGIN_RESOURCE_MAX_BYTES)", cfg.MaxBytes)
	case len(data) == 0:
		return nil, 0, "", "", false, errors.New("empty body")
	}
	return data, maxAge, resp.Header.Get("ETag"), resp.Header.Get("Last-Modified"), false, nil
}

// parseMaxAge returns a Cache-Control header's max-age; no-cache and
// no-store count as 0, so the floor MinRefresh applies; without either it
// returns -1 (refresh after MaxRefresh).
func parseMaxAge(cc string) time.Duration {
	age := time.Duration(-1)
	for _, d := range strings.Split(cc, ",") {
		d = strings.ToLower(strings.TrimSpace(d))
		switch {
		case d == "no-cache" || d == "no-store":
			return 0
		case strings.HasPrefix(d, "max-age="):
			if n, err := strconv.ParseInt(strings.Trim(d[len("max-age="):], `"`), 10, 64); err == nil && n >= 0 {
				age = time.Duration(min(n, 1<<31)) * time.Second
			}
		}
	}
	return age
}

// addResourceImports adds relay.resource and relay.resource_refresh to the
// host module.
func addResourceImports(b wazero.HostModuleBuilder) wazero.HostModuleBuilder {
	i32 := api.ValueTypeI32
	return b.NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(hostResourceFn), []api.ValueType{i32, i32, i32, i32}, []api.ValueType{api.ValueTypeI64}).
		WithParameterNames("name_ptr", "name_len", "dst_ptr", "dst_cap").
		Export(importResource).
		NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(hostResourceRefreshFn), []api.ValueType{i32, i32}, []api.ValueType{i32}).
		WithParameterNames("name_ptr", "name_len").
		Export(importResourceRefresh)
}

// callerResource finds the resource a guest names at [ptr, ptr+n).
func callerResource(ctx context.Context, mod api.Module, ptr, n uint32) (*resource, int64) {
	p, _ := ctx.Value(pluginKey{}).(*loaded)
	name, ok := mod.Memory().Read(ptr, n)
	if p == nil || !ok {
		return nil, resourceBadArgs
	}
	r := p.resources[string(name)]
	if r == nil {
		return nil, resourceNotAllowed
	}
	return r, 0
}

// hostResourceFn implements relay.resource(name_ptr, name_len, dst_ptr,
// dst_cap) -> i64: version << 32 | length, copying the content to dst when
// it fits in dst_cap; negative when not allowed, unavailable or bad.
func hostResourceFn(ctx context.Context, mod api.Module, stack []uint64) {
	r, code := callerResource(ctx, mod, uint32(stack[0]), uint32(stack[1]))
	if r == nil {
		stack[0] = uint64(code)
		return
	}
	s := r.snap.Load()
	if s == nil {
		code := int64(resourceUnavailable)
		stack[0] = uint64(code)
		return
	}
	if dstCap := uint32(stack[3]); dstCap > 0 && uint64(len(s.data)) <= uint64(dstCap) {
		if !mod.Memory().Write(uint32(stack[2]), s.data) {
			code := int64(resourceBadArgs)
			stack[0] = uint64(code)
			return
		}
	}
	stack[0] = uint64(s.version)<<32 | uint64(uint32(len(s.data)))
}

// hostResourceRefreshFn implements relay.resource_refresh(name_ptr,
// name_len) -> i32: 0 when the fetch starts now, 1 when it waits for
// MinRefresh since the last one, negative as relay.resource.
func hostResourceRefreshFn(ctx context.Context, mod api.Module, stack []uint64) {
	r, code := callerResource(ctx, mod, uint32(stack[0]), uint32(stack[1]))
	switch {
	case r == nil:
		stack[0] = uint64(uint32(int32(code)))
	case r.requestRefresh():
		stack[0] = resourceRefreshNow
	default:
		stack[0] = resourceRefreshLater
	}
}
