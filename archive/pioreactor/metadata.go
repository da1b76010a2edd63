package pioreactor

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"
)

// MetadataFile is the name of the metadata entry at the root of a unit's
// archive (under "<unit>/" in a cluster archive). Pioreactor 25.11 and later
// write it; when an archive holds it twice, the last entry is the current one.
const MetadataFile = "pioreactor_export_metadata.json"

// Metadata is the content of pioreactor_export_metadata.json.
type Metadata struct {
	MetadataVersion int    `json:"metadata_version"`
	Name            string `json:"name"` // the exporting unit's hostname
	LeaderHostname  string `json:"leader_hostname"`
	IsLeader        bool   `json:"is_leader"`
	AppVersion      string `json:"app_version"`
	// ExportedAtUTC is ISO 8601 UTC with milliseconds and a Z suffix.
	ExportedAtUTC string `json:"exported_at_utc"`
}

// ParseMetadata decodes pioreactor_export_metadata.json. Unknown keys are
// ignored and missing keys stay zero, as Pioreactor itself only reads "name".
func ParseMetadata(data []byte) (Metadata, error) {
	var m Metadata
	if !utf8.Valid(data) {
		return m, errors.New("parse " + MetadataFile + ": not valid UTF-8: the archive's metadata is corrupt")
	}
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return m, errors.New("parse " + MetadataFile + ": not a JSON object: the archive's metadata is corrupt")
	}
	if err := json.Unmarshal(trimmed, &m); err != nil {
		return Metadata{}, fmt.Errorf("parse %s: %w", MetadataFile, err)
	}
	return m, nil
}

// ExportedAt parses ExportedAtUTC.
func (m Metadata) ExportedAt() (time.Time, error) {
	if m.ExportedAtUTC == "" {
		return time.Time{}, fmt.Errorf("%s of %q has no exported_at_utc", MetadataFile, m.Name)
	}
	t, err := time.Parse(time.RFC3339Nano, m.ExportedAtUTC)
	if err != nil {
		return time.Time{}, fmt.Errorf("%s of %q: exported_at_utc %q is not an ISO 8601 UTC time: %w", MetadataFile, m.Name, m.ExportedAtUTC, err)
	}
	return t.UTC(), nil
}

// Marshal encodes m exactly as Pioreactor's json.dumps does: keys in the
// order of the struct, ", " and ": " separators, non-ASCII escaped as
// lowercase \uXXXX, no trailing newline.
func (m Metadata) Marshal() []byte {
	var b []byte
	b = append(b, `{"metadata_version": `...)
	b = strconv.AppendInt(b, int64(m.MetadataVersion), 10)
	b = append(b, `, "name": `...)
	b = appendPyString(b, m.Name)
	b = append(b, `, "leader_hostname": `...)
	b = appendPyString(b, m.LeaderHostname)
	b = append(b, `, "is_leader": `...)
	b = strconv.AppendBool(b, m.IsLeader)
	b = append(b, `, "app_version": `...)
	b = appendPyString(b, m.AppVersion)
	b = append(b, `, "exported_at_utc": `...)
	b = appendPyString(b, m.ExportedAtUTC)
	return append(b, '}')
}

// appendPyString appends s as Python's json.dumps(ensure_ascii=True) does.
func appendPyString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	u4 := func(b []byte, r rune) []byte {
		return append(b, '\\', 'u', hex[r>>12&0xf], hex[r>>8&0xf], hex[r>>4&0xf], hex[r&0xf])
	}
	b = append(b, '"')
	for _, r := range s {
		switch {
		case r == '"':
			b = append(b, '\\', '"')
		case r == '\\':
			b = append(b, '\\', '\\')
		case r == '\n':
			b = append(b, '\\', 'n')
		case r == '\r':
			b = append(b, '\\', 'r')
		case r == '\t':
			b = append(b, '\\', 't')
		case r == '\b':
			b = append(b, '\\', 'b')
		case r == '\f':
			b = append(b, '\\', 'f')
		case r >= 0x20 && r <= 0x7e:
			b = append(b, byte(r))
		case r > 0xffff:
			r -= 0x10000
			b = u4(b, 0xd800|(r>>10)&0x3ff)
			b = u4(b, 0xdc00|r&0x3ff)
		default:
			b = u4(b, r)
		}
	}
	return append(b, '"')
}
