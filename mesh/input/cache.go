package input

import "fmt"

// Cache makes decoding a new version of a stream cost its changed
// documents: a document whose bytes the last good version held is not
// decoded again, and the very objects decoded then are returned (at their
// new position in the stream), with the content hashes computed when they
// were decoded. Objects are immutable once decoded, so reusing them is
// safe; consumers tell unchanged objects by their hashes, so a document
// that changed only in formatting or comments is decoded again but reads
// as unchanged downstream.
//
// A Cache belongs to one stream (one file): it holds the documents of the
// last version that decoded without error, and a version with errors
// leaves it as it was. Documents that fail are decoded (and reported)
// every time. The zero Cache is ready; it is not safe for concurrent use.
type Cache struct {
	docs map[docKey]cachedDoc
}

// cachedDoc is what a document decoded to, with its key.
type cachedDoc struct {
	key  docKey
	objs []Object
}

// docKey identifies a document by its bytes and how it is read (YAML, or
// one JSON value). The bytes themselves are the key: comparing them is
// cheaper than hashing them cryptographically, and the cache holds at
// most one file's worth (the provider bounds file sizes).
type docKey struct {
	data string
	json bool
}

// Decode is Decode reusing the objects of unchanged documents.
func (c *Cache) Decode(source string, data []byte) ([]Object, error) {
	return decode(source, data, c)
}

// reuse adds the objects a document decoded to before, at its position in
// this stream, checking for duplicates as a decode would.
func (d *decoder) reuse(doc rawDoc, objs []Object) {
	for _, o := range objs {
		o.Origin.Source, o.Origin.Doc, o.Origin.Line = d.source, doc.doc, doc.line
		id := objectID{o.Kind, o.Key}
		if prev, dup := d.seen[id]; dup {
			d.fail(o.Origin, o.Kind, o.Key, "", fmt.Errorf("duplicate object, first defined at %s", prev))
			continue
		}
		d.seen[id] = o.Origin
		d.objs = append(d.objs, o)
	}
}
