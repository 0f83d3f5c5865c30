package membership

import (
	"bytes"
	"encoding/base64"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/memberlist"
)

func TestParseKey(t *testing.T) {
	raw16 := bytes.Repeat([]byte{0xfe}, 16)
	raw24 := bytes.Repeat([]byte{0x01}, 24)
	raw32 := bytes.Repeat([]byte{0x80}, 32)
	b64 := base64.StdEncoding.EncodeToString
	for _, tc := range []struct {
		name    string
		in      []byte
		want    []byte
		wantErr string
	}{
		{name: "raw 16", in: raw16, want: raw16},
		{name: "raw 24", in: raw24, want: raw24},
		{name: "raw 32", in: raw32, want: raw32},
		{name: "raw 32 ending in a newline byte", in: append(bytes.Repeat([]byte{0x80}, 31), '\n'), want: append(bytes.Repeat([]byte{0x80}, 31), '\n')},
		{name: "base64 of 16", in: []byte(b64(raw16)), want: raw16},
		{name: "base64 of 24", in: []byte(b64(raw24)), want: raw24},
		{name: "base64 of 32", in: []byte(b64(raw32)), want: raw32},
		{name: "base64 with trailing newline", in: []byte(b64(raw32) + "\n"), want: raw32},
		{name: "base64 with surrounding whitespace", in: []byte(" \t" + b64(raw16) + " \r\n"), want: raw16},
		// 24 characters that are base64 of 18 bytes: not a key as base64,
		// so taken as 24 raw bytes.
		{name: "text that is base64 of a bad length but a raw key", in: []byte("abcdefghijklmnopqrstuvwx"), want: []byte("abcdefghijklmnopqrstuvwx")},
		{name: "empty", in: nil, wantErr: "memberlist key: empty"},
		{name: "whitespace only", in: []byte(" \n"), wantErr: "memberlist key: only whitespace"},
		{name: "base64 of 20", in: []byte(b64(make([]byte, 20))), wantErr: "memberlist key: 20 bytes after base64 decoding; must be 16, 24 or 32"},
		{name: "base64 of 64", in: []byte(b64(make([]byte, 64)) + "\n"), wantErr: "memberlist key: 64 bytes after base64 decoding; must be 16, 24 or 32"},
		{name: "raw 15", in: bytes.Repeat([]byte{0xfe}, 15), wantErr: "memberlist key: 15 bytes that are not base64"},
		{name: "bad base64", in: []byte("not base64!\n"), wantErr: "memberlist key: 12 bytes that are not base64 (illegal base64 data at input byte 3)"},
		{name: "url-safe base64", in: []byte(strings.Repeat("-_", 22)), wantErr: "illegal base64 data"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseKey(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseKey(%q) = %x, %v; want error containing %q", tc.in, got, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseKey(%q): %v", tc.in, err)
			}
			if !bytes.Equal(got, tc.want) {
				t.Errorf("ParseKey(%q) = %x, want %x", tc.in, got, tc.want)
			}
		})
	}
}

func TestParseKeyCopies(t *testing.T) {
	in := bytes.Repeat([]byte{7}, 16)
	got, err := ParseKey(in)
	if err != nil {
		t.Fatal(err)
	}
	in[0] = 8
	if got[0] != 7 {
		t.Error("ParseKey returned the caller's slice, not a copy")
	}
}

func TestLogBridge(t *testing.T) {
	rec := &logRecorder{}
	l := newStdLogger(slog.New(rec))
	for _, line := range []string{
		"[DEBUG] memberlist: Stream connection from=127.0.0.1:1",
		"[INFO] memberlist: Suspect node-b has failed, no acks received",
		"[WARN] memberlist: Refuting a suspect message (from: node-c)",
		"[ERR] memberlist: Failed to send UDP ping: boom",
		"[ERROR] memberlist: Failed to encrypt local state: boom",
		"[TRACE] memberlist: detail",
		"no prefix at all",
		"[ODD] unknown prefix",
	} {
		l.Print(line)
	}
	want := []string{
		"DEBUG memberlist: Stream connection from=127.0.0.1:1",
		"INFO memberlist: Suspect node-b has failed, no acks received",
		"WARN memberlist: Refuting a suspect message (from: node-c)",
		"ERROR memberlist: Failed to send UDP ping: boom",
		"ERROR memberlist: Failed to encrypt local state: boom",
		"DEBUG memberlist: detail",
		"INFO no prefix at all",
		"INFO [ODD] unknown prefix",
	}
	if diff := cmp.Diff(want, rec.matching("")); diff != "" {
		t.Errorf("bridged lines (-want +got):\n%s", diff)
	}
}

