package migrate

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/ironlb/ironlb/config/v1alpha1"
	"github.com/ironlb/ironlb/internal/config"
	"github.com/ironlb/ironlb/internal/crdschema"
	"github.com/ironlb/ironlb/internal/iprange"
)

const selectorsDoc = "docs/migrating-from-metallb.md#differences-that-apply-to-every-kind"

// converter holds the state of one Convert call.
type converter struct {
	warnings []Warning
	out      []converted
	// aliases maps a Community alias name to its value, as ironlb writes it.
	aliases map[string]alias
	// bfdProfiles maps "namespace/name" of each BFDProfile to whether a
	// BGPPeer refers to it.
	bfdProfiles map[string]*bfdProfile
	// secrets maps each password Secret ("namespace/name") to the
	// converted objects that use it.
	secrets map[[2]string][]string
}

type converted struct {
	obj client.Object
	src source
}

type alias struct {
	value string
	src   source
}

type bfdProfile struct {
	src  source
	spec *bfdProfileSpec
	used bool
}

func newConverter() *converter {
	return &converter{aliases: map[string]alias{}, bfdProfiles: map[string]*bfdProfile{}, secrets: map[[2]string][]string{}}
}

func (c *converter) warn(src source, field, format string, args ...any) {
	c.warnings = append(c.warnings, Warning{Object: src.ref(), Field: field, Message: fmt.Sprintf(format, args...)})
}

func (c *converter) add(obj client.Object, src source) {
	c.out = append(c.out, converted{obj: obj, src: src})
}

func (c *converter) run(objs []*object) error {
	// Community aliases and BFD profiles first: other objects refer to them
	// whatever the order of the input.
	for _, o := range objs {
		switch spec := o.spec.(type) {
		case *communitySpec:
			if err := c.addAliases(o, spec); err != nil {
				return err
			}
		case *bfdProfileSpec:
			c.bfdProfiles[o.meta.Namespace+"/"+o.meta.Name] = &bfdProfile{src: o.src, spec: spec}
		}
	}
	for _, o := range objs {
		for _, f := range o.unknown {
			c.warn(o.src, f, "not a field of MetalLB's %s that this converter knows; dropped", o.src.kind)
		}
		var err error
		switch spec := o.spec.(type) {
		case nil:
			err = c.other(o)
		case *ipAddressPoolSpec:
			err = c.pool(o, spec)
		case *l2AdvertisementSpec:
			c.l2Advertisement(o, spec)
		case *bgpAdvertisementSpec:
			err = c.bgpAdvertisement(o, spec)
		case *bgpPeerSpec:
			err = c.peer(o, spec)
		}
		if err != nil {
			return err
		}
	}
	for _, o := range objs {
		if _, ok := o.spec.(*bfdProfileSpec); ok && !c.bfdProfiles[o.meta.Namespace+"/"+o.meta.Name].used {
			c.warn(o.src, "", "not converted: ironlb has no BFDProfile kind (a BGPPeer's bfd block holds the settings), and no BGPPeer of the input uses this profile")
		}
	}
	return nil
}

// other handles a document of a kind that is not converted.
func (c *converter) other(o *object) error {
	group, _, _ := strings.Cut(o.apiVersion, "/")
	if !strings.Contains(o.apiVersion, "/") {
		group = ""
	}
	src := o.src
	if src.name == "" {
		src.name = "(unnamed)"
	}
	switch {
	case group == "" && o.src.kind == "ConfigMap" && isLegacyConfig(o.fields):
		return o.src.fail("data.config", fmt.Errorf("%w is not read by this converter: convert it to MetalLB's custom resources first "+
			"with MetalLB's configmaptocrs tool (the configmaptocrs folder of MetalLB's repository, shipped as the image quay.io/metallb/configmaptocrs), "+
			"then convert its output", ErrLegacyConfigMap))
	case group == metallbGroup && o.src.kind == "AddressPool":
		c.warn(src, "", "not converted: AddressPool is MetalLB's deprecated pool kind; write it as an IPAddressPool with an L2Advertisement or BGPAdvertisement (or let MetalLB do so), then convert again")
	case group == metallbGroup:
		c.warn(src, "", "not converted: %s is not one of MetalLB's configuration kinds that ironlb has a counterpart for", o.apiVersion)
	case group == v1alpha1.GroupVersion.Group:
		c.warn(src, "", "skipped: already an ironlb object; it is not copied to the output")
	default:
		c.warn(src, "", "skipped: %s %s is not MetalLB configuration", o.apiVersion, o.src.kind)
	}
	return nil
}

