// Package allocator decides which addresses LoadBalancer Services hold. It
// is a pure state machine: no I/O, no clocks, deterministic for the same
// sequence of calls.
//
// Cost per allocation does not depend on pool size. Each pool keeps, per
// address family, a cursor that only moves forward through its ranges and
// hands out addresses never used before; an address the cursor passes
// while it is held, cooling down or .0/.255 under avoidBuggyIPs is skipped
// once, so a cursor's whole life costs O(addresses handed out + skipped).
// Released addresses wait in a FIFO and are handed out again only when the
// cursor has run out, oldest first, so an address that clients may still
// cache is reused as late as possible.
//
// A Service keeps its addresses for life: Assign keeps what the Service
// holds (or, after a restart, what its status shows) as long as the request
// still allows it, and an address whose pool disappears stays with its
// Service, reported as outside every pool, rather than being taken away.
//
// A sharing key joins Services of one namespace only, unless the address's
// pool allows sharing across namespaces; what is refused across namespaces
// is explained without naming the other Service (sharing.go).
//
// Exclusions (exclusions.go) are addresses a pool holds that are never
// handed out anew: Nodes' addresses and the Service CIDR, given by the
// controller. The cursor walks the pool's ranges with them carved out and
// counts leave them out; a Service that held one before it was excluded
// keeps it, like an address outside every pool.
package allocator