func TestNewValidates(t *testing.T) {
	ok := Options{Name: "node-a", BindAddr: netip.MustParseAddr("198.51.100.1"), Port: 7946}
	var mn memberlist.MockNetwork
	for _, tc := range []struct {
		name    string
		edit    func(*Options)
		wantErr string
	}{
		{"valid", func(*Options) {}, ""},
		{"valid IPv6", func(o *Options) { o.BindAddr = netip.MustParseAddr("2001:db8::1") }, ""},
		{"valid with key", func(o *Options) { o.Key = make([]byte, 24) }, ""},
		{"custom transport needs no address", func(o *Options) { o.BindAddr = netip.Addr{}; o.Transport = mn.NewTransport("node-a") }, ""},
		{"no name", func(o *Options) { o.Name = "" }, "Options.Name is required"},
		{"no address", func(o *Options) { o.BindAddr = netip.Addr{} }, "Options.BindAddr"},
		{"unspecified address", func(o *Options) { o.BindAddr = netip.IPv4Unspecified() }, "must be a specific address"},
		{"port too big", func(o *Options) { o.Port = 70000 }, "Options.Port 70000"},
		{"empty key", func(o *Options) { o.Key = []byte{} }, "Options.Key has 0 bytes; must be 16, 24 or 32 (nil for no encryption)"},
		{"short key", func(o *Options) { o.Key = make([]byte, 20) }, "Options.Key has 20 bytes"},
		{"timeout not below interval", func(o *Options) { o.ProbeInterval = 100 * time.Millisecond; o.ProbeTimeout = 100 * time.Millisecond }, "Options.ProbeTimeout 100ms: must be shorter than ProbeInterval 100ms"},
		{"timeout above default interval", func(o *Options) { o.ProbeTimeout = 300 * time.Millisecond }, "shorter than ProbeInterval 80ms"},
		{"negative gossip", func(o *Options) { o.GossipInterval = -1 }, "Options.GossipInterval"},
		{"negative rejoin", func(o *Options) { o.RejoinInterval = -1 }, "Options.RejoinInterval"},
		{"negative suspicion", func(o *Options) { o.SuspicionMult = -1 }, "Options.SuspicionMult -1"},
		{"negative join timeout", func(o *Options) { o.JoinTimeout = -time.Second }, "Options.JoinTimeout -1s: must be positive"},
		{"negative join retry", func(o *Options) { o.JoinRetry = -1 }, "Options.JoinRetry"},
		{"longest meta", func(o *Options) { o.Meta = make([]byte, memberlist.MetaMaxSize) }, ""},
		{"meta too long", func(o *Options) { o.Meta = make([]byte, 513) }, "Options.Meta has 513 bytes; must be at most 512"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := ok
			tc.edit(&o)
			c, err := New(o)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				if c.Alive() != nil || c.Members() != nil || c.Joined() || c.Addr().IsValid() {
					t.Errorf("before Run: Alive %v, Members %v, Joined %v, Addr %v; want nil, nil, false and invalid", c.Alive(), c.Members(), c.Joined(), c.Addr())
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("New: %v; want error containing %q", err, tc.wantErr)
			}
		})
	}
}

