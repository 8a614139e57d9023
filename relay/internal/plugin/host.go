package plugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
)

// Host runs the configured plugins. Its methods are safe for concurrent
// use; a nil *Host has no plugins and returns every outcome unchanged.
type Host struct {
	cfg    Config
	logger *slog.Logger
	rt     wazero.Runtime
	cache  wazero.CompilationCache
	// plugins in configured order; chains[h] are those implementing h.
	plugins []*loaded
	chains  [numHooks][]*loaded
	writers sync.Pool
	// resources are the URLs plugins may read (resources.go).
	resources *resourceSet
	// keys caches the public keys of relay.verify_signature (crypto.go).
	keys keyCache
	// compiling serializes compiles of identical binaries (compilelock.go).
	compiling compileLocks
}

// loaded is one compiled plugin and its instance pool.
type loaded struct {
	host     *Host
	spec     Spec
	compiled wazero.CompiledModule
	hooks    uint32 // bit h set when the plugin implements Hook h
	pool     *pool
	logs     *logSink
	failLogs *logSink
	// resources by URL: the ones this plugin may read (resources.go).
	resources map[string]*resource
}

// Load compiles every configured plugin (using the on-disk cache), checks
// its ABI version and imports, creates its first instance and hands it its
// configuration. Any failure stops Load with an error naming the plugin.
// Close releases everything.
func Load(ctx context.Context, cfg Config, logger *slog.Logger) (*Host, error) {
	cfg = cfg.withDefaults()
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	h := &Host{cfg: cfg, logger: logger}
	h.writers.New = func() any { return new(recordWriter) }
	if len(cfg.Plugins) == 0 {
		return h, nil
	}

	rc := runtimeConfig().
		WithMemoryLimitPages(uint32(cfg.MemoryLimitMB) * 16).
		WithMemoryCapacityFromMax(true)
	if cfg.CacheDir != CacheDirOff {
		cache, err := wazero.NewCompilationCacheWithDir(cfg.CacheDir)
		if err == nil {
			h.cache = cache
			rc = rc.WithCompilationCache(cache)
		} else {
			// A read-only root file system (the normal case on
			// Kubernetes) must not stop the relay: compiling costs
			// start-up time, not correctness.
			logger.Warn("plugin compilation cache unavailable: plugins are compiled in memory at every start",
				"dir", cfg.CacheDir, "error", err.Error())
		}
	}
	h.rt = wazero.NewRuntimeWithConfig(ctx, rc)
	if err := h.instantiateHostModules(ctx); err != nil {
		_ = h.Close(ctx)
		return nil, err
	}

	names := map[string]bool{}
	for _, s := range cfg.Plugins {
		if s.Name == "" {
			s.Name = PluginName(s.Path)
		}
		if names[s.Name] {
			_ = h.Close(ctx)
			return nil, fmt.Errorf("plugin %q is configured twice", s.Name)
		}
		names[s.Name] = true
		h.plugins = append(h.plugins, &loaded{
			host:     h,
			spec:     s,
			logs:     newLogSink(logger, s.Name, cfg.LogLinesPerSecond),
			failLogs: newLogSink(logger, s.Name, cfg.LogLinesPerSecond),
		})
	}

	if err := h.startResources(ctx); err != nil {
		_ = h.Close(ctx)
		return nil, err
	}

	// Compiling is the slow part of a cold start; plugins compile in parallel.
	errs := make([]error, len(h.plugins))
	var wg sync.WaitGroup
	for i, p := range h.plugins {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = p.load(ctx)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		_ = h.Close(ctx)
		return nil, err
	}
	for _, p := range h.plugins {
		for hk := range numHooks {
			if p.hooks&(1<<hk) != 0 {
				h.chains[hk] = append(h.chains[hk], p)
			}
		}
	}
	return h, nil
}

