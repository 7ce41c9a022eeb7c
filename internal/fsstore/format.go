package fsstore

import (
	"encoding/binary"
	"errors"
	"math"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/regioncache/regioncache/backends"
)

// On-disk entry format, version 1 (all integers little-endian):
//
//	off  size  field
//	0    4     magic "RCE\x1a"
//	4    1     format version (1)
//	5    1     kind: 1 filesystem value, 2 rawfs metadata
//	6    2     flags: bit 0 = creation time is the zero time.Time,
//	                  bit 1 = wide time (see below)
//	8    8     created, Unix nanoseconds (wide time: Unix seconds)
//	16   8     schema version
//	24   4     key length K
//	28   4     number of tags T
//	32   8     payload length P
//	[40  4     wide time only: nanoseconds within the second]
//	40   K     key bytes (at 44 with wide time)
//	..         T times: 4-byte tag length, tag bytes
//	..   P     payload
//	end  8     xxhash64 of every preceding byte
//
// The whole file is the unit of atomicity: it is written to a temporary file
// and renamed into place. A file whose length, magic, version, kind, key or
// checksum does not match is not an entry.
const (
	magic         = "RCE\x1a"
	FormatVersion = 1
	headerSize    = 40
	trailerSize   = 8

	// KindValue marks a filesystem backend entry.
	KindValue byte = 1
	// KindFile marks a rawfs metadata entry, whose payload names its data file.
	KindFile byte = 2

	flagZeroTime = 1
	flagWideTime = 2 // creation time outside Unix nanoseconds' range (1678-2262)
)

// Errors from decoding. All of them mean "not a usable entry": a miss.
var (
	ErrCorrupt     = errors.New("fsstore: corrupt entry")
	ErrOldFormat   = errors.New("fsstore: entry format version not supported")
	ErrWrongKey    = errors.New("fsstore: entry belongs to another key")
	ErrWrongKind   = errors.New("fsstore: entry written by another backend kind")
	maxHeaderBytes = 64 << 20 // key plus tags
)

// wideTime reports whether t needs the wide encoding: Unix nanoseconds in
// an int64 cover only the years 1678 to 2262.
func wideTime(t time.Time) bool {
	return !t.IsZero() && !time.Unix(0, t.UnixNano()).Equal(t)
}

func metaSize(key string, e *backends.Entry) int {
	n := headerSize + len(key)
	if wideTime(e.Created) {
		n += 4
	}
	tags := e.Tags
	for _, t := range tags {
		n += 4 + len(t)
	}
	return n
}

// appendHeader appends the header, key and tags for an entry with a payload
// of length plen.
func appendHeader(b []byte, kind byte, key string, e *backends.Entry, plen int) []byte {
	b = append(b, magic...)
	b = append(b, FormatVersion, kind)
	var flags uint16
	var created int64
	wide := wideTime(e.Created)
	switch {
	case e.Created.IsZero():
		flags |= flagZeroTime
	case wide:
		flags |= flagWideTime
		created = e.Created.Unix()
	default:
		created = e.Created.UnixNano()
	}
	b = binary.LittleEndian.AppendUint16(b, flags)
	b = binary.LittleEndian.AppendUint64(b, uint64(created))
	b = binary.LittleEndian.AppendUint64(b, uint64(int64(e.Version)))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(key)))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(e.Tags)))
	b = binary.LittleEndian.AppendUint64(b, uint64(plen))
	if wide {
		b = binary.LittleEndian.AppendUint32(b, uint32(e.Created.Nanosecond()))
	}
	b = append(b, key...)
	for _, t := range e.Tags {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(t)))
		b = append(b, t...)
	}
	return b
}

// Encode returns the complete file for an entry with payload p.
func Encode(kind byte, key string, e *backends.Entry, p []byte) []byte {
	n := metaSize(key, e) + len(p) + trailerSize
	b := make([]byte, 0, n)
	b = appendHeader(b, kind, key, e, len(p))
	b = append(b, p...)
	return binary.LittleEndian.AppendUint64(b, xxhash.Sum64(b))
}

// Header is a decoded entry header.
type Header struct {
	Kind       byte
	Key        string
	Entry      backends.Entry // Payload not set
	PayloadOff int
	PayloadLen int64
}

