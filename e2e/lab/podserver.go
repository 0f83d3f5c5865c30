package lab

// This file is the HTTP server every lab pod runs (podHandler) and the
// answer it gives (Answer, ParseAnswer); e2e/traffic holds its clients.

import (
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
)

// PodHeader names, in every answer of a lab pod, the pod that answered.
const PodHeader = "X-Lab-Pod"

// maxBulk bounds what /bytes sends.
const maxBulk = 16 << 30

// podHandler is a lab pod's HTTP server:
//
//	/bytes?n=N  N zero bytes, for bulk transfers
//	anything    one line, "pod=NAME client=ADDR:PORT": the pod's name and
//	            the address the connection came from, as the pod saw it
func podHandler(name string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/bytes", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(PodHeader, name)
		n, err := strconv.ParseInt(r.URL.Query().Get("n"), 10, 64)
		if err != nil || n < 0 || n > maxBulk {
			http.Error(w, fmt.Sprintf("n=%q: want a byte count from 0 to %d", r.URL.Query().Get("n"), int64(maxBulk)), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		_, _ = io.CopyN(w, zeros{}, n)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(PodHeader, name)
		fmt.Fprintf(w, "pod=%s client=%s\n", name, r.RemoteAddr)
	})
	return mux
}

// zeros reads as endless zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// Answer is what a lab pod answers: its name and the address (and port)
// the connection came from as the pod saw it: the client's own, or a
// node's when the node masqueraded the connection.
type Answer struct {
	Pod    string
	Client netip.AddrPort
}

// ParseAnswer reads a lab pod's answer.
func ParseAnswer(body string) (Answer, error) {
	var a Answer
	f := strings.Fields(body)
	if len(f) != 2 || !strings.HasPrefix(f[0], "pod=") || !strings.HasPrefix(f[1], "client=") {
		return a, fmt.Errorf("not a lab pod's answer: %q", body)
	}
	a.Pod = strings.TrimPrefix(f[0], "pod=")
	c, err := netip.ParseAddrPort(strings.TrimPrefix(f[1], "client="))
	if err != nil {
		return a, fmt.Errorf("lab pod's answer %q: %w", body, err)
	}
	a.Client = netip.AddrPortFrom(c.Addr().Unmap(), c.Port())
	return a, nil
}
