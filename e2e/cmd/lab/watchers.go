package main

import (
	"context"
	"fmt"
	"net"

	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
)

// watchers stand in for the part of any load balancer's per-node agent
// that no design avoids: every node's agent lists and watches all
// Services and EndpointSlices, so the API server sends each change to
// every node. They keep the objects in informer caches and do nothing
// else, each over its own connection with protobuf (as the speaker's
// controller-runtime client does for built-in types). Creating Services
// with them running, against the same with nothing watching, is the
// floor under the speakers' ratio.
type watchers struct {
	cancel context.CancelFunc
}

// startWatchers starts n watchers against the API server of kubeconfig
// and returns once their caches hold everything.
func startWatchers(ctx context.Context, kubeconfig string, n int) (*watchers, error) {
	ctx, cancel := context.WithCancel(ctx)
	w := &watchers{cancel: cancel}
	for i := range n {
		cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
		if err != nil {
			cancel()
			return nil, err
		}
		cfg.QPS, cfg.Burst = 1000, 1000
		cfg.ContentType = "application/vnd.kubernetes.protobuf"
		cfg.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
		// A dialer of its own keeps client-go from sharing one
		// connection among the watchers, as separate nodes would not.
		cfg.Dial = (&net.Dialer{}).DialContext
		cs, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			cancel()
			return nil, err
		}
		f := informers.NewSharedInformerFactory(cs, 0)
		synced := []cache.InformerSynced{
			f.Core().V1().Services().Informer().HasSynced,
			f.Discovery().V1().EndpointSlices().Informer().HasSynced,
		}
		f.Start(ctx.Done())
		if !cache.WaitForCacheSync(ctx.Done(), synced...) {
			cancel()
			return nil, fmt.Errorf("watcher %d: the caches did not sync", i)
		}
	}
	return w, nil
}

// stop ends the watches.
func (w *watchers) stop() { w.cancel() }
