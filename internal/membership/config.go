package membership

import (
	"time"

	"github.com/hashicorp/memberlist"
)

// memberlistConfig derives memberlist's configuration from validated
// options. memberlist changes the value it is given (it fills in the keyring
// and the bound port), so every Run builds a fresh one.
func (c *Cluster) memberlistConfig() *memberlist.Config {
	conf := memberlist.DefaultLANConfig()
	c.setIdentity(conf)
	c.setEncryption(conf)
	c.setDelegates(conf)
	setFailureDetection(conf, c.opts)
	setStateExchange(conf)

	// Kept at memberlist's defaults on purpose: GossipNodes 3 and
	// RetransmitMult 4 (every message reaches all members in a few gossip
	// rounds), and AwarenessMaxMultiplier 8, which stretches only this
	// member's own probing when it is itself unhealthy (it misses acks that
	// others answer), so a CPU-starved speaker does not accuse healthy ones;
	// the others still probe it at full speed.
	return conf
}

// setIdentity sets this member's name and where it listens and is reached.
func (c *Cluster) setIdentity(conf *memberlist.Config) {
	o := c.opts
	conf.Name = o.Name
	if o.Transport != nil {
		conf.Transport = o.Transport
	} else {
		conf.BindAddr = o.BindAddr.String()
		conf.AdvertiseAddr = o.BindAddr.String()
	}
	conf.BindPort = o.Port
	conf.AdvertisePort = o.Port
}

// setEncryption sets the keyring, when there is a key.
func (c *Cluster) setEncryption(conf *memberlist.Config) {
	o := c.opts
	if o.Key != nil {
		// New checked every key, so the keyring cannot be refused.
		ring, err := memberlist.NewKeyring(o.SecondaryKeys, o.Key)
		if err != nil {
			panic("membership: keyring of checked keys refused: " + err.Error())
		}
		conf.Keyring = ring
		// Both are memberlist's defaults, repeated because they are what
		// keeps a speaker without the key out: it neither accepts nor sends
		// anything unencrypted.
		conf.GossipVerifyIncoming = true
		conf.GossipVerifyOutgoing = true
	}
}

// setDelegates connects memberlist's events, metadata and log to the
// cluster.
func (c *Cluster) setDelegates(conf *memberlist.Config) {
	o := c.opts
	conf.Events = events{c}
	if len(o.Meta) > 0 {
		// Only with metadata: without it this member must look exactly like
		// one of a release that had none.
		conf.Delegate = metaDelegate{o.Meta}
	}
	conf.Logger = newStdLogger(c.log)
}

// setFailureDetection sets how members are probed and how long a member
// that fails a probe is suspected before it is declared dead.
func setFailureDetection(conf *memberlist.Config, o Options) {
	// The four timings the speaker exposes as flags. Each member probes one
	// other member every ProbeInterval; a probe that gets no direct answer
	// within ProbeTimeout asks IndirectChecks other members to try, and
	// fails at the end of the interval. The prober then suspects the member
	// for SuspicionMult × max(1, log10(members)) × ProbeInterval before it
	// declares it dead and gossips that, every GossipInterval, to
	// GossipNodes members.
	conf.ProbeInterval = o.ProbeInterval
	conf.ProbeTimeout = o.ProbeTimeout
	conf.GossipInterval = o.GossipInterval
	conf.SuspicionMult = o.SuspicionMult

	// memberlist starts a suspicion timer at SuspicionMaxTimeoutMult times
	// the minimum when it expects confirmations from other probers
	// (SuspicionMult > 2 and enough members), and shortens it as they
	// arrive. Its default of 6 would let a suspicion that no one else
	// confirms (a partition, or members that have not probed yet) run six
	// times longer than configured; 2 bounds that. With the default
	// SuspicionMult of 2 no confirmations are expected and the timer is
	// always the minimum, so this does not matter there.
	conf.SuspicionMaxTimeoutMult = 2

	// Indirect probes run inside the same probe interval as the direct one,
	// so they cost no detection time; they keep one bad link between two
	// nodes from evicting a healthy speaker. memberlist's default.
	conf.IndirectChecks = 3
}

// setStateExchange sets how members exchange their whole state, and how
// long the dead are remembered.
func setStateExchange(conf *memberlist.Config) {
	// The default of 10s bounds dialling a peer for a join, a push/pull
	// state exchange and reading from a stream. On a LAN these take
	// milliseconds; a peer whose node is powered off never answers, and
	// waiting 10s for it holds up the join loop and anti-entropy. (The TCP
	// fallback of a probe is bounded by the probe interval, not by this.)
	conf.TCPTimeout = time.Second

	// A full state exchange with one random member. It is what repairs views
	// that gossip left different (a lost packet, a partition that healed)
	// and how a speaker that was wrongly declared dead learns it and
	// refutes. Two speakers that disagree about who is alive may both
	// announce an address, or neither may, so disagreement should not last
	// the default 30s. memberlist lengthens the interval by itself beyond
	// 32 members.
	conf.PushPullInterval = 5 * time.Second

	// How long a dead member is still gossiped to (so that a speaker that
	// was declared dead by mistake hears it and refutes at once) and kept in
	// the member list. Gossip sent to a dead member is not sent to a live
	// one, so a long window slows dissemination a little. After one
	// push/pull interval the wrongly accused speaker has learned it from its
	// own push/pull anyway, hence the same value (memberlist's default
	// reasoning too).
	conf.GossipToTheDeadTime = conf.PushPullInterval

	// A speaker that restarts under its node's name with a different
	// address or port must be accepted at once, not rejected as a name
	// conflict until the dead entry expires. Any positive value lets a
	// member that is dead or left (never one that is alive or suspect) take
	// a new address; zero would mean never. A restart at the same address
	// needs no reclaim: the new process refutes its old death with a higher
	// incarnation.
	conf.DeadNodeReclaimTime = time.Nanosecond
}