// Defaults fill zero fields; the memberlist configuration carries them and
// the deliberate timings.
func TestMemberlistConfig(t *testing.T) {
	c, err := New(Options{Name: "node-a", BindAddr: netip.MustParseAddr("198.51.100.1"), Port: 7946, Key: make([]byte, 16)})
	if err != nil {
		t.Fatal(err)
	}
	conf := c.memberlistConfig()
	got := map[string]any{
		"ProbeInterval": conf.ProbeInterval.String(), "ProbeTimeout": conf.ProbeTimeout.String(),
		"GossipInterval": conf.GossipInterval.String(), "SuspicionMult": conf.SuspicionMult,
		"LeaveTimeout": c.opts.LeaveTimeout.String(), "DeadNodeReclaimTime>0": conf.DeadNodeReclaimTime > 0,
		"BindAddr": conf.BindAddr, "AdvertiseAddr": conf.AdvertiseAddr, "BindPort": conf.BindPort,
		"PrimaryKey": len(conf.Keyring.GetPrimaryKey()), "Keys": len(conf.Keyring.GetKeys()), "GossipVerifyIncoming": conf.GossipVerifyIncoming,
		"JoinTimeout": c.opts.JoinTimeout.String(), "JoinRetry": c.opts.JoinRetry.String(),
		"Delegate": conf.Delegate,
	}
	want := map[string]any{
		"ProbeInterval": "80ms", "ProbeTimeout": "40ms", "GossipInterval": "100ms", "SuspicionMult": 2,
		"LeaveTimeout": "1s", "DeadNodeReclaimTime>0": true,
		"BindAddr": "198.51.100.1", "AdvertiseAddr": "198.51.100.1", "BindPort": 7946,
		"PrimaryKey": 16, "Keys": 1, "GossipVerifyIncoming": true,
		"JoinTimeout": "5s", "JoinRetry": "500ms",
		"Delegate": nil, // no metadata: no Delegate, as before metadata existed
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("memberlist config (-want +got):\n%s", diff)
	}
}

// With metadata a Delegate advertises it: a copy, taken by New.
func TestMemberlistConfigMeta(t *testing.T) {
	meta := []byte("release 2")
	c, err := New(Options{Name: "node-a", BindAddr: netip.MustParseAddr("198.51.100.1"), Meta: meta})
	if err != nil {
		t.Fatal(err)
	}
	meta[0] = 'R'
	d := c.memberlistConfig().Delegate
	if d == nil {
		t.Fatal("no Delegate with Options.Meta set")
	}
	if got := d.NodeMeta(memberlist.MetaMaxSize); string(got) != "release 2" {
		t.Errorf("NodeMeta = %q, want %q", got, "release 2")
	}
	c, err = New(Options{Name: "node-a", BindAddr: netip.MustParseAddr("198.51.100.1"), Meta: []byte{}})
	if err != nil {
		t.Fatal(err)
	}
	if d := c.memberlistConfig().Delegate; d != nil {
		t.Errorf("Delegate %v with empty Options.Meta, want none", d)
	}
}