func (h *Host) instantiateHostModules(ctx context.Context) error {
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, h.rt); err != nil {
		return fmt.Errorf("plugin host: wasi: %w", err)
	}
	_, err := addCryptoImports(addResourceImports(h.rt.NewHostModuleBuilder(hostModule))).
		NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(hostLogFn), []api.ValueType{api.ValueTypeI32, api.ValueTypeI32, api.ValueTypeI32}, nil).
		WithParameterNames("level", "ptr", "len").
		Export(importLog).
		NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(hostNowFn), nil, []api.ValueType{api.ValueTypeI64}).
		Export(importNow).
		Instantiate(ctx)
	if err != nil {
		return fmt.Errorf("plugin host: host module: %w", err)
	}
	return nil
}

// compile compiles bin in h.rt, which reads and writes the compilation
// cache. wazero fails a compilation whose result it cannot write to the
// cache (a read-only directory, a full disk) although the code is fine, so
// a plugin missing from a read-only image cache would stop the start-up.
// wazero has kept that machine code in memory, though, and compiling again
// finds it there without writing: the relay warns and serves. (A wazero
// upgrade that changes this fails TestUnwritablePluginCacheStillServes.)
func (p *loaded) compile(ctx context.Context, bin []byte) error {
	h := p.host
	compiled, err := h.rt.CompileModule(ctx, bin)
	if err == nil || h.cache == nil {
		p.compiled = compiled
		return err
	}
	var err2 error
	if p.compiled, err2 = h.rt.CompileModule(ctx, bin); err2 != nil {
		return err // the module itself is broken
	}
	h.logger.Warn("plugin compilation cache cannot be written: plugin compiled in memory, which it will be again at every start (fill the cache at build time with relay plugins precompile to start faster)",
		"plugin", p.spec.Name, "dir", h.cfg.CacheDir, "error", err.Error())
	return nil
}

// hostLogFn implements relay.log(level, ptr, len).
func hostLogFn(ctx context.Context, mod api.Module, stack []uint64) {
	p, _ := ctx.Value(pluginKey{}).(*loaded)
	if p == nil {
		return
	}
	level, ptr, n := int32(stack[0]), uint32(stack[1]), uint32(stack[2])
	if n > maxLogLine {
		n = maxLogLine
	}
	b, ok := mod.Memory().Read(ptr, n)
	if !ok {
		return
	}
	lv := slog.LevelError
	switch level {
	case logDebug:
		lv = slog.LevelDebug
	case logInfo:
		lv = slog.LevelInfo
	case logWarn:
		lv = slog.LevelWarn
	}
	p.logs.emit(lv, string(b))
}

// hostNowFn implements relay.now() -> unix nanoseconds.
func hostNowFn(_ context.Context, _ api.Module, stack []uint64) {
	stack[0] = uint64(time.Now().UnixNano())
}

// The WASI entry points: a command module (plain `go build`) exports
// _start, a library (reactor, -buildmode=c-shared) _initialize.
const (
	exportStart      = "_start"
	exportInitialize = "_initialize"
)

