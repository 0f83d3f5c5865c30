package suite

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ironlb/ironlb/e2e/lab"
	"github.com/ironlb/ironlb/e2e/measure"
	"github.com/ironlb/ironlb/internal/inspect"
	"github.com/ironlb/ironlb/internal/testutil"
)

// pluginBinary is bin/kubectl-ironlb; without it the test fails in CI and
// skips elsewhere.
func pluginBinary(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	bin := filepath.Join(filepath.Dir(file), "..", "..", "bin", "kubectl-ironlb")
	if _, err := os.Stat(bin); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%v (make build)", err)
		}
		t.Skipf("%v (go build -o bin/kubectl-ironlb ./kubectl-ironlb)", err)
	}
	return bin
}

// TestPlugin runs the kubectl plugin against a lab and checks its answers
// against the network: explain names the reason of a pending Service, the
// node the client resolves a layer 2 address to by ARP, and the nodes the
// FRR router holds paths from; who-has agrees with ARP; status lists every
// session FRR shows as established.
func TestPlugin(t *testing.T) {
	bin := pluginBinary(t)
	l, c := startLab(t, 3)
	ctx := context.Background()
	applyExample(t, l)
	plugin := func(args ...string) (string, error) {
		cmd := exec.Command(bin, append(args, "--kubeconfig", l.CP.Kubeconfig, "-n", "default")...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			return string(out), fmt.Errorf("kubectl-ironlb %s: %w: %s", strings.Join(args, " "), err, out)
		}
		return string(out), nil
	}
	// pluginJSON runs a command with -o json and decodes its answer.
	pluginJSON := func(v any, args ...string) error {
		out, err := plugin(append(args, "-o", "json")...)
		if err != nil {
			return err
		}
		if err := json.Unmarshal([]byte(out), v); err != nil {
			return fmt.Errorf("%w: %s", err, out)
		}
		return nil
	}

	t.Run("pending", func(t *testing.T) {
		// 203.0.113.10 is in no pool: the Service stays pending.
		svc := &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "pending", Annotations: map[string]string{"ironlb.io/loadBalancerIPs": "203.0.113.10"}},
			Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, IPFamilies: []corev1.IPFamily{corev1.IPv4Protocol},
				Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(lab.PodPort)}}},
		}
		if err := c.Create(ctx, svc); err != nil {
			t.Fatal(err)
		}
		var reason string
		testutil.Eventually(t, "the pending Service's condition", func() (bool, string) {
			if err := c.Get(ctx, client.ObjectKeyFromObject(svc), svc); err != nil {
				return false, err.Error()
			}
			cond := meta.FindStatusCondition(svc.Status.Conditions, inspect.ConditionIPAllocated)
			if cond == nil || cond.Status != metav1.ConditionFalse {
				return false, fmt.Sprintf("%+v", svc.Status)
			}
			reason = cond.Reason
			return true, ""
		})
		out, err := plugin("explain", "svc/pending")
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("explain svc/pending:\n%s", out)
		if !strings.Contains(out, "reason "+reason) || !strings.Contains(out, "203.0.113.10") {
			t.Errorf("explain does not name the reason %s and the address asked for:\n%s", reason, out)
		}
		if _, err := plugin("explain", "svc/absent"); err == nil || !strings.Contains(err.Error(), "service default/absent not found") {
			t.Errorf("explain of a missing Service: %v, want an error naming it", err)
		}
	})

	t.Run("layer 2", func(t *testing.T) {
		target := lab.PoolAddr(lab.L2PoolNet, 72)
		lbService(t, c, "plugin-l2", target, nil)
		owner, err := measure.Owner(ctx, l, target)
		if err != nil {
			t.Fatal(err)
		}
		testutil.Eventually(t, "explain to name "+owner+", which the client resolves "+target.String()+" to", func() (bool, string) {
			var e inspect.Explanation
			if err := pluginJSON(&e, "explain", "svc/plugin-l2"); err != nil {
				return false, err.Error()
			}
			var nodes []string
			for _, a := range e.Addresses {
				for _, o := range a.Layer2 {
					nodes = append(nodes, o.Node+"/"+o.Protocol)
				}
			}
			return slices.Equal(nodes, []string{owner + "/ARP"}) && e.Addresses[0].Pool == "lab-l2", fmt.Sprintf("%+v", e)
		})
		out, err := plugin("explain", "plugin-l2")
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("explain plugin-l2:\n%s", out)
		if !strings.Contains(out, "layer 2: node "+owner+" answers ARP") {
			t.Errorf("the text does not name %s:\n%s", owner, out)
		}
		var w inspect.WhoHasReport
		if err := pluginJSON(&w, "who-has", target.String()); err != nil {
			t.Fatal(err)
		}
		if len(w.Layer2) != 1 || w.Layer2[0].Node != owner || !slices.Equal(w.Services, []string{"default/plugin-l2"}) || w.Pool != "lab-l2" {
			t.Errorf("who-has %s: %+v; the client resolves it to %s", target, w, owner)
		}
	})

	t.Run("BGP", func(t *testing.T) {
		nodeOf := map[netip.Addr]string{}
		var all []netip.Addr
		for _, n := range l.Plan.Nodes {
			nodeOf[n.Addr.Addr()], nodeOf[n.Addr6.Addr()] = n.Name, n.Name
			all = append(all, n.Addr.Addr())
		}
		createPods(t, c, "plugin", 3)
		target := lab.PoolAddr(lab.BGPPoolNet, 102)
		lbService(t, c, "plugin-bgp", target, func(s *corev1.Service) { s.Spec.Selector = map[string]string{"app": "plugin"} })
		pfx := netip.PrefixFrom(target, 32)
		expectPaths(t, l, c, pfx, all...)
		hops, err := lab.RouterPaths(l.Plan, pfx)
		if err != nil {
			t.Fatal(err)
		}
		var want []string
		for _, h := range hops {
			want = append(want, nodeOf[h])
		}
		slices.Sort(want)
		testutil.Eventually(t, fmt.Sprintf("explain to name the nodes FRR holds paths from (%v)", want), func() (bool, string) {
			var e inspect.Explanation
			if err := pluginJSON(&e, "explain", "svc/plugin-bgp"); err != nil {
				return false, err.Error()
			}
			var got []string
			for _, a := range e.Addresses {
				for _, b := range a.BGP {
					if b.Reaches() {
						got = append(got, b.Node)
					}
				}
			}
			slices.Sort(got)
			return slices.Equal(got, want), fmt.Sprintf("%+v", e)
		})
		out, err := plugin("explain", "svc/plugin-bgp")
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("explain svc/plugin-bgp:\n%s", out)
	})

	t.Run("status", func(t *testing.T) {
		// FRR's established sessions, by node and family, once every node
		// has both of its sessions up.
		var established map[string]bool
		testutil.Eventually(t, "FRR to establish a session of each family with every node", func() (bool, string) {
			established = map[string]bool{}
			for _, v6 := range []bool{false, true} {
				up, err := lab.RouterPrefixes(l.Plan, v6)
				if err != nil {
					return false, err.Error()
				}
				for addr := range up {
					a := netip.MustParseAddr(addr)
					for _, n := range l.Plan.Nodes {
						if n.Addr.Addr() == a || n.Addr6.Addr() == a {
							established[fmt.Sprintf("%s %s", n.Name, peerAddr(l.Plan, v6))] = true
						}
					}
				}
			}
			return len(established) == 2*len(l.Plan.Nodes), fmt.Sprint(established)
		})
		testutil.Eventually(t, "status to list every session FRR shows established", func() (bool, string) {
			var r inspect.StatusReport
			if err := pluginJSON(&r, "status"); err != nil {
				return false, err.Error()
			}
			listed := map[string]bool{}
			for _, s := range r.Sessions {
				if s.State == inspect.SessionEstablished {
					listed[s.Node+" "+s.Address] = true
				}
			}
			for k := range established {
				if !listed[k] {
					return false, fmt.Sprintf("FRR has %s established; status lists %+v", k, r.Sessions)
				}
			}
			return true, ""
		})
		out, err := plugin("status")
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("status:\n%s", out)
		for _, want := range []string{"lab-l2", "lab-bgp", "lab-router", "lab-router-v6", "203.0.113.72"} {
			if !strings.Contains(out, want) {
				t.Errorf("status lacks %q:\n%s", want, out)
			}
		}
		for k := range established {
			node, _, _ := strings.Cut(k, " ")
			if !strings.Contains(out, node) {
				t.Errorf("status lacks node %s:\n%s", node, out)
			}
		}
	})
}

// peerAddr is the router's address of a family, as the BGPPeers name it.
func peerAddr(p lab.Plan, v6 bool) netip.Addr {
	if v6 {
		return p.Router.Addr6.Addr()
	}
	return p.Router.Addr.Addr()
}
