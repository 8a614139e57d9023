package relay

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/relay-project/relay/relay/internal/hub"
	"github.com/relay-project/relay/relay/internal/metrics"
	"github.com/relay-project/relay/relay/internal/plugin"
	"github.com/relay-project/relay/relay/protocol"
)

// The hook points (authorize-join, filter-message, on-token-create) are run
// from session.go through the helpers in this file; hub and token know
// nothing of plugins. With no plugins configured every helper is a cheap
// no-op (plugin.Host methods accept a nil Host).

// loadPlugins compiles and starts the configured plugins. A plugin that
// cannot load fails New with the plugin's name and the reason.
func loadPlugins(cfg Config, log *slog.Logger, m *metrics.Metrics) (*plugin.Host, error) {
	if len(cfg.Plugins) == 0 {
		return nil, nil
	}
	specs, err := plugin.SpecsFromEnv(strings.Join(cfg.Plugins, ","), func(envName string) (string, bool) {
		for name, v := range cfg.PluginConfigs {
			if plugin.ConfigEnvName(name) == envName {
				return v, true
			}
		}
		for name, v := range cfg.PluginResources {
			if plugin.ResourcesEnvName(name) == envName {
				return v, true
			}
		}
		return "", false
	})
	if err != nil {
		return nil, fmt.Errorf("relay: RELAY_PLUGINS: %w", err)
	}
	pc := plugin.Config{
		Plugins:       specs,
		Timeout:       cfg.PluginTimeout,
		MemoryLimitMB: cfg.PluginMemoryMB,
		Instances:     cfg.PluginInstances,
		CacheDir:      cfg.PluginCacheDir,
		MaxTokenBytes: cfg.PluginMaxTokenBytes,
		MaxBodyBytes:  cfg.MaxMessageBytes,
		MaxExtraBytes: cfg.MaxExtraBytes,
		MaxLifetime:   cfg.TokenMaxTTL,
		Policies:      map[plugin.Hook]plugin.Policy{},
		Resources:     pluginResourceConfig(cfg, m),
		Observe: func(name string, hook plugin.Hook, outcome string, d time.Duration) {
			m.PluginCalls.WithLabelValues(name, hook.String(), outcome).Inc()
			m.PluginSeconds.WithLabelValues(name, hook.String()).Observe(d.Seconds())
		},
	}
	for hook, v := range map[plugin.Hook]string{
		plugin.AuthorizeJoin: cfg.PluginFailAuthorizeJoin,
		plugin.FilterMessage: cfg.PluginFailFilterMessage,
		plugin.OnTokenCreate: cfg.PluginFailOnTokenCreate,
	} {
		if pc.Policies[hook], err = plugin.ParsePolicy(v); err != nil {
			return nil, fmt.Errorf("relay: %s failure policy: %w", hook, err)
		}
	}
	h, err := plugin.Load(context.Background(), pc, log)
	if err != nil {
		return nil, fmt.Errorf("relay: RELAY_PLUGINS: %w", err)
	}
	// Each plugin with its hooks: a plugin that does less than its author
	// meant shows here.
	log.Info("plugins loaded", slog.GroupAttrs("plugins", h.PluginHooks()...))
	return h, nil
}

// replyCode sends an error frame with a code and text chosen by a plugin
// (or the plugin host).
func (c *conn) replyCode(binary bool, channel int64, code, text string) {
	c.srv.metrics.Errors.WithLabelValues(requestKinds[c.kind], code).Inc()
	c.Send(hub.Frame{Data: protocol.AppendError(nil, channel, protocol.Code(code), text), Binary: binary})
}

// authorizeJoin runs authorize-join on the built-in decision. It returns
// the member info to join with, or false after answering the refusal.
func (c *conn) authorizeJoin(req *protocol.Request, name, proto string, info protocol.MemberInfo, code protocol.Code, binary bool) (protocol.MemberInfo, bool) {
	in := &plugin.JoinRequest{
		ClientID: c.id, Addr: c.addr.String(), Origin: c.origin, Token: protocol.Token(req),
		Channel: name, Protocol: proto,
		Builtin: plugin.JoinOutcome{Allowed: code == "", Authority: info.Auth, Mode: info.Mode, Extra: info.Extra},
	}
	if code != "" {
		in.Builtin = plugin.JoinOutcome{ErrorCode: string(code), Error: code.Text()}
	}
	out := c.srv.plugins.AuthorizeJoin(context.Background(), in)
	if !out.Allowed {
		c.replyCode(binary, 0, out.ErrorCode, out.Error)
		return info, false
	}
	info = protocol.MemberInfo{Auth: out.Authority, Mode: out.Mode}
	if out.Extra != nil {
		info.Extra = protocol.CompactExtra(out.Extra)
	}
	if info.Auth {
		info.Mode = protocol.ModeSendToAny
	}
	return info, true
}