// isLegacyConfig tells whether a ConfigMap holds the configuration format
// of MetalLB v0.12 and older in data.config.
func isLegacyConfig(fields map[string]any) bool {
	data, _ := fields["data"].(map[string]any)
	text, _ := data["config"].(string)
	var cfg map[string]any
	if err := yaml.Unmarshal([]byte(text), &cfg); err != nil {
		return false
	}
	for _, k := range []string{"address-pools", "peers", "bgp-communities", "bfd-profiles"} {
		if _, ok := cfg[k]; ok {
			return true
		}
	}
	return false
}

func (c *converter) addAliases(o *object, spec *communitySpec) error {
	for i, a := range spec.Communities {
		field := fmt.Sprintf("spec.communities[%d]", i)
		if a.Name == "" {
			return o.src.failf(field+".name", "required")
		}
		v, ok := metallbCommunity(a.Value)
		if !ok {
			return o.src.failf(field+".value", "%q is not a BGP community: want two numbers from 0 to 65535 (64512:100) or large:N:N:N with numbers from 0 to 4294967295", a.Value)
		}
		if prev, ok := c.aliases[a.Name]; ok && prev.value != v {
			return o.src.failf(field+".name", "community alias %q is defined as %s here and as %s in %s", a.Name, v, prev.value, describe(prev.src))
		}
		c.aliases[a.Name] = alias{value: v, src: o.src}
	}
	return nil
}

// metallbCommunity parses a community as MetalLB writes it and returns it
// as ironlb writes it.
func metallbCommunity(s string) (string, bool) {
	parts := strings.Split(s, ":")
	switch {
	case len(parts) == 2:
		a, err1 := strconv.ParseUint(parts[0], 10, 16)
		b, err2 := strconv.ParseUint(parts[1], 10, 16)
		if err1 == nil && err2 == nil {
			return fmt.Sprintf("%d:%d", a, b), true
		}
	case len(parts) == 4 && parts[0] == "large":
		var n [3]uint64
		for i, p := range parts[1:] {
			v, err := strconv.ParseUint(p, 10, 32)
			if err != nil {
				return "", false
			}
			n[i] = v
		}
		return fmt.Sprintf("large:%d:%d:%d", n[0], n[1], n[2]), true
	}
	return "", false
}

// meta is the metadata of the converted object: the name, labels (pools
// are selected by them) and annotations, except those that describe the
// MetalLB object (kubectl's last applied configuration, Helm's ownership).
func meta(o *object) metav1.ObjectMeta {
	m := metav1.ObjectMeta{Name: o.meta.Name, Labels: o.meta.Labels}
	for k, v := range o.meta.Annotations {
		if k == "kubectl.kubernetes.io/last-applied-configuration" || strings.HasPrefix(k, "meta.helm.sh/") {
			continue
		}
		if m.Annotations == nil {
			m.Annotations = map[string]string{}
		}
		m.Annotations[k] = v
	}
	return m
}

func typeMeta(kind string) metav1.TypeMeta {
	return metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: kind}
}

