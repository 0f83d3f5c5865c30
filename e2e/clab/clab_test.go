// Package clab keeps the containerlab topology in step with the lab.
package clab

import (
	"os"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/ironlb/ironlb/e2e/lab"
)

type topology struct {
	Name     string `json:"name"`
	Topology struct {
		Nodes map[string]struct {
			Kind  string   `json:"kind"`
			Image string   `json:"image"`
			Binds []string `json:"binds"`
			Exec  []string `json:"exec"`
		} `json:"nodes"`
		Links []struct {
			Endpoints []string `json:"endpoints"`
		} `json:"links"`
	} `json:"topology"`
}

func TestTopologyMatchesTheLab(t *testing.T) {
	data, err := os.ReadFile("ironlb.clab.yml")
	if err != nil {
		t.Fatal(err)
	}
	var topo topology
	if err := yaml.UnmarshalStrict(data, &topo); err != nil {
		t.Fatalf("ironlb.clab.yml does not parse: %v", err)
	}
	p, err := lab.NewPlan("ilb", 3)
	if err != nil {
		t.Fatal(err)
	}
	// Every participant of the lab is a node of the topology, named as the
	// lab names its namespace (without the lab's prefix), with its address.
	want := map[string][]string{
		short(p, p.Router.NetNS): {p.Router.Addr.String(), p.Router.Addr6.String()},
		short(p, p.Client.NetNS): {p.Client.Addr.String(), p.Client.Addr6.String()},
		short(p, p.Remote.NetNS): {p.Remote.Addr.String(), p.Remote.Addr6.String()},
	}
	for _, n := range p.Nodes {
		want[n.Name] = []string{n.Addr.String(), n.Addr6.String()}
	}
	for name, addrs := range want {
		node, ok := topo.Topology.Nodes[name]
		if !ok {
			t.Errorf("the topology has no node %q", name)
			continue
		}
		for _, addr := range addrs {
			if !slices.ContainsFunc(node.Exec, func(c string) bool { return strings.Contains(c, "addr add "+addr+" ") }) {
				t.Errorf("node %q does not get the lab's address %s: %v", name, addr, node.Exec)
			}
		}
	}
	// LAN members are linked to the LAN bridge; the router to the remote.
	var links []string
	for _, l := range topo.Topology.Links {
		links = append(links, strings.Join(l.Endpoints, " "))
	}
	for name := range want {
		if name == "remote" {
			continue
		}
		if !slices.ContainsFunc(links, func(l string) bool { return strings.HasPrefix(l, name+":") && strings.Contains(l, " lan:"+name) }) {
			t.Errorf("node %q is not linked to the LAN bridge: %v", name, links)
		}
	}
	if !slices.Contains(links, "rtr:eth2 remote:eth1") {
		t.Errorf("the router is not linked to the remote client: %v", links)
	}
	if topo.Topology.Nodes["lan"].Kind != "bridge" {
		t.Error("lan is not a bridge")
	}
	// The router's BGP configuration names the lab's nodes.
	conf, err := os.ReadFile("router/frr.conf")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range p.Nodes {
		for _, a := range []string{n.Addr.Addr().String(), n.Addr6.Addr().String()} {
			if !strings.Contains(string(conf), "neighbor "+a+" remote-as 64512") || !strings.Contains(string(conf), "neighbor "+a+" activate") {
				t.Errorf("router/frr.conf lacks node %s as an active neighbour", a)
			}
		}
	}
}

func short(p lab.Plan, ns string) string { return strings.TrimPrefix(ns, p.Name+"-") }
