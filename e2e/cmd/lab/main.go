// Command lab runs ironlb's lab: `lab up` brings a whole cluster up in
// network namespaces on this machine, runs the demo and stays up until
// interrupted; `lab down` removes what a killed lab left behind.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/ironlb/ironlb/e2e/lab"
)

func main() {
	fs := flag.NewFlagSet("lab", flag.ExitOnError)
	name := fs.String("name", "ilb", "the lab's name, prefix of its namespaces")
	nodes := fs.Int("nodes", 3, fmt.Sprintf("how many nodes (1 to %d)", lab.MaxNodes))
	dir := fs.String("dir", "_output/lab", "folder for the lab's files and logs")
	bin := fs.String("bin", "../bin", "folder holding etcd, kube-apiserver, kube-controller-manager, controller and speaker")
	trials := fs.Int("trials", 20, "measure: trials of each fault and family")
	out := fs.String("out", "", "measure, measure-bgp: write the report to this file instead of standard output")
	scale := fs.String("scale", "1000,10000", "measure-bgp: Service counts to grow to, in order")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: lab [flags] up|down|measure|measure-bgp\n\nup: bring the lab up, run the demo, stay up until interrupted, tear down.\ndown: remove what a killed lab left behind.\nmeasure: bring a lab up, measure layer 2 failover, write a report, tear down.\nmeasure-bgp: bring a lab up, measure BGP advertisement, withdrawal and scale, write a report, tear down.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	_ = fs.Parse(os.Args[1:])
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "lab: needs root (network namespaces, veth pairs, FRR); run it with sudo or as root")
		os.Exit(1)
	}
	var err error
	switch fs.Arg(0) {
	case "down":
		left := lab.Leftovers(*name)
		if err = lab.Down(*name); err == nil {
			fmt.Printf("lab %s: removed %d leftovers %v\n", *name, len(left), left)
		}
	case "up", "":
		err = up(*name, *nodes, *dir, *bin)
	case "measure":
		d, _ := filepath.Abs(*dir)
		err = measure(*name, d, binaries(*bin), *trials, *out)
	case "measure-bgp":
		d, _ := filepath.Abs(*dir)
		var counts []int
		for _, f := range strings.Split(*scale, ",") {
			n, convErr := strconv.Atoi(strings.TrimSpace(f))
			if convErr != nil || n < 1 || n > 65000 {
				fmt.Fprintf(os.Stderr, "lab: -scale %q: want Service counts from 1 to 65000, comma-separated\n", *scale)
				os.Exit(2)
			}
			counts = append(counts, n)
		}
		err = measureBGP(*name, d, binaries(*bin), *trials, counts, *out)
	default:
		fs.Usage()
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "lab: %v\n", err)
		os.Exit(1)
	}
}

func binaries(bin string) lab.Binaries {
	bin, _ = filepath.Abs(bin)
	return lab.Binaries{Etcd: filepath.Join(bin, "etcd"), APIServer: filepath.Join(bin, "kube-apiserver"), ControllerManager: filepath.Join(bin, "kube-controller-manager"),
		Controller: filepath.Join(bin, "controller"), Speaker: filepath.Join(bin, "speaker")}
}

func up(name string, nodes int, dir, bin string) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	dir, _ = filepath.Abs(dir)
	b := binaries(bin)
	start := time.Now()
	l, err := lab.Start(ctx, lab.Options{Name: name, Nodes: nodes, Dir: dir, Bin: b, Log: slog.Default()})
	if err != nil {
		return err
	}
	defer func() {
		fmt.Println("\ntearing the lab down…")
		if err := l.Close(); err != nil {
			fmt.Fprintf(os.Stderr, "lab: teardown: %v\n", err)
		}
		fmt.Println("done.")
	}()
	fmt.Printf("lab %s up in %s: %d nodes, control plane at %s\n", name, time.Since(start).Round(10*time.Millisecond), nodes, l.CP.URL)
	for node, state := range l.Speakers {
		fmt.Printf("  speaker on %s: %s\n", node, state)
	}
	ip, err := demo(ctx, l)
	if err != nil {
		return err
	}
	p := l.Plan
	fmt.Printf(`
demo Service default/demo has EXTERNAL-IP %[1]s

look around:
  export KUBECONFIG=%[2]s
  kubectl get svc,pods,endpointslices -o wide
  kubectl get ippools
  ip netns exec %[3]s curl http://%[1]s/
  vtysh -N %[4]s -c 'show bgp summary'
  logs: %[5]s/*.log

`, ip, l.CP.Kubeconfig, p.Client.NetNS, p.Router.NetNS, dir)
	fmt.Printf("demo request from %s to http://%s/: ", p.Client.NetNS, ip)
	if body, err := lab.HTTPGetFrom(p.Client.NetNS, "http://"+ip+"/", 3*time.Second); err != nil {
		fmt.Printf("no answer (%v)\n  a speaker answers ARP for it, but nothing forwards it to a pod until the forwarding path (issue 7) lands\n", err)
	} else {
		fmt.Printf("%s", body)
	}
	fmt.Println("\nthe lab stays up until interrupted (Ctrl-C)")
	<-ctx.Done()
	return nil
}

// demo applies the example configuration, a three-pod Deployment and its
// LoadBalancer Service, and returns the Service's address.
func demo(ctx context.Context, l *lab.Lab) (string, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", l.CP.Kubeconfig)
	if err != nil {
		return "", err
	}
	dyn := dynamic.NewForConfigOrDie(cfg)
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(lab.ExampleConfig), 4096)
	for {
		var u unstructured.Unstructured
		if err := dec.Decode(&u.Object); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return "", err
		}
		gvr := schema.GroupVersionResource{Group: "ironlb.io", Version: "v1alpha1", Resource: strings.ToLower(u.GetKind()) + "s"}
		if _, err := dyn.Resource(gvr).Create(ctx, &u, metav1.CreateOptions{}); err != nil {
			return "", fmt.Errorf("applying %s %s: %w", u.GetKind(), u.GetName(), err)
		}
	}
	cs := l.Clientset
	if err := wait(ctx, "the default ServiceAccount", func() bool {
		_, err := cs.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
		return err == nil
	}); err != nil {
		return "", err
	}
	replicas, no := int32(3), false
	labels := map[string]string{"app": "demo"}
	dep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "demo"}, Spec: appsv1.DeploymentSpec{
		Replicas: &replicas, Selector: &metav1.LabelSelector{MatchLabels: labels},
		Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{
			AutomountServiceAccountToken: &no, Containers: []corev1.Container{{Name: "demo", Image: "lab-http-server"}}}}}}
	if _, err := cs.AppsV1().Deployments("default").Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		return "", err
	}
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "demo"}, Spec: corev1.ServiceSpec{
		Type: corev1.ServiceTypeLoadBalancer, Selector: labels,
		Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(lab.PodPort)}}}}
	if _, err := cs.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		return "", err
	}
	var ip string
	err = wait(ctx, "the demo Service's EXTERNAL-IP (see controller.log)", func() bool {
		s, err := cs.CoreV1().Services("default").Get(ctx, "demo", metav1.GetOptions{})
		if err == nil && len(s.Status.LoadBalancer.Ingress) > 0 {
			ip = s.Status.LoadBalancer.Ingress[0].IP
		}
		return ip != ""
	})
	return ip, err
}

// wait polls cond for up to a minute.
func wait(ctx context.Context, what string, cond func() bool) error {
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("no %s within a minute", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return nil
}