// parseHeader decodes the header of an entry file of total length size
// from b, a prefix of the file. need > 0 means b is too short: read at least
// need bytes and retry. It checks lengths against size but not the checksum.
// wantKey, when non-nil, must equal the stored key (compared without
// allocating); the key string is then not materialised unless withKey.
func parseHeader(b []byte, size int64, wantKind byte, wantKey *string, withKey, withTags bool) (h Header, need int, err error) {
	if size < headerSize+trailerSize {
		return h, 0, ErrCorrupt
	}
	if len(b) < headerSize {
		return h, headerSize, nil
	}
	if string(b[:4]) != magic {
		return h, 0, ErrCorrupt
	}
	if b[4] != FormatVersion {
		return h, 0, ErrOldFormat
	}
	h.Kind = b[5]
	if wantKind != 0 && h.Kind != wantKind {
		return h, 0, ErrWrongKind
	}
	flags := binary.LittleEndian.Uint16(b[6:])
	created := int64(binary.LittleEndian.Uint64(b[8:]))
	version := int64(binary.LittleEndian.Uint64(b[16:]))
	klen := int64(binary.LittleEndian.Uint32(b[24:]))
	ntags := int64(binary.LittleEndian.Uint32(b[28:]))
	plen := binary.LittleEndian.Uint64(b[32:])
	if plen > math.MaxInt64 || klen+ntags*4 > int64(maxHeaderBytes) || version > math.MaxInt || version < math.MinInt {
		return h, 0, ErrCorrupt
	}
	var ext int64
	if flags&flagWideTime != 0 {
		ext = 4
	}
	off := int64(headerSize) + ext + klen
	if off+ntags*4+int64(plen)+trailerSize > size || int64(plen) > size {
		// Checked before anything is allocated from these lengths.
		return h, 0, ErrCorrupt
	}
	if h.Kind == KindFile && plen > maxRefPayload {
		return h, 0, ErrCorrupt
	}
	if int64(len(b)) < off {
		return h, int(off), nil
	}
	key := b[headerSize+ext : off]
	if wantKey != nil && string(key) != *wantKey {
		return h, 0, ErrWrongKey
	}
	if withKey {
		if wantKey != nil {
			h.Key = *wantKey
		} else {
			h.Key = string(key)
		}
	}
	if withTags && ntags > 0 {
		h.Entry.Tags = make([]string, 0, ntags)
	}
	for range ntags {
		if off+4 > size {
			return h, 0, ErrCorrupt
		}
		if int64(len(b)) < off+4 {
			return h, int(off + 4), nil
		}
		tl := int64(binary.LittleEndian.Uint32(b[off:]))
		off += 4
		if off+tl > size || off-headerSize-ext > int64(maxHeaderBytes) {
			return h, 0, ErrCorrupt
		}
		if int64(len(b)) < off+tl {
			return h, int(off + tl), nil
		}
		if withTags {
			h.Entry.Tags = append(h.Entry.Tags, string(b[off:off+tl]))
		}
		off += tl
	}
	if off+int64(plen)+trailerSize != size {
		return h, 0, ErrCorrupt
	}
	switch {
	case flags&flagZeroTime != 0:
	case ext > 0:
		ns := binary.LittleEndian.Uint32(b[headerSize:])
		if ns >= 1e9 {
			return h, 0, ErrCorrupt
		}
		h.Entry.Created = time.Unix(created, int64(ns))
	default:
		h.Entry.Created = time.Unix(0, created)
	}
	h.Entry.Version = int(version)
	h.PayloadOff = int(off)
	h.PayloadLen = int64(plen)
	return h, 0, nil
}

// Decode checks and decodes a complete entry file. The returned payload
// aliases data.
func Decode(data []byte, kind byte, key string) (backends.Entry, error) {
	h, need, err := parseHeader(data, int64(len(data)), kind, &key, false, true)
	if err != nil {
		return backends.Entry{}, err
	}
	if need > 0 {
		return backends.Entry{}, ErrCorrupt
	}
	end := len(data) - trailerSize
	if xxhash.Sum64(data[:end]) != binary.LittleEndian.Uint64(data[end:]) {
		return backends.Entry{}, ErrCorrupt
	}
	e := h.Entry
	e.Payload = data[h.PayloadOff:end:end]
	return e, nil
}

// maxRefPayload bounds a rawfs metadata payload (a FileRef: 8 bytes and a
// 54-byte name).
const maxRefPayload = 4096

// preflight checks the fixed header hdr (at least headerSize bytes) of an
// entry file whose real size (fstat) is size, so that nothing is allocated
// from a length the file cannot hold: the key, tag and payload lengths must
// add up to exactly size. A file grown behind the cache's back (truncate -s
// 1T) fails here, before its contents are read.
func preflight(hdr []byte, size int64) error {
	if size < headerSize+trailerSize || len(hdr) < headerSize || string(hdr[:4]) != magic {
		return ErrCorrupt
	}
	klen := int64(binary.LittleEndian.Uint32(hdr[24:]))
	ntags := int64(binary.LittleEndian.Uint32(hdr[28:]))
	plen := binary.LittleEndian.Uint64(hdr[32:])
	if plen > uint64(size) {
		return ErrCorrupt
	}
	if hdr[5] == KindFile && plen > maxRefPayload {
		return ErrCorrupt
	}
	var ext int64
	if binary.LittleEndian.Uint16(hdr[6:])&flagWideTime != 0 {
		ext = 4
	}
	tagBytes := size - headerSize - ext - trailerSize - klen - int64(plen)
	if tagBytes < 4*ntags || tagBytes > int64(maxHeaderBytes) || klen > int64(maxHeaderBytes) {
		return ErrCorrupt
	}
	return nil
}
