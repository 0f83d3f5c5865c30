// Package traffic sends and receives the lab's test traffic from inside
// its namespaces: the client's ARP and NDP prober (StartProbe), HTTP
// requests to the lab pods one at a time, in bulk or as fast as they go
// (Ask, Bulk, ConnRate), steady request streams (StartStream) and
// long-lived connections (HoldConns). It records what it saw, with
// times; judging those records is e2e/measure's.
package traffic