// load compiles the plugin, checks it and creates its first instance.
func (p *loaded) load(ctx context.Context) error {
	name, path := p.spec.Name, p.spec.Path
	bin, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("plugin %s: %w", name, err)
	}
	if err := p.compile(ctx, bin); err != nil {
		return fmt.Errorf("plugin %s (%s): cannot compile: %w", name, path, err)
	}
	for _, f := range p.compiled.ImportedFunctions() {
		mod, fn, _ := f.Import()
		switch {
		case mod == wasi_snapshot_preview1.ModuleName:
		case mod == hostModule && (fn == importLog || fn == importNow || fn == importResource || fn == importResourceRefresh || fn == importVerifySignature):
		default:
			return fmt.Errorf("plugin %s (%s): imports %s.%s, which this relay does not provide (ABI version %d)", name, path, mod, fn, abiVersion)
		}
	}
	exports := p.compiled.ExportedFunctions()
	if exports[exportStart] != nil && exports[exportInitialize] == nil {
		// A plain `go build` makes a command module: its runtime starts
		// only in _start, so every hook would trap ("call _start first").
		return fmt.Errorf("plugin %s (%s): built as a WASI command (it exports _start, not _initialize): build it as a library with GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared", name, path)
	}
	for _, e := range []string{exportABIVersion, exportBuffer} {
		if _, ok := exports[e]; !ok {
			return fmt.Errorf("plugin %s (%s): not a relay plugin: it does not export %s", name, path, e)
		}
	}
	if _, ok := p.compiled.ExportedMemories()["memory"]; !ok {
		return fmt.Errorf("plugin %s (%s): not a relay plugin: it does not export memory", name, path)
	}
	for hk := range numHooks {
		if _, ok := exports[hookTable[hk].export]; ok {
			p.hooks |= 1 << hk
		}
	}

	// The first instance checks the ABI version and the configuration.
	var mask uint64
	p.pool = newPool(p, p.host.cfg.Instances, p.host.cfg.Timeout)
	p.pool.reserve()
	in, err := p.newInstance(ctx)
	if errors.Is(err, errConfigRejected) {
		err = fmt.Errorf("%w (%s)", err, p.spec.configOrigin())
	}
	if err != nil {
		p.pool.unreserve()
		return fmt.Errorf("plugin %s (%s): %w", name, path, err)
	}
	if exports[exportHooks] != nil {
		mask, err = in.callNoArgs(exportHooks)
		p.hooks &= uint32(mask)
		for hk := range numHooks {
			if p.hooks&(1<<hk) == 0 {
				in.hooks[hk] = nil
			}
		}
	}
	if err == nil && p.hooks == 0 {
		// Handlers registered from main() never run in a library module,
		// so the plugin would load and do nothing.
		err = errors.New("registers no hook: register the handlers (sdk.HandleAuthorizeJoin, HandleFilterMessage, HandleTokenCreate) from an init function, not from main, which a -buildmode=c-shared module never runs")
	}
	if err != nil {
		p.pool.discard(in, "", 0)
		return fmt.Errorf("plugin %s (%s): %w", name, path, err)
	}
	p.pool.put(in, "", 0)
	return nil
}

func (in *instance) callNoArgs(export string) (uint64, error) {
	f := in.mod.ExportedFunction(export)
	in.stack[0] = 0
	if err := in.invoke(f, time.Now().Add(in.p.host.cfg.InitTimeout)); err != nil {
		return 0, fmt.Errorf("%s: %w", export, err)
	}
	return in.stack[0], nil
}

// Close stops every plugin and frees the compiled code. Calls still running
// fail.
func (h *Host) Close(ctx context.Context) error {
	if h == nil || h.rt == nil {
		return nil
	}
	h.resources.stop()
	for _, p := range h.plugins {
		if p.pool != nil {
			p.pool.drain()
		}
	}
	err := h.rt.Close(ctx)
	if h.cache != nil {
		err = errors.Join(err, h.cache.Close(ctx))
	}
	return err
}

// Enabled reports whether any plugin implements hook, so callers can skip
// building its input.
func (h *Host) Enabled(hook Hook) bool {
	return h != nil && hook >= 0 && hook < numHooks && len(h.chains[hook]) > 0
}

// PluginHooks returns the hooks each loaded plugin implements, as hook
// names joined by commas, keyed by plugin name; the relay logs it at
// start.
func (h *Host) PluginHooks() []slog.Attr {
	if h == nil {
		return nil
	}
	attrs := make([]slog.Attr, len(h.plugins))
	for i, p := range h.plugins {
		var names []string
		for hk := range numHooks {
			if p.hooks&(1<<hk) != 0 {
				names = append(names, hk.String())
			}
		}
		attrs[i] = slog.String(p.spec.Name, strings.Join(names, ","))
	}
	return attrs
}

