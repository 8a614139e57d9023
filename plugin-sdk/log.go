package sdk

// Debug logs msg at debug level in the relay's log, tagged with the
// plugin's name. The host bounds how much a plugin may log.
func Debug(msg string) { logMessage(logDebug, msg) }

// Info logs msg at info level.
func Info(msg string) { logMessage(logInfo, msg) }

// Warn logs msg at warning level.
func Warn(msg string) { logMessage(logWarn, msg) }

// Error logs msg at error level.
func Error(msg string) { logMessage(logError, msg) }

func levelName(level int32) string {
	switch level {
	case logDebug:
		return "DEBUG"
	case logInfo:
		return "INFO"
	case logWarn:
		return "WARN"
	}
	return "ERROR"
}