func (c *converter) pool(o *object, spec *ipAddressPoolSpec) error {
	p := &v1alpha1.IPPool{TypeMeta: typeMeta(v1alpha1.KindIPPool), ObjectMeta: meta(o)}
	if len(spec.Addresses) == 0 {
		return o.src.failf("spec.addresses", "required: a pool needs at least one address entry")
	}
	for i, a := range spec.Addresses {
		field := fmt.Sprintf("spec.addresses[%d]", i)
		s, masked, err := convertAddress(a)
		if err != nil {
			return o.src.fail(field, err)
		}
		if masked {
			c.warn(o.src, field, "%q has host bits set; MetalLB used the network it lies in, which ironlb wants written as %s", a, s)
		}
		p.Spec.Addresses = append(p.Spec.Addresses, v1alpha1.AddressRange(s))
	}
	p.Spec.AutoAssign = spec.AutoAssign
	p.Spec.AvoidBuggyIPs = spec.AvoidBuggyIPs
	if sa := spec.ServiceAllocation; sa != nil {
		at := &v1alpha1.AllocateTo{Namespaces: unique(sa.Namespaces)}
		switch {
		case sa.Priority < 0:
			return o.src.failf("spec.serviceAllocation.priority", "%d: must not be negative", sa.Priority)
		case sa.Priority > math.MaxInt32:
			return o.src.failf("spec.serviceAllocation.priority", "%d: too large", sa.Priority)
		case sa.Priority > 0: // MetalLB treats 0 as no priority
			at.Priority = new(int32(sa.Priority))
		}
		at.NamespaceSelector = c.oneSelector(o.src, "spec.serviceAllocation.namespaceSelectors", sa.NamespaceSelectors, "namespaces")
		at.ServiceSelector = c.oneSelector(o.src, "spec.serviceAllocation.serviceSelectors", sa.ServiceSelectors, "Services")
		if at.Priority != nil || len(at.Namespaces) > 0 || at.NamespaceSelector != nil || at.ServiceSelector != nil {
			p.Spec.AllocateTo = at
		}
	}
	c.add(p, o.src)
	return nil
}

// convertAddress converts one address entry of a pool. MetalLB allows
// spaces around a range's '-' and host bits in a CIDR (it uses the CIDR's
// network); ironlb allows neither.
func convertAddress(a string) (s string, masked bool, err error) {
	a = strings.TrimSpace(a)
	if first, last, ok := strings.Cut(a, "-"); ok {
		r, err := iprange.Parse(strings.TrimSpace(first) + "-" + strings.TrimSpace(last))
		if err != nil {
			return "", false, err
		}
		return r.String(), false, nil
	}
	if strings.Contains(a, "/") {
		p, err := netip.ParsePrefix(a)
		if err != nil {
			return "", false, fmt.Errorf("%w %q: %v", iprange.ErrSyntax, a, err)
		}
		masked = p.Masked() != p
		a = p.Masked().String()
	}
	r, err := iprange.Parse(a)
	if err != nil {
		return "", false, err
	}
	return r.String(), masked, nil
}

// oneSelector converts a list of selectors for a field that an object can
// have only one of. A list that does not merge keeps its first selector,
// which selects less than the list did rather than more.
func (c *converter) oneSelector(src source, field string, list []metav1.LabelSelector, what string) *v1alpha1.Selector {
	if sel, ok := mergeSelectors(list); ok {
		return sel
	}
	c.warn(src, field, "%d selectors that cannot be merged into ironlb's single selector: only the first is converted, so fewer %s are selected than in MetalLB; "+
		"merge them by hand or give the %s a common label (see %s)", len(list), what, what, selectorsDoc)
	return toSelector(list[0])
}

