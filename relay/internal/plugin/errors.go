package plugin

import (
	"errors"
	"regexp"
)

// Error codes the relay sends to a client when a plugin refuses or fails.
// They are stable API, listed in plugin-sdk/README.md and mirrored in
// relay/protocol's code table (a relay test checks they agree).
const (
	// CodeDenied is sent when a plugin denies without naming its own code.
	CodeDenied = "plugin_denied"
	// CodeFailed is sent when a plugin traps, panics, runs out of memory or
	// returns an error, and the hook's failure policy is closed.
	CodeFailed = "plugin_error"
	// CodeTimeout is sent when a plugin call overran its deadline and the
	// hook's failure policy is closed.
	CodeTimeout = "plugin_timeout"
	// CodeBadOutput is sent when a plugin's answer breaks the ABI (unknown
	// verdict, malformed record, invalid body, extra or errorcode) and the
	// hook's failure policy is closed.
	CodeBadOutput = "plugin_bad_output"
	// CodeTokenTooLarge is sent when a JOIN's token is longer than
	// Config.MaxTokenBytes: the host refuses it before any authorize-join
	// plugin runs, so an attacker cannot buy plugin time with big tokens.
	CodeTokenTooLarge = "token_too_large"
)

// Sentinel errors for a failed plugin call; the log line names the plugin.
var (
	// ErrTimeout means the call overran Config.Timeout; the instance was discarded.
	ErrTimeout = errors.New("plugin: call deadline exceeded")
	// ErrTrap means the guest trapped or exited (panic, out of memory,
	// unreachable); the instance was discarded.
	ErrTrap = errors.New("plugin: guest trapped")
	// ErrPluginError means the plugin reported an error.
	ErrPluginError = errors.New("plugin: plugin reported an error")
	// ErrBadOutput means the guest's answer broke the ABI; the instance was discarded.
	ErrBadOutput = errors.New("plugin: bad output")

	// errConfigRejected means relay_configure refused the configuration;
	// Load adds where the configuration came from.
	errConfigRejected = errors.New("plugin rejected its configuration")
)

// validCode is what a plugin-chosen errorcode may look like.
var validCode = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)

// failureCode maps a call error to the client's errorcode and text.
func failureCode(err error) (code, text string) {
	switch {
	case errors.Is(err, ErrTimeout):
		return CodeTimeout, "plugin timed out"
	case errors.Is(err, ErrBadOutput):
		return CodeBadOutput, "plugin returned invalid output"
	}
	return CodeFailed, "plugin failed"
}
