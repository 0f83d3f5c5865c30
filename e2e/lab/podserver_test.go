package lab

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
)

func TestParseAnswer(t *testing.T) {
	for body, want := range map[string]Answer{
		"pod=web-0 client=198.51.100.100:41234\n":       {Pod: "web-0", Client: netip.MustParseAddrPort("198.51.100.100:41234")},
		"pod=web-1 client=[2001:db8:5100::11]:8000\n":   {Pod: "web-1", Client: netip.MustParseAddrPort("[2001:db8:5100::11]:8000")},
		"pod=web-2 client=[::ffff:198.51.100.3]:1234\n": {Pod: "web-2", Client: netip.MustParseAddrPort("198.51.100.3:1234")},
	} {
		got, err := ParseAnswer(body)
		if err != nil || got != want {
			t.Errorf("ParseAnswer(%q) = %+v, %v; want %+v", body, got, err, want)
		}
	}
	for _, body := range []string{"", "hello", "pod=x", "pod=x client=nowhere", "404 page not found"} {
		if a, err := ParseAnswer(body); err == nil {
			t.Errorf("ParseAnswer(%q) = %+v, want an error", body, a)
		}
	}
}

func TestPodHandler(t *testing.T) {
	srv := httptest.NewServer(podHandler("web-0"))
	defer srv.Close()
	target := netip.MustParseAddrPort(strings.TrimPrefix(srv.URL, "http://"))
	var a Answer
	resp, err := http.Get(srv.URL + "/")
	if err == nil {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		a, err = ParseAnswer(string(body))
	}
	if err != nil || a.Pod != "web-0" || a.Client.Addr() != target.Addr() {
		t.Errorf("GET / = %+v, %v; want web-0 seeing %s", a, err, target.Addr())
	}
	resp, err = http.Get(srv.URL + "/bytes?n=100000")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	n := 0
	buf := make([]byte, 4096)
	for {
		m, err := resp.Body.Read(buf)
		for _, b := range buf[:m] {
			if b != 0 {
				t.Fatal("/bytes sent a byte that is not zero")
			}
		}
		n += m
		if err != nil {
			break
		}
	}
	if n != 100000 || resp.ContentLength != 100000 || resp.Header.Get(PodHeader) != "web-0" {
		t.Errorf("/bytes?n=100000: %d bytes, Content-Length %d, pod %q", n, resp.ContentLength, resp.Header.Get(PodHeader))
	}
	for _, q := range []string{"", "?n=-1", "?n=x", fmt.Sprintf("?n=%d", int64(maxBulk)+1)} {
		resp, err := http.Get(srv.URL + "/bytes" + q)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("/bytes%s: %s, want 400", q, resp.Status)
		}
	}
}