// split returns the selectors of the objects one MetalLB advertisement
// becomes: one object when its selector lists merge, otherwise one per
// combination of pool, node and Service selector, which together select
// what the advertisement did (an address is announced when any of them
// announces it). Names are the advertisement's, with -1, -2… when there
// are several.
func (c *converter) split(o *object, pools, nodes, services []metav1.LabelSelector) (names []string, sels []splitSelectors) {
	pc, pm := selectorChoices(pools)
	nc, nm := selectorChoices(nodes)
	sc, sm := selectorChoices(services)
	for _, p := range pc {
		for _, n := range nc {
			for _, sv := range sc {
				sels = append(sels, splitSelectors{pools: p, nodes: n, services: sv})
			}
		}
	}
	if len(sels) == 1 {
		return []string{o.meta.Name}, sels
	}
	for i := range sels {
		names = append(names, fmt.Sprintf("%s-%d", o.meta.Name, i+1))
	}
	kind := o.src.kind
	for _, f := range []struct {
		field  string
		n      int
		merged bool
	}{{"spec.ipAddressPoolSelectors", len(pools), pm}, {"spec.nodeSelectors", len(nodes), nm}, {"spec.serviceSelectors", len(services), sm}} {
		if !f.merged {
			c.warn(o.src, f.field, "%d selectors that cannot be merged into ironlb's single selector: written as %d %ss (%s), one per selector, which together select the same",
				f.n, len(names), kind, strings.Join(names, ", "))
		}
	}
	return names, sels
}

// splitSelectors are the selectors of one object that split returns.
type splitSelectors struct {
	pools, nodes, services *v1alpha1.Selector
}

func (c *converter) l2Advertisement(o *object, spec *l2AdvertisementSpec) {
	if len(spec.PreferredNodeSelectors) > 0 {
		c.warn(o.src, "spec.preferredNodeSelectors", "dropped: ironlb picks the announcing node by a hash ranking of the eligible nodes; "+
			"to keep announcements on some nodes, narrow spec.nodeSelector")
	}
	var interfaces []v1alpha1.InterfaceName
	for _, i := range unique(spec.Interfaces) {
		interfaces = append(interfaces, v1alpha1.InterfaceName(i))
	}
	names, sels := c.split(o, spec.IPAddressPoolSelectors, spec.NodeSelectors, spec.ServiceSelectors)
	for i, name := range names {
		a := &v1alpha1.L2Advertisement{TypeMeta: typeMeta(v1alpha1.KindL2Advertisement), ObjectMeta: meta(o)}
		a.Name = name
		a.Spec = v1alpha1.L2AdvertisementSpec{
			IPPools:         unique(spec.IPAddressPools),
			IPPoolSelector:  sels[i].pools,
			NodeSelector:    sels[i].nodes,
			ServiceSelector: sels[i].services,
			Interfaces:      interfaces,
		}
		c.add(a, o.src)
	}
}

func (c *converter) bgpAdvertisement(o *object, spec *bgpAdvertisementSpec) error {
	if spec.ASPathPrepend > 0 {
		c.warn(o.src, "spec.asPathPrepend", "dropped: ironlb does not prepend to the AS path; routers can lower the preference of these routes instead (local preference, MED)")
	}
	var communities []v1alpha1.Community
	for i, s := range spec.Communities {
		v, ok := "", false
		if a, found := c.aliases[s]; found {
			v, ok = a.value, true
		} else {
			v, ok = metallbCommunity(s)
		}
		if !ok {
			return o.src.failf(fmt.Sprintf("spec.communities[%d]", i), "%q is neither a BGP community (64512:100, large:64512:1:2) nor an alias defined by a Community object of the input", s)
		}
		if !slices.Contains(communities, v1alpha1.Community(v)) {
			communities = append(communities, v1alpha1.Community(v))
		}
	}
	var localPref *int64
	if spec.LocalPref > 0 { // MetalLB treats 0 as unset
		localPref = new(int64(spec.LocalPref))
	}
	names, sels := c.split(o, spec.IPAddressPoolSelectors, spec.NodeSelectors, spec.ServiceSelectors)
	for i, name := range names {
		a := &v1alpha1.BGPAdvertisement{TypeMeta: typeMeta(v1alpha1.KindBGPAdvertisement), ObjectMeta: meta(o)}
		a.Name = name
		a.Spec = v1alpha1.BGPAdvertisementSpec{
			IPPools:             unique(spec.IPAddressPools),
			IPPoolSelector:      sels[i].pools,
			Peers:               unique(spec.Peers),
			NodeSelector:        sels[i].nodes,
			ServiceSelector:     sels[i].services,
			AggregationLength:   spec.AggregationLength,
			AggregationLengthV6: spec.AggregationLengthV6,
			LocalPref:           localPref,
			Communities:         communities,
		}
		c.add(a, o.src)
	}
	return nil
}

