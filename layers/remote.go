package layers

// # Remote cache format (registry)
//
// A remote cache is one repository in an OCI registry ("cache repository",
// e.g. registry.example.com/team/strata-cache), in the model of kaniko's
// --cache-repo. The entry for key sha256:<hex> is an ordinary OCI image
// tagged <repo>:<hex> (RemoteTag: the key's 64 lowercase hex digits, which
// are valid tag characters). The image is the committed image of that step,
// with all of its layers, its config and its history, exactly as the store
// holds it (layers gzip-compressed).
//
// Because an entry names all its layers, the registry's blob deduplication
// does the sharing: pushing step N uploads only the layer that step N added
// (the parent's blobs are already there), and pulling step N into a store
// that holds step N-1 downloads only that layer. A reader pins the tag to
// its manifest digest before copying, and every blob is checked against its
// digest, so a corrupted blob fails the pull and is never used.
//
// Writers never coordinate: a key digests everything that determines the
// step's result, so two runners that push the same tag push the same
// content (same config, same files), and the last writer wins only among
// equivalent images. A missing tag, or a tag whose blobs were deleted, is a
// miss. An entry may carry the manifest annotation RemoteKeyAnnotation with
// its key; a reader that finds the annotation with another key treats the
// entry as a miss. (strata's writer does not add it yet: Buildah's push
// offers no way to set manifest annotations without rewriting the image.)

// RemoteKeyAnnotation is the manifest annotation that may name an entry's
// key ("sha256:<hex>") in a cache repository.
const RemoteKeyAnnotation = "org.stratabuild.cache.key"

// RemoteTag returns the tag of key k's entry in a cache repository: the
// key's 64 hex digits.
func RemoteTag(k Key) string { return k.Hex() }
