package lab

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// ReadyAnnotation on a Pod set to "false" makes the node agent report the
// Pod not ready, so tests can take an endpoint out.
const ReadyAnnotation = "lab.ironlb.io/ready"

// PodPort is the port every lab pod's HTTP server listens on.
const PodPort = 8080

// Agent plays the kubelet's part for every node of a lab, with no
// container runtime: it registers the Nodes, binds unscheduled Pods to
// nodes in turn, and gives every Pod on a lab node a network namespace on
// its node's pod bridge, with an address of each family, and a small HTTP
// server (see podHandler) that answers with the Pod's name and the client
// address it saw.
type Agent struct {
	plan Plan
	cs   kubernetes.Interface
	log  *slog.Logger

	// mu guards the fields below.
	mu    sync.Mutex
	pods  map[string]*labPod // by namespace/name
	seq   int                // numbers pod namespaces and interfaces
	rr    int                // next node for an unscheduled Pod
	nodes map[string]Node
}

type labPod struct {
	node  string
	netns string
	ip    netip.Addr // IPv4; the IPv6 address is PodAddr6(ip)
	srv   *http.Server
}

// NewAgent returns an agent; Run starts it.
func NewAgent(p Plan, cs kubernetes.Interface, log *slog.Logger) *Agent {
	a := &Agent{plan: p, cs: cs, log: log, pods: map[string]*labPod{}, nodes: map[string]Node{}}
	for _, n := range p.Nodes {
		a.nodes[n.Name] = n
	}
	return a
}

// Run registers the nodes and serves Pods until ctx ends, then removes
// every pod namespace it made.
func (a *Agent) Run(ctx context.Context) error {
	defer a.removeAll()
	if err := a.heartbeat(ctx); err != nil {
		return err
	}
	factory := informers.NewSharedInformerFactory(a.cs, 0)
	pods := factory.Core().V1().Pods().Informer()
	queue := make(chan string, 4096)
	enqueue := func(obj any) {
		if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
			queue <- key
		}
	}
	if _, err := pods.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: enqueue, UpdateFunc: func(_, o any) { enqueue(o) }, DeleteFunc: enqueue,
	}); err != nil {
		return err
	}
	factory.Start(ctx.Done())
	factory.WaitForCacheSync(ctx.Done())
	tick := time.NewTicker(10 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			if err := a.heartbeat(ctx); err != nil {
				a.log.Error("node heartbeat", "error", err)
			}
		case key := <-queue:
			obj, exists, err := pods.GetStore().GetByKey(key)
			if err != nil {
				continue
			}
			var pod *corev1.Pod
			if exists {
				pod = obj.(*corev1.Pod)
			}
			if err := a.sync(ctx, key, pod); err != nil {
				a.log.Error("pod", "pod", key, "error", err)
				go func() { time.Sleep(time.Second); queue <- key }() // retry
			}
		}
	}
}

// heartbeat creates the Node objects, with an InternalIP of each family,
// and marks them Ready.
func (a *Agent) heartbeat(ctx context.Context) error {
	var errs []error
	for _, n := range a.plan.Nodes {
		errs = append(errs, a.registerNode(ctx, n))
	}
	return errors.Join(errs...)
}

func (a *Agent) registerNode(ctx context.Context, n Node) error {
	nodes := a.cs.CoreV1().Nodes()
	node, err := nodes.Get(ctx, n.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		node, err = nodes.Create(ctx, &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: n.Name, Labels: map[string]string{"kubernetes.io/hostname": n.Name, "lab.ironlb.io/lab": a.plan.Name}},
			Spec:       corev1.NodeSpec{PodCIDR: n.PodCIDR.String(), PodCIDRs: []string{n.PodCIDR.String(), n.PodCIDR6.String()}},
		}, metav1.CreateOptions{})
	}
	if err != nil {
		return fmt.Errorf("node %s: %w", n.Name, err)
	}
	now := metav1.Now()
	node.Status.Addresses = []corev1.NodeAddress{
		{Type: corev1.NodeInternalIP, Address: n.Addr.Addr().String()},
		{Type: corev1.NodeInternalIP, Address: n.Addr6.Addr().String()},
		{Type: corev1.NodeHostName, Address: n.Name},
	}
	node.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "LabNodeAgent", Message: "the lab's node agent is running", LastHeartbeatTime: now, LastTransitionTime: now}}
	_, err = nodes.UpdateStatus(ctx, node, metav1.UpdateOptions{})
	return err
}

