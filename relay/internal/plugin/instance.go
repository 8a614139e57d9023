package plugin

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

const initialBuffer = 64 << 10

// pluginKey carries the *loaded plugin in the context of every guest call,
// so host functions know whom they serve.
type pluginKey struct{}

// instance is one instantiated module. It is used by one goroutine at a
// time (the pool hands it out) and discarded after any failure.
type instance struct {
	p      *loaded
	mod    api.Module
	mem    api.Memory
	buffer api.Function
	hooks  [numHooks]api.Function

	bufPtr, bufCap uint32
	stack          [1]uint64

	// ctx is canceled by timer when a call overruns; wazero then stops the
	// guest at its next function entry or loop back-edge, and a guest
	// sleeping in the host (sleep) wakes up.
	ctx    context.Context
	cancel context.CancelFunc
	timer  *time.Timer
	fired  atomic.Bool
}

func (p *loaded) newInstance(ctx context.Context) (*instance, error) {
	base := context.WithValue(context.Background(), pluginKey{}, p)
	in := &instance{p: p}
	in.ctx, in.cancel = context.WithCancel(base)
	in.timer = time.AfterFunc(time.Hour, func() {
		in.fired.Store(true)
		in.cancel()
	})
	in.timer.Stop()
	fail := func(err error) (*instance, error) {
		in.close()
		return nil, err
	}
	// Instantiating runs the guest's _initialize under the same deadline
	// machinery as a call, bounded by InitTimeout and by ctx.
	stop := context.AfterFunc(ctx, in.cancel)
	defer stop()
	deadline := time.Now().Add(p.host.cfg.InitTimeout)
	in.timer.Reset(p.host.cfg.InitTimeout)
	mc := wazero.NewModuleConfig().
		WithName("").
		WithStartFunctions("_initialize").
		WithStdout(&lineWriter{sink: p.logs, stream: "stdout", level: slog.LevelInfo}).
		WithStderr(&lineWriter{sink: p.logs, stream: "stderr", level: slog.LevelWarn}).
		WithSysWalltime().
		WithSysNanotime().
		WithNanosleep(in.sleep)
	mod, err := p.host.rt.InstantiateModule(in.ctx, p.compiled, mc)
	if !in.timer.Stop() || in.fired.Load() {
		err = fmt.Errorf("%w after %v", ErrTimeout, p.host.cfg.InitTimeout)
	}
	if err != nil {
		if mod != nil {
			_ = mod.Close(context.Background())
		}
		in.cancel()
		return nil, fmt.Errorf("instantiate: %w", err)
	}
	in.mod, in.mem, in.buffer = mod, mod.Memory(), mod.ExportedFunction(exportBuffer)
	for h := range numHooks {
		if p.hooks&(1<<h) != 0 {
			in.hooks[h] = mod.ExportedFunction(hookTable[h].export)
		}
	}
	if in.mem == nil || in.buffer == nil {
		return fail(fmt.Errorf("module does not export memory and %s", exportBuffer))
	}
	version, err := in.callNoArgs(exportABIVersion)
	if err == nil && int32(version) != abiVersion {
		err = fmt.Errorf("built for plugin ABI version %d, this relay supports version %d", int32(version), abiVersion)
	}
	if err != nil {
		return fail(err)
	}
	if err := in.grow(initialBuffer, deadline); err != nil {
		return fail(err)
	}
	if f := mod.ExportedFunction(exportConfigure); f != nil {
		a, err := in.invokeHook(f, p.spec.Config, deadline)
		switch {
		case errors.Is(err, ErrPluginError):
			return fail(fmt.Errorf("%w: %s", errConfigRejected, a.msg))
		case err != nil:
			return fail(fmt.Errorf("%s: %w", exportConfigure, err))
		}
	}
	return in, nil
}

// sleep is the guest's WASI clock sleep (nanosleep, and poll_oneoff on a
// clock, which is how Go's time.Sleep and most toolchains' sleeps reach the
// host). wazero stops a guest whose context is done only at function
// entries and loop back-edges; a guest blocked in a host sleep would hold
// its call far past the deadline, so the sleep ends when the call's
// context does.
func (in *instance) sleep(ns int64) {
	if ns <= 0 {
		return
	}
	t := time.NewTimer(time.Duration(ns))
	select {
	case <-t.C:
	case <-in.ctx.Done():
		t.Stop()
	}
}

func (in *instance) close() {
	in.timer.Stop()
	in.cancel()
	if in.mod != nil {
		_ = in.mod.Close(context.Background())
	}
}

