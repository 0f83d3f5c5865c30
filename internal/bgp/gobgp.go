package bgp

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/apiutil"
	gobgplog "github.com/osrg/gobgp/v3/pkg/log"
	"github.com/osrg/gobgp/v3/pkg/packet/bgp"
	"google.golang.org/protobuf/types/known/anypb"
)

// vrfASN is the administrator field of the route distinguishers and route
// targets that keep each peer's routes apart inside GoBGP. They never
// leave the speaker: routes are sent to a VRF's peer as plain unicast,
// without them.
const vrfASN = 65535

// restartTime is the graceful-restart time announced to routers: how long
// they keep this speaker's routes while it restarts.
const restartTime = 120

// importPolicyName names the import policy that keeps the speaker's own
// routes and nothing the routers send.
const importPolicyName = "ironlb-local-only"

func importPolicy() *api.Policy {
	return &api.Policy{Name: importPolicyName, Statements: []*api.Statement{{
		Name:       importPolicyName + "-local",
		Conditions: &api.Conditions{RouteType: api.Conditions_ROUTE_TYPE_LOCAL},
		Actions:    &api.Actions{RouteAction: api.RouteAction_ACCEPT},
	}}}
}

func vrfFor(name string, id uint32) (*api.Vrf, error) {
	rd, err := apiutil.MarshalRD(bgp.NewRouteDistinguisherTwoOctetAS(vrfASN, id))
	if err != nil {
		return nil, err
	}
	rt, err := apiutil.MarshalRT(bgp.NewTwoOctetAsSpecificExtended(bgp.EC_SUBTYPE_ROUTE_TARGET, vrfASN, id, true))
	if err != nil {
		return nil, err
	}
	return &api.Vrf{Name: name, Id: id, Rd: rd, ImportRt: []*anypb.Any{rt}, ExportRt: []*anypb.Any{rt}}, nil
}

func family(addr netip.Addr) *api.Family {
	if addr.Is4() {
		return &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}
	}
	return &api.Family{Afi: api.Family_AFI_IP6, Safi: api.Family_SAFI_UNICAST}
}

func seconds(d time.Duration) uint64 { return uint64(d / time.Second) }

// apiPeer is GoBGP's configuration of a session, enslaved to vrf.
func apiPeer(p *Peer, vrf string, connectRetry time.Duration) *api.Peer {
	afi := &api.AfiSafi{Config: &api.AfiSafiConfig{Family: family(p.Address), Enabled: true}}
	if p.MaxReceived > 0 {
		afi.PrefixLimits = &api.PrefixLimit{Family: family(p.Address), MaxPrefixes: p.MaxReceived}
	}
	out := &api.Peer{
		Conf: &api.PeerConf{
			NeighborAddress: p.Address.String(),
			PeerAsn:         p.ASN,
			LocalAsn:        p.LocalASN,
			AuthPassword:    p.Password,
			Description:     p.Name,
			Vrf:             vrf,
		},
		Timers: &api.Timers{Config: &api.TimersConfig{
			HoldTime:               seconds(p.HoldTime),
			KeepaliveInterval:      seconds(p.KeepaliveTime),
			ConnectRetry:           seconds(connectRetry),
			IdleHoldTimeAfterReset: seconds(connectRetry),
		}},
		Transport: &api.Transport{RemotePort: uint32(p.Port)},
		AfiSafis:  []*api.AfiSafi{afi},
	}
	if out.Timers.Config.KeepaliveInterval == 0 {
		out.Timers.Config.KeepaliveInterval = out.Timers.Config.HoldTime / 3
	}
	if p.SourceAddress.IsValid() {
		out.Transport.LocalAddress = p.SourceAddress.String()
	}
	if p.MultiHop {
		out.EbgpMultihop = &api.EbgpMultihop{Enabled: true, MultihopTtl: 255}
	}
	if p.GracefulRestart {
		out.GracefulRestart = &api.GracefulRestart{Enabled: true, RestartTime: restartTime}
		afi.MpGracefulRestart = &api.MpGracefulRestart{Config: &api.MpGracefulRestartConfig{Enabled: true}}
	}
	return out
}

// apiPath is the route as GoBGP takes it. The next hop is unspecified,
// which GoBGP replaces with the speaker's address on each session.
func apiPath(pfx netip.Prefix, r Route, withdraw bool) (*api.Path, error) {
	attrs := []bgp.PathAttributeInterface{bgp.NewPathAttributeOrigin(bgp.BGP_ORIGIN_ATTR_TYPE_IGP)}
	var nlri bgp.AddrPrefixInterface
	if pfx.Addr().Is4() {
		nlri = bgp.NewIPAddrPrefix(uint8(pfx.Bits()), pfx.Addr().String())
		attrs = append(attrs, bgp.NewPathAttributeNextHop("0.0.0.0"))
	} else {
		nlri = bgp.NewIPv6AddrPrefix(uint8(pfx.Bits()), pfx.Addr().String())
		attrs = append(attrs, bgp.NewPathAttributeMpReachNLRI("::", []bgp.AddrPrefixInterface{nlri}))
	}
	if r.HasLocalPref {
		attrs = append(attrs, bgp.NewPathAttributeLocalPref(r.LocalPref))
	}
	if len(r.Communities) > 0 {
		attrs = append(attrs, bgp.NewPathAttributeCommunities(r.Communities))
	}
	if len(r.Large) > 0 {
		large := make([]*bgp.LargeCommunity, len(r.Large))
		for i, c := range r.Large {
			large[i] = bgp.NewLargeCommunity(c.Global, c.Local1, c.Local2)
		}
		attrs = append(attrs, bgp.NewPathAttributeLargeCommunities(large))
	}
	path, err := apiutil.NewPath(nlri, withdraw, attrs, time.Now())
	if err != nil {
		return nil, fmt.Errorf("encoding the route for %s: %w", pfx, err)
	}
	return path, nil
}

// logger hands GoBGP's log lines to slog. GoBGP logs a great deal at
// debug level (every connection attempt), so that stays off unless the
// speaker's own logger is at debug.
type logger struct{ log *slog.Logger }

func newLogger(l *slog.Logger) gobgplog.Logger { return logger{l.With("component", "gobgp")} }

func (l logger) emit(level slog.Level, msg string, fields gobgplog.Fields) {
	if !l.log.Enabled(context.Background(), level) {
		return
	}
	args := make([]any, 0, 2*len(fields))
	for k, v := range fields {
		args = append(args, k, v)
	}
	l.log.Log(context.Background(), level, msg, args...)
}

func (l logger) Panic(msg string, f gobgplog.Fields) { l.emit(slog.LevelError, msg, f); panic(msg) }
func (l logger) Fatal(msg string, f gobgplog.Fields) { l.emit(slog.LevelError, msg, f) }
func (l logger) Error(msg string, f gobgplog.Fields) { l.emit(slog.LevelError, msg, f) }
func (l logger) Warn(msg string, f gobgplog.Fields)  { l.emit(slog.LevelWarn, msg, f) }
func (l logger) Info(msg string, f gobgplog.Fields)  { l.emit(slog.LevelInfo, msg, f) }
func (l logger) Debug(msg string, f gobgplog.Fields) { l.emit(slog.LevelDebug, msg, f) }

func (l logger) SetLevel(gobgplog.LogLevel) {}

func (l logger) GetLevel() gobgplog.LogLevel {
	if l.log.Enabled(context.Background(), slog.LevelDebug) {
		return gobgplog.DebugLevel
	}
	return gobgplog.InfoLevel
}
