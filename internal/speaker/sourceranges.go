package speaker

import "log/slog"

// rangeLog logs the Services whose source ranges cannot be read once
// when the problem appears or changes, and once when it is gone, rather
// than on every re-plan: the speaker re-plans on every endpoint change,
// and the controller's condition and event on the Service are what
// users read. It belongs to the sync goroutine.
type rangeLog struct {
	// logged is, by Service key, the problem last logged.
	logged map[string]string
	// seen collects the current re-plan's problems.
	seen map[string]string
}

// note records a Service's problem with its source ranges in this
// re-plan; err nil means none.
func (r *rangeLog) note(key string, err error) {
	if err == nil {
		return
	}
	if r.seen == nil {
		r.seen = map[string]string{}
	}
	r.seen[key] = err.Error()
}

// flush logs what changed since the last re-plan and starts the next.
// A Service that is gone is forgotten without a word.
func (r *rangeLog) flush(log *slog.Logger, present func(key string) bool) {
	for key, msg := range r.seen {
		if r.logged[key] != msg {
			log.Warn("source ranges cannot be read: the Service's addresses accept no client until they are fixed",
				"service", key, "error", msg)
		}
	}
	for key := range r.logged {
		if _, still := r.seen[key]; !still && present(key) {
			log.Info("source ranges readable again", "service", key)
		}
	}
	r.logged, r.seen = r.seen, nil
}
