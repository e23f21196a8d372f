package load

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"time"
)

// Protocol is how a room load speaks to a server: how a connection joins
// a room, how it publishes, and how a delivery is recognised.
type Protocol interface {
	// URL returns the address a member of room dials.
	URL(base, room string) string
	// Join makes c, the member called nick, a member of room.
	Join(c *Conn, nick, room string) error
	// Publish returns the message that publishes text to room.
	Publish(dst []byte, room string, text []byte) []byte
	// Delivery returns the published text inside msg, or false when msg
	// is something else.
	Delivery(msg []byte) ([]byte, bool)
	// IsError reports whether msg is the server refusing something.
	IsError(msg []byte) bool
}

// Raw is the protocol of the baseline's room broadcast: the room is in the
// URL and a message is its own text.
type Raw struct{}

// URL adds the room to base's query.
func (Raw) URL(base, room string) string {
	u, err := url.Parse(base)
	if err != nil {
		return base
	}
	q := u.Query()
	q.Set("room", room)
	u.RawQuery = q.Encode()
	return u.String()
}

// Join waits for the server's "joined": dialing the URL joined the room.
func (Raw) Join(c *Conn, _, _ string) error {
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	defer c.SetReadDeadline(time.Time{})
	p, err := c.Read()
	if err != nil {
		return fmt.Errorf("join: %w", err)
	}
	if string(p) != "joined" {
		return fmt.Errorf("join: got %q, want \"joined\"", p)
	}
	return nil
}

// Publish returns text itself.
func (Raw) Publish(dst []byte, _ string, text []byte) []byte { return append(dst, text...) }

// Delivery returns msg itself.
func (Raw) Delivery(msg []byte) ([]byte, bool) { return msg, true }

// IsError is always false: the baseline refuses nothing.
func (Raw) IsError([]byte) bool { return false }

// Chat is Moongate's chat protocol (docs/chat-protocol.md): hello, join,
// say, and message deliveries.
type Chat struct{}

// URL returns base: rooms are joined by message.
func (Chat) URL(base, _ string) string { return base }

// Join says hello as nick and joins room, reading until each is confirmed.
func (Chat) Join(c *Conn, nick, room string) error {
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	defer c.SetReadDeadline(time.Time{})
	if err := request(c, map[string]string{"type": "hello", "nick": nick}, `"type":"welcome"`); err != nil {
		return err
	}
	return request(c, map[string]string{"type": "join", "room": room}, `"type":"joined"`)
}

// request sends msg and reads until a reply containing want, failing on an error reply.
func request(c *Conn, msg map[string]string, want string) error {
	b, _ := json.Marshal(msg)
	if err := c.WriteText(b); err != nil {
		return err
	}
	for {
		p, err := c.Read()
		if err != nil {
			return fmt.Errorf("%s: %w", msg["type"], err)
		}
		if bytes.Contains(p, []byte(want)) {
			return nil
		}
		if (Chat{}).IsError(p) {
			return fmt.Errorf("%s: %s", msg["type"], p)
		}
	}
}

// Publish returns a say message; text must need no JSON escaping.
func (Chat) Publish(dst []byte, room string, text []byte) []byte {
	dst = append(dst, `{"type":"say","room":"`...)
	dst = append(dst, room...)
	dst = append(dst, `","text":"`...)
	dst = append(dst, text...)
	return append(dst, `"}`...)
}

var (
	chatMessage = []byte(`"type":"message"`)
	chatText    = []byte(`"text":"`)
	chatError   = []byte(`"type":"error"`)
)

// Delivery returns the text of a message delivery.
func (Chat) Delivery(msg []byte) ([]byte, bool) {
	if !bytes.Contains(msg, chatMessage) {
		return nil, false
	}
	i := bytes.Index(msg, chatText)
	if i < 0 {
		return nil, false
	}
	rest := msg[i+len(chatText):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return nil, false
	}
	return rest[:j], true
}

// IsError reports an error reply.
func (Chat) IsError(msg []byte) bool { return bytes.Contains(msg, chatError) }

// ProtocolByName returns the protocol called name: "raw" or "chat".
func ProtocolByName(name string) (Protocol, error) {
	switch name {
	case "raw":
		return Raw{}, nil
	case "chat":
		return Chat{}, nil
	}
	return nil, fmt.Errorf("unknown protocol %q (want raw or chat)", name)
}
