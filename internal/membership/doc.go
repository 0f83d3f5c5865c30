// Package membership keeps the set of speakers that are alive, using a
// memberlist (SWIM gossip) cluster of all speakers. It answers one question,
// "which speakers are alive?", and says when the answer changes; deciding who
// announces an address from that set is the election package's job.
//
// A Cluster is built with New (which starts nothing) and runs in Run, which
// creates the memberlist, joins the peers it is given (again and again while
// one of them is not a member), reports changes of the alive set through a
// callback, and when its context ends leaves the cluster, so that the others
// drop it at once instead of after a failure timeout.
//
// Failure detection is tuned for layer 2 failover. With the speaker's
// defaults (probe interval 100ms, probe timeout 50ms, suspicion multiplier
// 2, gossip interval 100ms) a speaker that dies without leaving is dropped by
// every other speaker of a cluster of fewer than ten 0.3 to about 0.6
// seconds after it died (median about 0.4s measured over five members); a
// speaker that leaves is dropped within a gossip interval or two. README.md
// explains the arithmetic and each timing that was chosen.
package membership
