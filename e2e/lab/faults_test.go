package lab

import (
	"strings"
	"testing"
)

// macA, macB and macC are probe_test.go's.

func TestParseGauge(t *testing.T) {
	text := `# HELP ironlb_memberlist_members Speakers this speaker sees alive.
# TYPE ironlb_memberlist_members gauge
ironlb_memberlist_members 3
ironlb_memberlist_members_total{x="y"} 9
`
	if n, err := parseGauge(text, membersMetric); err != nil || n != 3 {
		t.Errorf("parseGauge = %d, %v; want 3", n, err)
	}
	if _, err := parseGauge("other 1\n", membersMetric); err == nil {
		t.Error("parseGauge found a gauge that is not there")
	}
}

func TestPortCutRules(t *testing.T) {
	rules := portCutRules(7947)
	for _, want := range []string{
		"table inet " + faultTable,
		"type filter hook input", "type filter hook output",
		"tcp dport 7947 drop", "tcp sport 7947 drop", "udp dport 7947 drop", "udp sport 7947 drop",
	} {
		if !strings.Contains(rules, want) {
			t.Errorf("the port cut lacks %q:\n%s", want, rules)
		}
	}
	// Two chains, each with four drops, and nothing else dropped.
	if n := strings.Count(rules, "drop"); n != 8 {
		t.Errorf("%d drops, want 8:\n%s", n, rules)
	}
}
