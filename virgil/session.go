package virgil

import (
	"crypto/rand"
	"crypto/sha512"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
)

// Group session constants (docs/virgil-protocol.md section 6).
const (
	// MinGroupIDLength is the minimum UTF-8 length of an E3Kit group id.
	MinGroupIDLength = 10
	// SessionIDSize is the length of a group session id.
	SessionIDSize = 32
	// EpochKeySize is the length of an epoch key.
	EpochKeySize = 32
	// maxGroupMessageSize is the largest serialized group message.
	maxGroupMessageSize = 30188
)

// ErrGroupIDTooShort is returned when a group id has fewer than
// MinGroupIDLength UTF-8 bytes; E3Kit cannot load such a group.
var ErrGroupIDTooShort = errors.New("virgil: group id shorter than 10 bytes")

// ErrMalformedGroupMessage is returned (wrapped) by the group message parsers.
var ErrMalformedGroupMessage = errors.New("virgil: malformed group message")

// SessionID returns the group session id of groupID: SHA-512(UTF-8)[0:32].
func SessionID(groupID string) ([]byte, error) {
	if len(groupID) < MinGroupIDLength {
		return nil, fmt.Errorf("virgil: group %q: %w", groupID, ErrGroupIDTooShort)
	}
	h := sha512.Sum512([]byte(groupID))
	return h[:SessionIDSize], nil
}

// SessionPath returns hex(SessionID(groupID)), the Keyknox path of the group.
func SessionPath(groupID string) (string, error) {
	id, err := SessionID(groupID)
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(id), nil
}

// EpochMessage is the epoch ticket payload: the session id, the epoch number
// and its key. The key is secret: String, Format and MarshalJSON omit it.
type EpochMessage struct {
	// SessionID is the 32-byte group session id.
	SessionID []byte
	// Epoch is the epoch number.
	Epoch uint32
	// Key is the 32-byte epoch key.
	Key []byte
}

// NewEpochMessage returns an epoch message with a fresh random key read from
// r (crypto/rand when nil).
func NewEpochMessage(sessionID []byte, epoch uint32, r io.Reader) (*EpochMessage, error) {
	if len(sessionID) != SessionIDSize {
		return nil, fmt.Errorf("virgil: new epoch: session id of %d bytes: %w", len(sessionID), ErrMalformedGroupMessage)
	}
	if r == nil {
		r = rand.Reader
	}
	key := make([]byte, EpochKeySize)
	if _, err := io.ReadFull(r, key); err != nil {
		return nil, fmt.Errorf("virgil: new epoch: random: %w", err)
	}
	return &EpochMessage{SessionID: append([]byte(nil), sessionID...), Epoch: epoch, Key: key}, nil
}

// Marshal returns the protobuf bytes the library emits:
// 08 00 12 len 0a 20 <sessionId> 10 <varint epoch> 1a 20 <key>.
func (m *EpochMessage) Marshal() []byte {
	var info []byte
	info = appendBytesField(info, 1, m.SessionID)
	info = append(info, 0x10)
	info = binary.AppendUvarint(info, uint64(m.Epoch))
	info = appendBytesField(info, 3, m.Key)
	out := []byte{0x08, 0x00}
	return appendBytesField(out, 2, info)
}

// String describes m without its key.
func (m *EpochMessage) String() string {
	return fmt.Sprintf("epoch %d of session %x (key %s)", m.Epoch, m.SessionID, redacted)
}

// Format prints String for every verb, so the key never appears.
func (m *EpochMessage) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, m.String()) }

// MarshalJSON returns the session id and epoch; the key is REDACTED.
func (m *EpochMessage) MarshalJSON() ([]byte, error) {
	return fmt.Appendf(nil, `{"session_id":"%x","epoch":%d,"key":"%s"}`, m.SessionID, m.Epoch, redacted), nil
}

