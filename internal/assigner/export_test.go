package assigner

// Crash makes Run stop without giving its Lease up, as a killed process
// does.
func Crash(o *RunOptions) { o.crash = true }