// sync brings one Pod's namespace, server and status in line.
func (a *Agent) sync(ctx context.Context, key string, pod *corev1.Pod) error {
	a.mu.Lock()
	lp := a.pods[key]
	a.mu.Unlock()
	switch {
	case pod == nil:
		a.remove(key)
		return nil
	case pod.DeletionTimestamp != nil:
		a.remove(key)
		zero := int64(0) // the "containers" are gone: finish the deletion
		err := a.cs.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
		return client404(err)
	case pod.Spec.NodeName == "":
		return a.bind(ctx, pod)
	}
	if _, ours := a.nodes[pod.Spec.NodeName]; !ours {
		return nil
	}
	if pod.Spec.HostNetwork {
		return a.writeStatus(ctx, pod, nil) // runs in its node's namespace: nothing to make
	}
	if lp == nil {
		var err error
		if lp, err = a.start(key, pod); err != nil {
			return err
		}
	}
	return a.writeStatus(ctx, pod, lp)
}

func client404(err error) error {
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// bind schedules a Pod on the next lab node in turn.
func (a *Agent) bind(ctx context.Context, pod *corev1.Pod) error {
	a.mu.Lock()
	node := a.plan.Nodes[a.rr%len(a.plan.Nodes)].Name
	a.rr++
	a.mu.Unlock()
	err := a.cs.CoreV1().Pods(pod.Namespace).Bind(ctx, &corev1.Binding{
		ObjectMeta: metav1.ObjectMeta{Name: pod.Name, UID: pod.UID},
		Target:     corev1.ObjectReference{Kind: "Node", Name: node},
	}, metav1.CreateOptions{})
	return client404(err)
}

// start makes the Pod's namespace, address and HTTP server.
func (a *Agent) start(key string, pod *corev1.Pod) (*labPod, error) {
	node := a.nodes[pod.Spec.NodeName]
	a.mu.Lock()
	ip, ok := a.freeIPLocked(node)
	a.seq++
	seq := a.seq
	a.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("node %s has no pod address left in %s", node.Name, node.PodCIDR)
	}
	lp := &labPod{node: node.Name, netns: fmt.Sprintf("%s-pod%d", a.plan.Name, seq), ip: ip}
	if err := a.podNetwork(node, lp, fmt.Sprintf("pv%d", seq)); err != nil {
		_ = netns.DeleteNamed(lp.netns)
		return nil, err
	}
	var ln net.Listener
	if err := InNetNS(lp.netns, func() (err error) {
		ln, err = net.Listen("tcp", fmt.Sprintf(":%d", PodPort))
		return err
	}); err != nil {
		_ = netns.DeleteNamed(lp.netns)
		return nil, err
	}
	lp.srv = &http.Server{Handler: podHandler(pod.Name)}
	go func() { _ = lp.srv.Serve(ln) }()
	a.mu.Lock()
	a.pods[key] = lp
	a.mu.Unlock()
	a.log.Info("pod started", "pod", key, "node", node.Name, "ip", ip, "netns", lp.netns)
	return lp, nil
}

// podNetwork gives the pod's namespace a veth onto the node's pod bridge.
func (a *Agent) podNetwork(node Node, lp *labPod, outer string) error {
	if err := newNetNS(lp.netns); err != nil {
		return err
	}
	nodeNS, err := netns.GetFromName(node.NetNS)
	if err != nil {
		return err
	}
	defer nodeNS.Close()
	podNS, err := netns.GetFromName(lp.netns)
	if err != nil {
		return err
	}
	defer podNS.Close()
	v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: outer, Namespace: netlink.NsFd(nodeNS)}, PeerName: InsideIface, PeerNamespace: netlink.NsFd(podNS)}
	if err := netlink.LinkAdd(v); err != nil {
		return fmt.Errorf("pod veth: %w", err)
	}
	h, err := handle(node.NetNS)
	if err != nil {
		return err
	}
	defer h.Close()
	link, err := h.LinkByName(outer)
	if err != nil {
		return err
	}
	br, err := h.LinkByName(podBridge)
	if err != nil {
		return err
	}
	if err := errors.Join(h.LinkSetMaster(link, br), h.LinkSetUp(link)); err != nil {
		return err
	}
	if err := configure(lp.netns, InsideIface, netip.PrefixFrom(lp.ip, node.PodCIDR.Bits()), netip.PrefixFrom(PodAddr6(lp.ip), node.PodCIDR6.Bits())); err != nil {
		return err
	}
	return routes(lp.netns, route{dst: netip.MustParsePrefix("0.0.0.0/0"), via: node.PodGateway().Addr()},
		route{dst: netip.MustParsePrefix("::/0"), via: node.PodGateway6().Addr()})
}