func unique[T comparable](in []T) []T {
	var out []T
	for _, v := range in {
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

// describe names a source the way errors do.
func describe(s source) string {
	return (&InputError{Document: s.doc, Item: s.item, Kind: s.kind, Namespace: s.namespace, Name: s.name}).where()
}

// result checks the converted objects and puts them in order.
func (c *converter) result() (*Result, error) {
	seen := map[string]source{}
	for _, o := range c.out {
		kind := o.obj.GetObjectKind().GroupVersionKind().Kind
		key := kind + "/" + o.obj.GetName()
		if prev, ok := seen[key]; ok {
			return nil, o.src.failf("metadata.name", "becomes %s %q, and so does %s: ironlb's objects are cluster-scoped, so their names must be unique across namespaces; rename one of them",
				kind, o.obj.GetName(), describe(prev))
		}
		seen[key] = o.src
	}
	if len(c.out) > 0 {
		v, err := schemaValidator()
		if err != nil {
			return nil, fmt.Errorf("loading ironlb's CRD schemas: %w", err)
		}
		for _, o := range c.out {
			if err := validate(v, o.obj); err != nil {
				return nil, o.src.fail("", err)
			}
		}
	}
	r := &Result{Warnings: c.warnings}
	var snap config.Snapshot
	for _, o := range c.out {
		r.Objects = append(r.Objects, o.obj)
		switch obj := o.obj.(type) {
		case *v1alpha1.IPPool:
			snap.IPPools = append(snap.IPPools, *obj)
		case *v1alpha1.L2Advertisement:
			snap.L2Advertisements = append(snap.L2Advertisements, *obj)
		case *v1alpha1.BGPAdvertisement:
			snap.BGPAdvertisements = append(snap.BGPAdvertisements, *obj)
		case *v1alpha1.BGPPeer:
			snap.BGPPeers = append(snap.BGPPeers, *obj)
		}
	}
	slices.SortStableFunc(r.Objects, compareObjects)
	_, problems := config.Resolve(snap)
	for _, p := range problems {
		r.Warnings = append(r.Warnings, Warning{Object: p.Kind + "/" + p.Name, Field: p.Field, Message: "ironlb will not use this object until this is fixed: " + p.Err.Error()})
	}
	for key, users := range c.secrets {
		r.Secrets = append(r.Secrets, SecretRef{Namespace: key[0], Name: key[1], UsedBy: strings.Join(users, ", ")})
	}
	slices.SortFunc(r.Secrets, func(a, b SecretRef) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	return r, nil
}

// schemaValidator builds the validator of ironlb's CRD schemas once: it
// is immutable, and building it (compiling the CEL rules) takes far longer
// than a conversion.
var schemaValidator = sync.OnceValues(crdschema.New)

// validate checks a converted object against ironlb's CRD schema, as the
// API server will when it is applied.
func validate(v *crdschema.Validator, obj client.Object) error {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return err
	}
	cleanForOutput(m)
	errs := v.Validate(context.Background(), obj.GetObjectKind().GroupVersionKind(), m)
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("converted to %s %q, which ironlb's schema refuses: %w", obj.GetObjectKind().GroupVersionKind().Kind, obj.GetName(), errors.Join(errs.ToAggregate().Errors()...))
}
