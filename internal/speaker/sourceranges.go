package speaker

import "log/slog"

// rangeLog logs the Services whose source ranges cannot be read once
// when the problem appears or changes, and once when it is gone, rather
// than every time the Service is read: the speaker reads a Service again
// on every change of its endpoints, and the controller's condition and
// event on the Service are what users read. It belongs to the sync
// goroutine.
type rangeLog struct {
	// logged is, by Service key, the problem last logged.
	logged map[string]string
}

// note records the problem with a Service's source ranges as it was just
// read (err nil: none), and logs it when that changed.
func (r *rangeLog) note(log *slog.Logger, key string, err error) {
	old, had := r.logged[key]
	switch {
	case err != nil && err.Error() != old:
		log.Warn("source ranges cannot be read: the Service's addresses accept no client until they are fixed",
			"service", key, "error", err)
		if r.logged == nil {
			r.logged = map[string]string{}
		}
		r.logged[key] = err.Error()
	case err == nil && had:
		log.Info("source ranges readable again", "service", key)
		delete(r.logged, key)
	}
}

// forget drops a Service that is gone, without a word.
func (r *rangeLog) forget(key string) { delete(r.logged, key) }