// invoke calls f with the one-value stack, to be done by deadline. On
// error the instance must be discarded.
func (in *instance) invoke(f api.Function, deadline time.Time) error {
	timeout := time.Until(deadline)
	if timeout <= 0 || in.fired.Load() {
		return fmt.Errorf("%w before the guest ran", ErrTimeout)
	}
	in.timer.Reset(timeout)
	err := f.CallWithStack(in.ctx, in.stack[:])
	if !in.timer.Stop() || in.fired.Load() {
		return fmt.Errorf("%w after %v", ErrTimeout, timeout.Round(time.Millisecond))
	}
	if err != nil {
		return fmt.Errorf("%w: %v", ErrTrap, err)
	}
	return nil
}

// grow asks the guest for an exchange buffer of at least n bytes.
func (in *instance) grow(n int, deadline time.Time) error {
	in.stack[0] = uint64(uint32(n))
	if err := in.invoke(in.buffer, deadline); err != nil {
		return err
	}
	ptr := uint32(in.stack[0])
	if ptr == 0 {
		return fmt.Errorf("%w: %s(%d) returned 0", ErrBadOutput, exportBuffer, n)
	}
	if _, ok := in.mem.Read(ptr, uint32(n)); !ok {
		return fmt.Errorf("%w: %s(%d) returned a buffer outside memory", ErrBadOutput, exportBuffer, n)
	}
	in.bufPtr, in.bufCap = ptr, uint32(n)
	return nil
}

// invokeHook writes input into the exchange buffer, calls f and decodes the
// answer. Any error except a plugin-reported one (verdictError) leaves the
// instance unusable.
func (in *instance) invokeHook(f api.Function, input []byte, deadline time.Time) (answer, error) {
	if uint64(len(input)) > uint64(in.bufCap) {
		if len(input) > 1<<30 {
			return answer{}, fmt.Errorf("%w: input of %d bytes", ErrBadOutput, len(input))
		}
		if err := in.grow(len(input), deadline); err != nil {
			return answer{}, err
		}
	}
	if !in.mem.Write(in.bufPtr, input) {
		return answer{}, fmt.Errorf("%w: exchange buffer outside memory", ErrBadOutput)
	}
	in.stack[0] = uint64(uint32(len(input)))
	if err := in.invoke(f, deadline); err != nil {
		return answer{}, err
	}
	r := in.stack[0]
	a := answer{verdict: uint8(r >> 56)}
	n := uint32(r>>32) & maxOutputLen
	if n > 0 {
		out, ok := in.mem.Read(uint32(r), n)
		if !ok {
			return answer{}, fmt.Errorf("%w: output [%d, +%d) outside memory", ErrBadOutput, uint32(r), n)
		}
		if err := a.decode(out); err != nil {
			return answer{}, err
		}
	}
	switch a.verdict {
	case verdictError:
		return a, fmt.Errorf("%w: %s", ErrPluginError, a.msg)
	case verdictPanic:
		return a, fmt.Errorf("%w: %s", ErrTrap, a.msg)
	}
	if a.verdict > verdictPanic {
		return a, fmt.Errorf("%w: unknown verdict %d", ErrBadOutput, a.verdict)
	}
	return a, nil
}

// answer is a decoded hook result. Byte fields are copies.
type answer struct {
	verdict    uint8
	set        uint16
	code, msg  string
	authority  bool
	mode       int64
	clientMode int64
	lifetimeMs int64
	extra      []byte
	body       []byte
}

const (
	hasCode = 1 << iota
	hasAuthority
	hasMode
	hasClientMode
	hasLifetime
	hasExtra
	hasBody
)

func (a *answer) decode(rec []byte) error {
	for len(rec) > 0 {
		tag, v, rest, err := readField(rec)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrBadOutput, err)
		}
		rec = rest
		intField := func(dst *int64, bit uint16) error {
			if len(v) != 8 {
				return fmt.Errorf("%w: field %d is not an 8-byte integer", ErrBadOutput, tag)
			}
			*dst = int64(binary.LittleEndian.Uint64(v))
			a.set |= bit
			return nil
		}
		switch tag {
		case tagErrorCode:
			a.code = string(v)
			a.set |= hasCode
		case tagMessage:
			a.msg = string(v)
		case tagAuthority:
			if len(v) != 1 {
				return fmt.Errorf("%w: authority is not a 1-byte boolean", ErrBadOutput)
			}
			a.authority = v[0] != 0
			a.set |= hasAuthority
		case tagMode:
			err = intField(&a.mode, hasMode)
		case tagClientMode:
			err = intField(&a.clientMode, hasClientMode)
		case tagLifetime:
			err = intField(&a.lifetimeMs, hasLifetime)
		case tagExtra:
			a.extra = append([]byte(nil), v...)
			a.set |= hasExtra
		case tagBody:
			a.body = append([]byte(nil), v...)
			a.set |= hasBody
		}
		if err != nil {
			return err
		}
	}
	return nil
}
