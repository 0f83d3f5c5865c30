package kube

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/ironlb/ironlb/config/v1alpha1"
	"github.com/ironlb/ironlb/internal/cmdutil"
)

// ReadSnapshot returns one of each kind the resolver reads, and says which
// kind it could not list.
func TestReadSnapshot(t *testing.T) {
	scheme, err := cmdutil.Scheme()
	if err != nil {
		t.Fatal(err)
	}
	om := func(name string) metav1.ObjectMeta { return metav1.ObjectMeta{Name: name} }
	objs := []client.Object{
		&v1alpha1.IPPool{ObjectMeta: om("pool")}, &v1alpha1.L2Advertisement{ObjectMeta: om("l2")},
		&v1alpha1.BGPPeer{ObjectMeta: om("peer")}, &v1alpha1.BGPAdvertisement{ObjectMeta: om("bgp")},
		&v1alpha1.NodeAnnouncement{ObjectMeta: om("not-configuration")},
	}
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(objs...).Build()
	snap, err := ReadSnapshot(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	names := func(l int, name func(int) string) []string {
		var out []string
		for i := range l {
			out = append(out, name(i))
		}
		return out
	}
	got := [][]string{
		names(len(snap.IPPools), func(i int) string { return snap.IPPools[i].Name }),
		names(len(snap.L2Advertisements), func(i int) string { return snap.L2Advertisements[i].Name }),
		names(len(snap.BGPPeers), func(i int) string { return snap.BGPPeers[i].Name }),
		names(len(snap.BGPAdvertisements), func(i int) string { return snap.BGPAdvertisements[i].Name }),
	}
	if diff := cmp.Diff([][]string{{"pool"}, {"l2"}, {"peer"}, {"bgp"}}, got); diff != "" {
		t.Errorf("snapshot (-want +got):\n%s", diff)
	}

	refused := errors.New("refused")
	failing := fake.NewClientBuilder().WithScheme(scheme).WithInterceptorFuncs(interceptor.Funcs{
		List: func(ctx context.Context, c client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
			if _, ok := list.(*v1alpha1.BGPPeerList); ok {
				return refused
			}
			return c.List(ctx, list, opts...)
		},
	}).Build()
	_, err = ReadSnapshot(context.Background(), failing)
	if !errors.Is(err, refused) || !strings.Contains(err.Error(), "BGPPeer") {
		t.Errorf("err = %v, want one naming BGPPeers and wrapping %v", err, refused)
	}
}
