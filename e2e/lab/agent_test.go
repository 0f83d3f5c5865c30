package lab

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/ironlb/ironlb/internal/testutil"
)

// startLab brings up a lab with its control plane and node agent, and
// tears all of it down when the test ends, checking nothing is left.
func startLab(t *testing.T, nodes int) (Plan, kubernetes.Interface) {
	t.Helper()
	bin := repoBinaries(t)
	p := upLab(t, nodes)
	dir := t.TempDir()
	cp, err := StartControlPlane(context.Background(), p, dir, bin)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cp.Stop)
	cfg, err := clientcmd.BuildConfigFromFlags("", cp.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cs := kubernetes.NewForConfigOrDie(cfg)
	logf, err := os.Create(filepath.Join(dir, "agent.log"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- NewAgent(p, cs, slog.New(slog.NewTextHandler(logf, nil))).Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("agent: %v", err)
		}
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("agent log:\n%s", b)
		}
	})
	testutil.Eventually(t, "the default ServiceAccount", func() (bool, string) {
		_, err := cs.CoreV1().ServiceAccounts("default").Get(context.Background(), "default", metav1.GetOptions{})
		return err == nil, fmt.Sprint(err)
	})
	return p, cs
}

func TestNodeAgent(t *testing.T) {
	p, cs := startLab(t, 3)
	ctx := context.Background()
	no := false
	for i := range 3 {
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("web-%d", i), Labels: map[string]string{"app": "web"}},
			Spec: corev1.PodSpec{AutomountServiceAccountToken: &no, Containers: []corev1.Container{{Name: "web", Image: "none"}}}}
		if _, err := cs.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	running := map[string]*corev1.Pod{}
	testutil.Eventually(t, "three running pods", func() (bool, string) {
		list, err := cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err.Error()
		}
		clear(running)
		for i := range list.Items {
			if po := &list.Items[i]; po.Status.Phase == corev1.PodRunning && po.Status.PodIP != "" && podReady(po) == corev1.ConditionTrue {
				running[po.Spec.NodeName] = po
			}
		}
		return len(running) == 3, fmt.Sprintf("running on %d nodes", len(running))
	})
	// Nodes carry both of their LAN addresses.
	node, err := cs.CoreV1().Nodes().Get(ctx, p.Nodes[1].Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var internal []string
	for _, a := range node.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			internal = append(internal, a.Address)
		}
	}
	if want := []string{p.Nodes[1].Addr.Addr().String(), p.Nodes[1].Addr6.Addr().String()}; !slices.Equal(internal, want) {
		t.Errorf("node2's InternalIPs = %v, want %v", internal, want)
	}
	// Pods on every node, with an address of each family, reachable from
	// another node, seeing its address.
	target := running["node2"]
	ip4 := netip.MustParseAddr(target.Status.PodIP)
	wantIPs := []corev1.PodIP{{IP: ip4.String()}, {IP: PodAddr6(ip4).String()}}
	if !slices.Equal(target.Status.PodIPs, wantIPs) || !p.Nodes[1].PodCIDR.Contains(ip4) || !p.Nodes[1].PodCIDR6.Contains(PodAddr6(ip4)) {
		t.Errorf("pod on node2 has %v, want %v in node2's pod CIDRs", target.Status.PodIPs, wantIPs)
	}
	for i, a := range []netip.Addr{ip4, PodAddr6(ip4)} {
		body, err := HTTPGetFrom(p.Nodes[0].NetNS, "http://"+netip.AddrPortFrom(a, PodPort).String()+"/", 10*time.Second)
		var got Answer
		if err == nil {
			got, err = ParseAnswer(body)
		}
		if want := (Answer{Pod: target.Name, Client: netip.AddrPortFrom(p.Nodes[0].Addrs()[i].Addr(), got.Client.Port())}); err != nil || got != want {
			t.Errorf("GET pod on node2 at %s from node1 = %+v, %v; want %+v", a, got, err, want)
		}
	}
	// It serves a bulk body, also to the client on the LAN.
	start := time.Now()
	if body, err := HTTPGetFrom(p.Client.NetNS, fmt.Sprintf("http://%s/bytes?n=%d", netip.AddrPortFrom(ip4, PodPort), 10<<20), 10*time.Second); err != nil || len(body) != 10<<20 {
		t.Errorf("10 MiB from the pod on node2 = %d bytes, %v", len(body), err)
	} else {
		t.Logf("10 MiB from the client at %.0f MB/s", float64(len(body))/time.Since(start).Seconds()/1e6)
	}

	// The readiness annotation takes the pod out.
	target.Annotations = map[string]string{ReadyAnnotation: "false"}
	if _, err := cs.CoreV1().Pods("default").Update(ctx, target, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "the pod to turn unready", func() (bool, string) {
		po, err := cs.CoreV1().Pods("default").Get(ctx, target.Name, metav1.GetOptions{})
		return err == nil && podReady(po) == corev1.ConditionFalse, fmt.Sprint(err)
	})

	// Deleting a pod removes its namespace.
	before := len(Leftovers(p.Name))
	if err := cs.CoreV1().Pods("default").Delete(ctx, target.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "the pod to be gone with its namespace", func() (bool, string) {
		_, err := cs.CoreV1().Pods("default").Get(ctx, target.Name, metav1.GetOptions{})
		n := len(Leftovers(p.Name))
		return err != nil && n == before-1, fmt.Sprintf("get: %v; %d lab entries, had %d", err, n, before)
	})
}