func appendBytesField(b []byte, field int, v []byte) []byte {
	b = binary.AppendUvarint(b, uint64(field<<3|2))
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

// protoField is one decoded protobuf field.
type protoField struct {
	num    int
	wire   int
	varint uint64
	bytes  []byte
}

// readProto decodes the fields of a protobuf message without recursion.
// Slices alias b.
func readProto(b []byte) ([]protoField, error) {
	var out []protoField
	for len(b) > 0 {
		tag, n := binary.Uvarint(b)
		if n <= 0 || tag>>3 == 0 || tag>>3 > 1<<29 {
			return nil, fmt.Errorf("virgil: tag: %w", ErrMalformedGroupMessage)
		}
		b = b[n:]
		f := protoField{num: int(tag >> 3), wire: int(tag & 7)}
		switch f.wire {
		case 0:
			v, n := binary.Uvarint(b)
			if n <= 0 {
				return nil, fmt.Errorf("virgil: varint: %w", ErrMalformedGroupMessage)
			}
			f.varint, b = v, b[n:]
		case 1, 5:
			size := 8
			if f.wire == 5 {
				size = 4
			}
			if len(b) < size {
				return nil, fmt.Errorf("virgil: fixed field: %w", ErrMalformedGroupMessage)
			}
			f.bytes, b = b[:size], b[size:]
		case 2:
			l, n := binary.Uvarint(b)
			if n <= 0 || l > uint64(len(b)-n) {
				return nil, fmt.Errorf("virgil: length: %w", ErrMalformedGroupMessage)
			}
			b = b[n:]
			f.bytes, b = b[:l], b[l:]
		default:
			return nil, fmt.Errorf("virgil: wire type %d: %w", f.wire, ErrMalformedGroupMessage)
		}
		out = append(out, f)
	}
	return out, nil
}

// groupMessageBody returns the wrapped message of a GroupMessage: field 2
// (group info) or field 3 (regular message).
func groupMessageBody(b []byte) (num int, body []byte, err error) {
	if len(b) > maxGroupMessageSize {
		return 0, nil, fmt.Errorf("virgil: group message larger than %d bytes: %w", maxGroupMessageSize, ErrMalformedGroupMessage)
	}
	fields, err := readProto(b)
	if err != nil {
		return 0, nil, err
	}
	for _, f := range fields {
		if (f.num == 2 || f.num == 3) && f.wire == 2 {
			if body != nil {
				return 0, nil, fmt.Errorf("virgil: group message with both info and message: %w", ErrMalformedGroupMessage)
			}
			num, body = f.num, f.bytes
		}
	}
	if body == nil {
		return 0, nil, fmt.Errorf("virgil: group message without content: %w", ErrMalformedGroupMessage)
	}
	return num, body, nil
}

// sessionEpochFields reads fields 1 (32 bytes), 2 (uint32 varint) and 3
// (32 bytes) shared by MessageGroupInfo and RegularGroupMessageHeader.
func sessionEpochFields(b []byte, what string) (session []byte, epoch uint32, third []byte, err error) {
	fields, err := readProto(b)
	if err != nil {
		return nil, 0, nil, err
	}
	var haveEpoch bool
	for _, f := range fields {
		switch {
		case f.num == 1 && f.wire == 2:
			session = f.bytes
		case f.num == 2 && f.wire == 0:
			if f.varint > 0xffffffff {
				return nil, 0, nil, fmt.Errorf("virgil: %s epoch overflows uint32: %w", what, ErrMalformedGroupMessage)
			}
			epoch, haveEpoch = uint32(f.varint), true
		case f.num == 3 && f.wire == 2:
			third = f.bytes
		}
	}
	if len(session) != SessionIDSize || !haveEpoch || len(third) != 32 {
		return nil, 0, nil, fmt.Errorf("virgil: %s needs a 32-byte session id, an epoch and 32 bytes: %w", what, ErrMalformedGroupMessage)
	}
	return session, epoch, third, nil
}

// ParseEpochMessage parses an epoch message (a GroupMessage carrying group
// info). The result does not alias b.
func ParseEpochMessage(b []byte) (*EpochMessage, error) {
	num, body, err := groupMessageBody(b)
	if err != nil {
		return nil, fmt.Errorf("virgil: parse epoch message: %w", err)
	}
	if num != 2 {
		return nil, fmt.Errorf("virgil: parse epoch message: a regular message: %w", ErrMalformedGroupMessage)
	}
	session, epoch, key, err := sessionEpochFields(body, "group info")
	if err != nil {
		return nil, fmt.Errorf("virgil: parse epoch message: %w", err)
	}
	return &EpochMessage{SessionID: append([]byte(nil), session...), Epoch: epoch, Key: append([]byte(nil), key...)}, nil
}

// GroupMessageHeader is the clear header of a regular group message.
type GroupMessageHeader struct {
	// SessionID is the group session id.
	SessionID []byte
	// Epoch is the epoch whose key encrypted the message.
	Epoch uint32
	// Salt is the 32-byte key derivation salt.
	Salt []byte
	// Signature is the sender's 64-byte Ed25519 signature of CipherText.
	Signature []byte
	// CipherText is the encrypted, padded message.
	CipherText []byte
}

// ParseGroupMessage parses the header of a regular group message (for
// diagnostics; the owner never decrypts member messages). Slices alias b.
func ParseGroupMessage(b []byte) (*GroupMessageHeader, error) {
	num, body, err := groupMessageBody(b)
	if err != nil {
		return nil, fmt.Errorf("virgil: parse group message: %w", err)
	}
	if num != 3 {
		return nil, fmt.Errorf("virgil: parse group message: an epoch message: %w", ErrMalformedGroupMessage)
	}
	fields, err := readProto(body)
	if err != nil {
		return nil, fmt.Errorf("virgil: parse group message: %w", err)
	}
	h := &GroupMessageHeader{}
	var header []byte
	for _, f := range fields {
		if f.wire != 2 {
			continue
		}
		switch f.num {
		case 1:
			header = f.bytes
		case 2:
			h.Signature = f.bytes
		case 3:
			h.CipherText = f.bytes
		}
	}
	if header == nil || len(h.Signature) != 64 {
		return nil, fmt.Errorf("virgil: parse group message: header and 64-byte signature required: %w", ErrMalformedGroupMessage)
	}
	h.SessionID, h.Epoch, h.Salt, err = sessionEpochFields(header, "message header")
	if err != nil {
		return nil, fmt.Errorf("virgil: parse group message: %w", err)
	}
	return h, nil
}