// filterBodies recycles the message bodies handed to filter-message: a
// connection keeps no buffer between messages (the host copies the body
// into the guest, and a rewrite comes back in a buffer of its own).
var filterBodies = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// filterMessage runs filter-message on an application message. It returns
// the request to deliver (req itself, or its rewrite), or nil after
// dropping or refusing it.
func (c *conn) filterMessage(req *protocol.Request, m *membership, to int64, binary bool) *protocol.Request {
	bp := filterBodies.Get().(*[]byte)
	body := append(protocol.AppendFields(append((*bp)[:0], '{'), req), '}')
	defer func() {
		if cap(body) <= 64<<10 { // do not keep a large message's buffer
			*bp = body[:0]
			filterBodies.Put(bp)
		}
	}()
	info, _ := c.srv.hub.Member(m.ch, c.id)
	out := c.srv.plugins.FilterMessage(context.Background(), &plugin.MessageRequest{
		ChannelID: m.ch.ID, Channel: m.ch.Name, Protocol: m.ch.Protocol,
		SenderID: c.id, Addr: c.addr.String(), Authority: m.auth, Mode: m.mode, Extra: info.Extra,
		To: to, Cmd: req.Cmd, Body: body,
	})
	switch out.Action {
	case plugin.Drop:
		return nil
	case plugin.Reject:
		c.replyCode(binary, m.ch.ID, out.ErrorCode, out.Error)
		return nil
	}
	if !out.Rewritten {
		return req
	}
	rewritten := new(protocol.Request)
	if err := decodeRewrite(out.Body, req.Cmd, rewritten); err != nil {
		c.log().Error("plugin rewrite does not decode", "err", err)
		c.replyCode(binary, m.ch.ID, string(protocol.CodePluginBadOutput), "")
		return nil
	}
	return rewritten
}

// decodeRewrite decodes a plugin's rewritten body (a JSON object, checked
// by the host) as a request, with cmd added last so that it wins over any
// "cmd" in the body. Encoding drops the fields the relay owns.
func decodeRewrite(body []byte, cmd string, req *protocol.Request) error {
	end := strings.LastIndexByte(string(body), '}')
	payload := append([]byte(nil), body[:end]...)
	if strings.TrimSpace(string(payload[1:])) != "" {
		payload = append(payload, ',')
	}
	payload = append(payload, `"cmd":`...)
	payload = protocol.AppendString(payload, cmd)
	return protocol.Decode(append(payload, '}'), req)
}

// onTokenCreate runs on-token-create on a GRANT. It returns the client
// mode, extra and lifetime to mint with, or false after answering the
// refusal.
func (c *conn) onTokenCreate(name, proto string, mode int, extra []byte, makeauth, allowed bool, binary bool) (int, []byte, time.Duration, bool) {
	in := &plugin.TokenRequest{
		ClientID: c.id, Addr: c.addr.String(), Origin: c.origin, Channel: name, Protocol: proto,
		Builtin: plugin.TokenOutcome{Allowed: allowed, ClientMode: mode, Extra: extra, MakeAuth: makeauth, Lifetime: c.srv.cfg.TokenTTL},
	}
	if !allowed {
		in.Builtin.ErrorCode, in.Builtin.Error = string(protocol.CodeAccessDenied), protocol.CodeAccessDenied.Text()
	}
	out := c.srv.plugins.OnTokenCreate(context.Background(), in)
	if !out.Allowed {
		c.replyCode(binary, 0, out.ErrorCode, out.Error)
		return 0, nil, 0, false
	}
	return out.ClientMode, tokenExtra(out), out.Lifetime, true
}

// tokenExtra is the extra to mint a token with after on-token-create: the
// plugins' extra compacted, or an empty object when they cleared it.
func tokenExtra(out plugin.TokenOutcome) []byte {
	if out.Extra == nil {
		return []byte("{}")
	}
	return protocol.CompactExtra(out.Extra)
}

// PrecompilePlugins compiles the plugin files into the compilation cache in
// cacheDir with the settings the relay runs them with, so a relay started
// later with RELAY_PLUGIN_CACHE_DIR=cacheDir loads machine code instead of
// compiling (`relay plugins precompile`, used when building images). It
// needs no plugin configuration.
func PrecompilePlugins(ctx context.Context, cacheDir string, paths ...string) error {
	if cacheDir == "" || cacheDir == plugin.CacheDirOff {
		return fmt.Errorf("relay: precompile: a cache directory is required")
	}
	for _, p := range paths {
		if err := plugin.Precompile(ctx, p, cacheDir); err != nil {
			return fmt.Errorf("relay: %w", err)
		}
	}
	return nil
}
