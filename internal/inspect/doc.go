// Package inspect answers an operator's questions about a running ironlb
// from the objects it reads: which pools are full or invalid, what every
// speaker announces and how its BGP sessions are, why a Service has no
// address or no node announcing it, and who holds an address. It is
// pure: the caller (the kubectl-ironlb plugin) reads the objects into a
// Snapshot, and everything here is a function of that Snapshot, so the
// answers are tested from objects written in the tests.
//
// Two sources are compared. The NodeAnnouncements say what each speaker
// does right now (the layer 2 owner of an address, the prefixes a node
// advertises, its sessions); the configuration, resolved and planned the
// way the speakers do it (internal/config, internal/planner), says what
// they should do. Where the two differ, the difference is the next thing
// to check.
package inspect
