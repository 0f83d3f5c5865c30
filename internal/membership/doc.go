// Package membership keeps the set of speakers that are alive, using a
// memberlist (SWIM gossip) cluster of all speakers. It answers one question,
// "which speakers are alive?", and says when the answer changes; deciding who
// announces an address from that set is the election package's job.
//
// A Cluster is built with New (which starts nothing) and runs in Run, which
// creates the memberlist, joins the peers it is given (again and again while
// one of them is not a member), reports changes of the alive set through a
// callback, and when its context ends leaves the cluster, so that the others
// drop it at once instead of after a failure timeout. Each member may
// advertise a few opaque bytes of metadata (Options.Meta) that the others
// read in Members.
//
// Nothing is published before the first join is settled: Alive and Members
// are nil, and the callback is not called, until a join has brought in the
// whole cluster's state, or peers names nobody but this member, or
// Options.JoinTimeout has passed without reaching any peer (the member then
// takes itself to be alone). A starting speaker therefore never believes
// itself the only one, and claims every address, while the others are
// still there.
//
// Failure detection is tuned for layer 2 failover. With the speaker's
// defaults (probe interval 80ms, probe timeout 40ms, suspicion multiplier
// 2, gossip interval 100ms) a speaker that dies without leaving is dropped by
// every other speaker of a cluster of fewer than ten 0.25 to about 0.55
// seconds after it died (median about 0.35s measured over five members); a
// speaker that leaves is dropped within a gossip interval or two. README.md
// explains the arithmetic and each timing that was chosen.
package membership