// freeIPLocked returns the lowest unused pod address of a node; the
// first is the gateway, the last the broadcast address.
func (a *Agent) freeIPLocked(n Node) (netip.Addr, bool) {
	var used []netip.Addr
	for _, p := range a.pods {
		used = append(used, p.ip)
	}
	last := lastAddr(n.PodCIDR)
	for ip := n.PodGateway().Addr().Next(); ip.Less(last); ip = ip.Next() {
		if !slices.Contains(used, ip) {
			return ip, true
		}
	}
	return netip.Addr{}, false
}

// lastAddr is the last address of an IPv4 prefix.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := (uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])) | host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// writeStatus reports the Pod running, with its address (its node's, when
// lp is nil: a host-network pod), and ready unless its annotation says
// otherwise.
func (a *Agent) writeStatus(ctx context.Context, pod *corev1.Pod, lp *labPod) error {
	ready := corev1.ConditionTrue
	if pod.Annotations[ReadyAnnotation] == "false" {
		ready = corev1.ConditionFalse
	}
	node := a.nodes[pod.Spec.NodeName]
	ip, ip6 := node.Addr.Addr().String(), node.Addr6.Addr().String()
	if lp != nil {
		ip, ip6 = lp.ip.String(), PodAddr6(lp.ip).String()
	}
	if pod.Status.Phase == corev1.PodRunning && pod.Status.PodIP == ip && len(pod.Status.PodIPs) == 2 && podReady(pod) == ready {
		return nil
	}
	now := metav1.Now()
	var containers []corev1.ContainerStatus
	for _, c := range pod.Spec.Containers {
		containers = append(containers, corev1.ContainerStatus{Name: c.Name, Image: c.Image, Ready: ready == corev1.ConditionTrue,
			Started: ptrTo(true), State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}}})
	}
	st := pod.DeepCopy()
	st.Status = corev1.PodStatus{
		Phase: corev1.PodRunning, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}, {IP: ip6}}, HostIP: node.Addr.Addr().String(), StartTime: &now,
		Conditions: []corev1.PodCondition{
			{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: now},
			{Type: corev1.PodInitialized, Status: corev1.ConditionTrue, LastTransitionTime: now},
			{Type: corev1.ContainersReady, Status: ready, LastTransitionTime: now},
			{Type: corev1.PodReady, Status: ready, LastTransitionTime: now},
		},
		ContainerStatuses: containers,
	}
	_, err := a.cs.CoreV1().Pods(pod.Namespace).UpdateStatus(ctx, st, metav1.UpdateOptions{})
	return client404(err)
}

func podReady(p *corev1.Pod) corev1.ConditionStatus {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status
		}
	}
	return corev1.ConditionUnknown
}

// remove stops a Pod's server and removes its namespace.
func (a *Agent) remove(key string) {
	a.mu.Lock()
	lp := a.pods[key]
	delete(a.pods, key)
	a.mu.Unlock()
	if lp == nil {
		return
	}
	_ = lp.srv.Close()
	if err := netns.DeleteNamed(lp.netns); err != nil {
		a.log.Error("removing pod namespace", "netns", lp.netns, "error", err)
	}
	a.log.Info("pod removed", "pod", key, "netns", lp.netns)
}

func (a *Agent) removeAll() {
	a.mu.Lock()
	keys := make([]string, 0, len(a.pods))
	for k := range a.pods {
		keys = append(keys, k)
	}
	a.mu.Unlock()
	for _, k := range keys {
		a.remove(k)
	}
}

func ptrTo[T any](v T) *T { return &v }
