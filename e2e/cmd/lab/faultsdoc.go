package main

// faultsDesign is the part of docs/faults.md that does not change from one
// measurement to the next: what ironlb promises under each fault, and why.
// measure-faults writes it above the figures.
const faultsDesign = `## What the design promises

### A starting speaker answers nothing until it has joined

memberlist reports a new member alive to itself at once; a speaker that
ranked owners on that view would claim every address it is eligible for,
and give them back a moment later, resetting connections each time. A
speaker therefore publishes no membership, answers no ARP or NDP, and is
not ready (` + "`/readyz`" + `) until it has joined another speaker, which
exchanges the whole member list, or has shown that it is alone: no other
speaker pod is known, or none could be reached within
` + "`memberlist.joinTimeout`" + ` (5 s, ` + "`--memberlist-join-timeout`" + `), after
which it logs a warning and keeps retrying the others every 10 s.

### Partitions and fencing

When speakers cannot reach each other, each side would otherwise elect an
owner for every address and both would answer. With
` + "`speaker.fencing: quorum`" + ` (the default) a speaker answers in layer 2
only while the members it sees alive are a majority of the speakers it
knows of. The known speakers are the speaker pods that the API server
reports ready, not being deleted, on nodes not reported down, plus every
member seen alive; they are read from the informer caches, so while the API
server cannot be reached the last known ones count. An even split goes to
the half that holds the known speaker first by name. The NodeAnnouncement
shows KNOWN and, with ` + "`-o wide`" + `, why a node is FENCED; the node records
` + "`Fenced`" + ` and ` + "`Unfenced`" + ` events.

What follows from the rule:

- **A single node cut off** (cable pulled, memberlist port blocked) sees
  itself alone among three or more known speakers and stops answering as
  soon as memberlist declares the others dead, at about the time they
  declare it dead and take its addresses over. When the cable comes back
  it stays silent until it has rejoined (the speakers retry each other
  every 10 s), then takes back the addresses it ranks first for; the
  speaker that held them stops as soon as it hears the returning owner's
  gratuitous ARP or NA, so that the two do not answer together.
- **Two-node clusters.** A split leaves one speaker on each side; the
  first by name keeps answering, the other goes silent. The same holds
  when the first node's speaker crashes: the second takes over only once
  the API server reports the crashed speaker's pod unready (the kubelet
  does within a second or two) or its node down (after the node monitor's
  grace period, about 40 s, when the whole node is gone). A rolling update
  deletes the pod before stopping the speaker, so it is not delayed. Set
  ` + "`speaker.fencing: off`" + ` on a two-node cluster that prefers availability
  to a single answerer.
- **A split with no majority** (a three-way split, or an even split of a
  cluster where the first node is down) leaves the addresses unanswered
  in layer 2 until the network heals. BGP is not fenced: each node
  advertises to its own routers, which choose.
- **The API server down** does not change the known speakers: a speaker
  that crashes during the outage is replaced in layer 2 by the next in
  rank as usual, as long as a majority remains.

### API-server outages

Nothing on the path from a membership change to an answer reads the API
server: the sync reads the informer caches, which keep their last state,
and status writes, events and Secret reads run in goroutines of their
own. BGP password Secrets are read every minute and on every configuration
change, each read bounded by 5 s; a read that fails or times out leaves
the last password read in use, and only a definite answer (the Secret not
found, its key missing or not a valid password) disables the peer.
Forwarding rules stay as they are. When the API server returns, the
informers resynchronise and the speakers converge without restarting.

### Rotating the memberlist key

memberlist accepts traffic under every key in a speaker's keyring and
sends with the first. Rotating in three rollouts (the new key as secondary,
then as primary with the old one secondary, then alone; see
[install.md](install.md#rotating-the-memberlist-key)) keeps every pair of
speakers sharing a key, so they stay one cluster: only the speaker
restarting is missing.

### Crash-only

A speaker that cannot run (its metrics port taken, say) exits with the
error rather than hanging, and the DaemonSet restarts it. The
NodeAnnouncement writer retries a failed write only when no newer status
arrived meanwhile, so an older status never overwrites a newer one.
`