// Plugins returns the loaded plugins' names in order.
func (h *Host) Plugins() []string {
	if h == nil {
		return nil
	}
	names := make([]string, len(h.plugins))
	for i, p := range h.plugins {
		names[i] = p.spec.Name
	}
	return names
}

// observe reports one call, whose answer has been checked, to Config.Observe.
func (h *Host) observe(p *loaded, hook Hook, start time.Time, verdict uint8, err error) {
	if h.cfg.Observe != nil {
		h.cfg.Observe(p.spec.Name, hook, outcome(verdict, err), time.Since(start))
	}
}

// fail logs a failed call and reports whether the hook's policy is closed.
func (h *Host) fail(p *loaded, hook Hook, err error) bool {
	policy := h.cfg.Policies[hook]
	text := err.Error()
	if len(text) > maxLogLine {
		text = text[:maxLogLine] + "…"
	}
	p.failLogs.emit(slog.LevelError, "plugin call failed",
		slog.String("hook", hook.String()),
		slog.String("policy", policy.String()),
		slog.String("error", text))
	return policy == FailClosed
}

func (h *Host) writer() *recordWriter {
	w := h.writers.Get().(*recordWriter)
	w.reset()
	return w
}

// checkOutcome validates the parts of an answer every hook shares.
func checkDeny(a *answer) (code, msg string, err error) {
	code, msg = a.code, a.msg
	if code == "" {
		code = CodeDenied
	}
	if !validCode.MatchString(code) {
		return "", "", fmt.Errorf("%w: errorcode %q (want [a-z][a-z0-9_]{0,63})", ErrBadOutput, code)
	}
	if len(msg) > 1024 {
		msg = msg[:1024]
	}
	if msg == "" {
		msg = "denied by a plugin"
	}
	return code, msg, nil
}

// checkExtra validates an extra set by a plugin: a JSON object of at most
// Config.MaxExtraBytes, or null/false for none (returned as nil).
func (h *Host) checkExtra(b []byte) (json.RawMessage, error) {
	if v := string(b); v == "" || v == "null" || v == "false" {
		return nil, nil
	}
	if len(b) > h.cfg.MaxExtraBytes {
		return nil, fmt.Errorf("%w: extra of %d bytes is over the %d-byte limit", ErrBadOutput, len(b), h.cfg.MaxExtraBytes)
	}
	if _, err := indexObject(b, nil); err != nil || !utf8.Valid(b) || !json.Valid(b) {
		return nil, fmt.Errorf("%w: extra is not a JSON object in UTF-8", ErrBadOutput)
	}
	return json.RawMessage(b), nil
}

func checkMode(m int64, what string) error {
	if m < 0 || m > 2 {
		return fmt.Errorf("%w: %s %d outside 0..2", ErrBadOutput, what, m)
	}
	return nil
}

// Precompile compiles the module at path into the compilation cache in
// cacheDir, with the settings Load uses, so that a later Load finds it
// compiled (for example when building a container image).
func Precompile(ctx context.Context, path, cacheDir string) error {
	bin, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("plugin precompile: %w", err)
	}
	cache, err := wazero.NewCompilationCacheWithDir(cacheDir)
	if err != nil {
		return fmt.Errorf("plugin precompile: cache %s: %w", cacheDir, err)
	}
	defer cache.Close(ctx)
	rt := wazero.NewRuntimeWithConfig(ctx, runtimeConfig().WithCompilationCache(cache))
	defer rt.Close(ctx)
	if _, err := rt.CompileModule(ctx, bin); err != nil {
		return fmt.Errorf("plugin precompile %s: %w", path, err)
	}
	return nil
}

// runtimeConfig is the part of the runtime configuration that decides the
// compiled code (and so the compilation cache key).
func runtimeConfig() wazero.RuntimeConfig {
	return wazero.NewRuntimeConfig().WithCloseOnContextDone(true)
}
