package migrate

import (
	"cmp"
	"net/netip"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ironlb/ironlb/config/v1alpha1"
)

// peer converts a BGPPeer. A peer that ironlb cannot express (dynamic
// external AS, unnumbered) is left out with a warning.
func (c *converter) peer(o *object, spec *bgpPeerSpec) error {
	src := o.src
	p := &v1alpha1.BGPPeer{TypeMeta: typeMeta(v1alpha1.KindBGPPeer), ObjectMeta: meta(o)}
	if ok, err := c.peerASNs(src, spec, &p.Spec); !ok || err != nil {
		return err
	}
	if ok, err := c.peerAddress(src, spec); !ok || err != nil {
		return err
	}
	p.Spec.PeerAddress = spec.PeerAddress
	p.Spec.SourceAddress = spec.SourceAddress
	p.Spec.PeerPort = int32(spec.PeerPort)
	p.Spec.RouterID = spec.RouterID
	p.Spec.EBGPMultiHop = spec.EBGPMultiHop
	p.Spec.GracefulRestart = spec.EnableGracefulRestart
	p.Spec.NodeSelector = c.oneSelector(src, "spec.nodeSelectors", spec.NodeSelectors, "nodes")
	if err := c.timers(src, spec, &p.Spec); err != nil {
		return err
	}
	c.peerPassword(o, spec, p)
	c.peerBFD(o, spec, p)
	c.peerDropped(o, spec)
	c.add(p, src)
	return nil
}

// peerASNs sets myASN and peerASN. ok is false for a peer that is not
// converted (dynamic external AS).
func (c *converter) peerASNs(src source, spec *bgpPeerSpec, out *v1alpha1.BGPPeerSpec) (ok bool, err error) {
	if spec.MyASN == 0 {
		return false, src.failf("spec.myASN", "required: a number from 1 to 4294967295")
	}
	out.MyASN = int64(spec.MyASN)
	if spec.LocalASN != 0 {
		c.warn(src, "spec.localASN", "ironlb has no per-session local AS: myASN is set to localASN (%d) instead of %d, so the router sees the same AS number", spec.LocalASN, spec.MyASN)
		out.MyASN = int64(spec.LocalASN)
	}
	switch spec.DynamicASN {
	case "":
	case "internal", "external":
	default:
		return false, src.failf("spec.dynamicASN", "%q: must be internal or external", spec.DynamicASN)
	}
	out.PeerASN = int64(spec.PeerASN)
	switch {
	case spec.PeerASN != 0 && spec.DynamicASN != "":
		c.warn(src, "spec.dynamicASN", "dropped: ironlb takes peerASN or dynamicASN, not both; peerASN %d is used", spec.PeerASN)
	case spec.DynamicASN != "":
		out.DynamicASN = spec.DynamicASN
	case spec.PeerASN == 0:
		return false, src.failf("spec.peerASN", "required: a number from 1 to 4294967295 (or spec.dynamicASN)")
	}
	return true, nil
}

// peerAddress checks the router's address. ok is false for an unnumbered
// peer, which is not converted.
func (c *converter) peerAddress(src source, spec *bgpPeerSpec) (ok bool, err error) {
	switch {
	case spec.PeerAddress == "" && spec.Interface != "":
		c.warn(src, "", "not converted: unnumbered BGP (spec.interface %q) has no ironlb equivalent; ironlb needs the router's address in peerAddress", spec.Interface)
		return false, nil
	case spec.PeerAddress == "":
		return false, src.failf("spec.peerAddress", "required")
	case spec.Interface != "":
		c.warn(src, "spec.interface", "dropped: ironlb peers with peerAddress %s over the node's routing table", spec.PeerAddress)
	}
	return true, nil
}

// peerPassword points the peer at its password Secret, under the same
// name in SecretNamespace, and records the Secret to copy.
func (c *converter) peerPassword(o *object, spec *bgpPeerSpec, p *v1alpha1.BGPPeer) {
	src := o.src
	if spec.Password != "" {
		c.warn(src, "spec.password", "dropped: ironlb reads BGP passwords only from Secrets; create a Secret in %s holding the password under the key \"password\" and set spec.passwordSecretRef to it", SecretNamespace)
	}
	s := spec.PasswordSecret
	if s.Name == "" {
		return
	}
	ns := cmp.Or(s.Namespace, o.meta.Namespace)
	if ns == "" {
		ns = "metallb-system"
		c.warn(src, "spec.passwordSecret", "the Secret's namespace is not in the input; taken to be metallb-system")
	}
	p.Spec.PasswordSecretRef = &v1alpha1.SecretKeyRef{Name: s.Name, Namespace: SecretNamespace, Key: "password"}
	key := [2]string{ns, s.Name}
	c.secrets[key] = append(c.secrets[key], v1alpha1.KindBGPPeer+"/"+p.Name)
}

// peerDropped warns of the peer's fields that ironlb has no counterpart
// for.
func (c *converter) peerDropped(o *object, spec *bgpPeerSpec) {
	src := o.src
	if spec.VRF != "" {
		c.warn(src, "spec.vrf", "dropped: ironlb opens sessions in the node's default routing table, not in VRF %q", spec.VRF)
	}
	if spec.DisableMP {
		c.warn(src, "spec.disableMP", "dropped: ironlb always does what it asks for, sending IPv4 routes only over IPv4 sessions and IPv6 routes only over IPv6 sessions")
	}
	if spec.DualStackAddressFamily {
		c.warn(src, "spec.dualStackAddressFamily", "dropped: ironlb sends only routes of the session's own family (here %s); for the other family, add a BGPPeer with the router's address of that family", family(spec.PeerAddress))
	}
}

