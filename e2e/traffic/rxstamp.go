package traffic

// The kernel stamps a received packet with its arrival time only while
// some socket on the machine asks for receive times; the first socket to
// ask turns that on from a work queue, a moment later, and the last to
// close turns it off the same way. A packet that arrives unstamped is
// stamped when it is read, which is what the prober must not do
// (receivedAt). So the first prober opens a socket of its own that asks
// for receive times for as long as the process lives, and checks that
// stamping is on before any prober starts.

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

var (
	stampingOnce sync.Once
	stampingErr  error
)

// receiveTimesOn makes sure the kernel stamps every received packet
// from now on, for the life of the process.
func receiveTimesOn() error {
	stampingOnce.Do(func() { stampingErr = keepStamping() })
	return stampingErr
}

// keepStamping opens a loopback UDP socket that asks for receive times
// (SO_TIMESTAMPNS) and is never closed, then sends itself a datagram and
// reads it a while later until the datagram's stamp is its arrival, not
// its reading: stamping is on.
func keepStamping() error {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return fmt.Errorf("receive times: %w", err)
	}
	raw, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1)
	}); err != nil || serr != nil {
		return fmt.Errorf("receive times: SO_TIMESTAMPNS: %w", errors.Join(err, serr))
	}
	const wait = 20 * time.Millisecond
	buf, oob := make([]byte, 16), make([]byte, 128)
	for range 100 {
		sent := time.Now()
		if _, err := c.WriteToUDP([]byte("t"), c.LocalAddr().(*net.UDPAddr)); err != nil {
			return fmt.Errorf("receive times: %w", err)
		}
		time.Sleep(wait)
		_, oobn, _, _, err := c.ReadMsgUDP(buf, oob)
		if err != nil {
			return fmt.Errorf("receive times: %w", err)
		}
		at, err := stampOf(oob[:oobn])
		if err != nil {
			return err
		}
		if at.Sub(sent) < wait/2 {
			return nil // stamped on arrival: the socket is kept open
		}
	}
	return errors.New("receive times: the kernel kept stamping packets when they were read, not when they arrived")
}

// stampOf reads the SO_TIMESTAMPNS time from a datagram's control
// messages.
func stampOf(oob []byte) (time.Time, error) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return time.Time{}, fmt.Errorf("receive times: %w", err)
	}
	for _, m := range msgs {
		if m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SO_TIMESTAMPNS && len(m.Data) >= int(unsafe.Sizeof(unix.Timespec{})) {
			ts := *(*unix.Timespec)(unsafe.Pointer(&m.Data[0]))
			return time.Unix(ts.Unix()), nil
		}
	}
	return time.Time{}, errors.New("receive times: a datagram came without its receive time")
}
