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
	// guest at its next function entry or loop back-edge.
	ctx    context.Context
	cancel context.CancelFunc
	timer  *time.Timer
	fired  atomic.Bool
}

func (p *loaded) newInstance(ctx context.Context) (*instance, error) {
	base := context.WithValue(context.Background(), pluginKey{}, p)
	ictx, icancel := context.WithTimeout(base, p.host.cfg.InitTimeout)
	defer icancel()
	stop := context.AfterFunc(ctx, icancel)
	defer stop()

	mc := wazero.NewModuleConfig().
		WithName("").
		WithStartFunctions("_initialize").
		WithStdout(&lineWriter{sink: p.logs, stream: "stdout", level: slog.LevelInfo}).
		WithStderr(&lineWriter{sink: p.logs, stream: "stderr", level: slog.LevelWarn}).
		WithSysWalltime().
		WithSysNanotime().
		WithSysNanosleep()
	mod, err := p.host.rt.InstantiateModule(ictx, p.compiled, mc)
	if err != nil {
		return nil, fmt.Errorf("instantiate: %w", err)
	}
	in := &instance{p: p, mod: mod, mem: mod.Memory(), buffer: mod.ExportedFunction(exportBuffer)}
	for h := range numHooks {
		if p.hooks&(1<<h) != 0 {
			in.hooks[h] = mod.ExportedFunction(hookTable[h].export)
		}
	}
	in.ctx, in.cancel = context.WithCancel(base)
	in.timer = time.AfterFunc(time.Hour, func() {
		in.fired.Store(true)
		in.cancel()
	})
	in.timer.Stop()
	if in.mem == nil || in.buffer == nil {
		in.close()
		return nil, fmt.Errorf("module does not export memory and %s", exportBuffer)
	}
	version, err := in.callNoArgs(exportABIVersion)
	if err == nil && int32(version) != abiVersion {
		err = fmt.Errorf("built for plugin ABI version %d, this relay supports version %d", int32(version), abiVersion)
	}
	if err != nil {
		in.close()
		return nil, err
	}
	if err := in.grow(initialBuffer, p.host.cfg.InitTimeout); err != nil {
		in.close()
		return nil, err
	}
	if f := mod.ExportedFunction(exportConfigure); f != nil {
		a, err := in.invokeHook(f, p.spec.Config, p.host.cfg.InitTimeout)
		switch {
		case errors.Is(err, ErrPluginError):
			in.close()
			return nil, fmt.Errorf("%w: %s", errConfigRejected, a.msg)
		case err != nil:
			in.close()
			return nil, fmt.Errorf("%s: %w", exportConfigure, err)
		}
	}
	return in, nil
}

func (in *instance) close() {
	in.timer.Stop()
	in.cancel()
	_ = in.mod.Close(context.Background())
}

// invoke calls f with the one-value stack under a deadline. On error the
// instance must be discarded.
func (in *instance) invoke(f api.Function, timeout time.Duration) error {
	in.timer.Reset(timeout)
	err := f.CallWithStack(in.ctx, in.stack[:])
	if !in.timer.Stop() || in.fired.Load() {
		return fmt.Errorf("%w after %v", ErrTimeout, timeout)
	}
	if err != nil {
		return fmt.Errorf("%w: %v", ErrTrap, err)
	}
	return nil
}

// grow asks the guest for an exchange buffer of at least n bytes.
func (in *instance) grow(n int, timeout time.Duration) error {
	in.stack[0] = uint64(uint32(n))
	if err := in.invoke(in.buffer, timeout); err != nil {
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
func (in *instance) invokeHook(f api.Function, input []byte, timeout time.Duration) (answer, error) {
	if uint64(len(input)) > uint64(in.bufCap) {
		if len(input) > 1<<30 {
			return answer{}, fmt.Errorf("%w: input of %d bytes", ErrBadOutput, len(input))
		}
		if err := in.grow(len(input), timeout); err != nil {
			return answer{}, err
		}
	}
	if !in.mem.Write(in.bufPtr, input) {
		return answer{}, fmt.Errorf("%w: exchange buffer outside memory", ErrBadOutput)
	}
	in.stack[0] = uint64(uint32(len(input)))
	if err := in.invoke(f, timeout); err != nil {
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
