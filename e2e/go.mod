module github.com/ironlb/ironlb/e2e

go 1.26.0

require (
	github.com/vishvananda/netlink v1.3.1
	github.com/vishvananda/netns v0.0.5
)

require golang.org/x/sys v0.48.0 // indirect

replace github.com/ironlb/ironlb => ../