func family(addr string) string {
	if a, err := netip.ParseAddr(addr); err == nil && a.Is6() && !a.Is4In6() {
		return "IPv6"
	}
	return "IPv4"
}

// timers converts holdTime and keepaliveTime. MetalLB derives the one left
// out from the other (hold = 3 × keepalive, keepalive = hold / 3) and
// rounds the hold time down to whole seconds; ironlb takes whole seconds
// and, when only keepaliveTime is given, the default hold time of 90s, so
// the hold time is written out then.
func (c *converter) timers(src source, spec *bgpPeerSpec, out *v1alpha1.BGPPeerSpec) error {
	hold, holdSet, err := c.seconds(src, "spec.holdTime", spec.HoldTime)
	if err != nil {
		return err
	}
	ka, kaSet, err := c.seconds(src, "spec.keepaliveTime", spec.KeepaliveTime)
	if err != nil {
		return err
	}
	connect, connectSet, err := c.seconds(src, "spec.connectTime", spec.ConnectTime)
	if err != nil {
		return err
	}
	if connectSet {
		if connect < 1 || connect > 65535 {
			return src.failf("spec.connectTime", "%s: must be from 1s to 65535s", *spec.ConnectTime)
		}
		out.ConnectTime = &metav1.Duration{Duration: time.Duration(connect) * time.Second}
	}
	if !kaSet && !holdSet {
		return nil
	}
	if !holdSet {
		hold = 3 * ka
	}
	const maxHold = 65535
	if hold != 0 && (hold < 3 || hold > maxHold) {
		if holdSet {
			return src.failf("spec.holdTime", "%s: must be 0s, or from 3s to %ds", *spec.HoldTime, maxHold)
		}
		return src.failf("spec.keepaliveTime", "%s makes a hold time of %ds (three times as long), above the largest BGP allows (%ds)", *spec.KeepaliveTime, hold, maxHold)
	}
	out.HoldTime = &metav1.Duration{Duration: time.Duration(hold) * time.Second}
	switch {
	case !kaSet:
		// ironlb's default is a third of the hold time, as in MetalLB.
	case ka > hold:
		return src.failf("spec.keepaliveTime", "%s: must not be longer than holdTime (%s)", *spec.KeepaliveTime, out.HoldTime.Duration)
	case ka == 0 && hold != 0:
		c.warn(src, "spec.keepaliveTime", "dropped: ironlb takes 0s only together with a hold time of 0s; keepalives are sent every third of holdTime (%ds)", hold/3)
	default:
		out.KeepaliveTime = &metav1.Duration{Duration: time.Duration(ka) * time.Second}
	}
	return nil
}

// seconds parses a duration and returns it in whole seconds, rounded down
// with a warning when it has a fraction.
func (c *converter) seconds(src source, field string, s *string) (secs int64, set bool, err error) {
	if s == nil {
		return 0, false, nil
	}
	d, err := time.ParseDuration(*s)
	switch {
	case err != nil:
		return 0, false, src.failf(field, "%q is not a duration such as 90s or 1m30s", *s)
	case d < 0:
		return 0, false, src.failf(field, "%s: must not be negative", *s)
	}
	secs = int64(d / time.Second)
	if d%time.Second != 0 {
		c.warn(src, field, "%s rounded down to %ds: ironlb takes whole seconds", *s, secs)
	}
	return secs, true, nil
}

// peerBFD turns the BFDProfile the peer names into the peer's bfd block.
// MetalLB's intervals are milliseconds, as ironlb's bounds (10ms–60s)
// and defaults (300ms, multiplier 3) are.
func (c *converter) peerBFD(o *object, spec *bgpPeerSpec, p *v1alpha1.BGPPeer) {
	if spec.BFDProfile == "" {
		return
	}
	src, name := o.src, spec.BFDProfile
	p.Spec.BFD = &v1alpha1.BFDSettings{}
	prof, ok := c.bfdProfiles[o.meta.Namespace+"/"+name]
	if !ok {
		c.warn(src, "spec.bfdProfile", "BFDProfile %q is not in the input: spec.bfd is set with ironlb's defaults (300ms, multiplier 3); copy the profile's values into it", name)
		return
	}
	prof.used = true
	ms := func(v *uint32) *metav1.Duration {
		if v == nil {
			return nil
		}
		return &metav1.Duration{Duration: time.Duration(*v) * time.Millisecond}
	}
	ps, b := prof.spec, p.Spec.BFD
	b.ReceiveInterval, b.TransmitInterval = ms(ps.ReceiveInterval), ms(ps.TransmitInterval)
	if m := ps.DetectMultiplier; m != nil {
		mult := int32(min(*m, 1000))
		b.DetectMultiplier = &mult
	}
	if ps.EchoMode != nil && *ps.EchoMode {
		c.warn(src, "spec.bfd", "BFDProfile %q asks for echo mode, which ironlb does not support: the session runs without it", name)
	}
	if ps.PassiveMode != nil && *ps.PassiveMode {
		c.warn(src, "spec.bfd", "BFDProfile %q is passive: ironlb's speakers always start the BFD session themselves", name)
	}
	if ps.MinimumTTL != nil && spec.EBGPMultiHop {
		c.warn(src, "spec.bfd", "BFDProfile %q sets minimumTtl %d: ironlb's multihop BFD accepts any TTL", name, *ps.MinimumTTL)
	}
}