// The Cluster's state step by step as memberlist's events arrive: they are
// recorded from the start, published only once settled, and a change of
// metadata is a change like a join or a leave.
func TestEvents(t *testing.T) {
	c, err := New(Options{Name: "node-a", BindAddr: netip.MustParseAddr("198.51.100.1")})
	if err != nil {
		t.Fatal(err)
	}
	c.setRunning(true)
	ev := events{c}
	node := func(name string, ip byte, meta string) *memberlist.Node {
		n := &memberlist.Node{Name: name, Addr: []byte{198, 51, 100, ip}, Port: 7946}
		if meta != "" {
			n.Meta = []byte(meta)
		}
		return n
	}
	for i, step := range []struct {
		what       string
		do         func()
		want       []Member // Members() after the step
		wantKnown  int      // members recorded, published or not
		wantSignal bool     // notify due
	}{
		{"self joins", func() { ev.NotifyJoin(node("node-a", 1, "")) }, nil, 1, false},
		{"node-b joins before settling", func() { ev.NotifyJoin(node("node-b", 2, "b1")) }, nil, 2, false},
		{"node-c joins before settling", func() { ev.NotifyJoin(node("node-c", 3, "")) }, nil, 3, false},
		{"node-c leaves before settling", func() { ev.NotifyLeave(node("node-c", 3, "")) }, nil, 2, false},
		{"settled", func() { c.settle() }, []Member{{"node-a", nil}, {"node-b", []byte("b1")}}, 2, true},
		{"settled again changes nothing", func() { c.settle() }, []Member{{"node-a", nil}, {"node-b", []byte("b1")}}, 2, false},
		{"node-b changes its metadata", func() { ev.NotifyUpdate(node("node-b", 2, "b2")) }, []Member{{"node-a", nil}, {"node-b", []byte("b2")}}, 2, true},
		{"node-b, same metadata", func() { ev.NotifyUpdate(node("node-b", 2, "b2")) }, []Member{{"node-a", nil}, {"node-b", []byte("b2")}}, 2, false},
		{"node-b, another address", func() { ev.NotifyUpdate(node("node-b", 9, "b2")) }, []Member{{"node-a", nil}, {"node-b", []byte("b2")}}, 2, false},
		{"node-b drops its metadata", func() { ev.NotifyUpdate(node("node-b", 9, "")) }, []Member{{"node-a", nil}, {"node-b", nil}}, 2, true},
		{"node-c joins with metadata", func() { ev.NotifyJoin(node("node-c", 3, "c1")) }, []Member{{"node-a", nil}, {"node-b", nil}, {"node-c", []byte("c1")}}, 3, true},
		{"node-b leaves", func() { ev.NotifyLeave(node("node-b", 9, "")) }, []Member{{"node-a", nil}, {"node-c", []byte("c1")}}, 2, true},
		{"node-b leaves again", func() { ev.NotifyLeave(node("node-b", 9, "")) }, []Member{{"node-a", nil}, {"node-c", []byte("c1")}}, 2, false},
	} {
		step.do()
		got := c.Members()
		if diff := cmp.Diff(step.want, got); diff != "" {
			t.Errorf("step %d (%s): Members (-want +got):\n%s", i, step.what, diff)
		}
		var names []string
		for _, m := range got {
			names = append(names, m.Name)
		}
		if diff := cmp.Diff(names, c.Alive()); diff != "" {
			t.Errorf("step %d (%s): Alive disagrees with Members (-Members +Alive):\n%s", i, step.what, diff)
		}
		if n := len(c.memberAddrs()); n != step.wantKnown {
			t.Errorf("step %d (%s): %d members recorded, want %d", i, step.what, n, step.wantKnown)
		}
		var signalled bool
		select {
		case <-c.changed:
			signalled = true
		default:
		}
		if signalled != step.wantSignal {
			t.Errorf("step %d (%s): notify due %v, want %v", i, step.what, signalled, step.wantSignal)
		}
	}
	c.setRunning(false)
	if c.Members() != nil || c.Alive() != nil || c.Joined() {
		t.Errorf("after Run: Members %v, Alive %v, Joined %v; want nil, nil, false", c.Members(), c.Alive(), c.Joined())
	}
}

func TestParseKeys(t *testing.T) {
	k32 := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))
	k16 := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{8}, 16))
	for _, tt := range []struct {
		in      string
		want    int
		wantErr string
	}{
		{"", 0, ""},
		{" \n", 0, ""},
		{k32, 1, ""},
		{k32 + "\n" + k16 + "\n", 2, ""},
		{k32 + "," + k16, 2, ""},
		{k32 + " not-base64!", 0, "key 2 of the list: not base64"},
		{base64.StdEncoding.EncodeToString([]byte("short")), 0, "key 1 of the list: 5 bytes"},
	} {
		got, err := ParseKeys([]byte(tt.in))
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseKeys(%q) = %d keys, %v; want an error with %q", tt.in, len(got), err, tt.wantErr)
			}
			continue
		}
		if err != nil || len(got) != tt.want {
			t.Errorf("ParseKeys(%q) = %d keys, %v; want %d", tt.in, len(got), err, tt.want)
		}
	}
}
