// Package dockerfile reads a Dockerfile into the plain steps that strata's
// builder turns into an image chain: one Op per instruction that changes
// the image, with every Dockerfile-level substitution (ARG, ENV, build args,
// the TARGETPLATFORM family) already applied and every stage reference
// resolved.
//
// # Parser
//
// Parsing is done by BuildKit's own front end
// (github.com/moby/buildkit/frontend/dockerfile/parser and its instructions
// and shell packages), not by hand. It was picked over
// github.com/openshift/imagebuilder (which Buildah uses) because it is the
// reference implementation of the Dockerfile syntax and is kept current
// with it: heredocs (RUN <<EOF, COPY <<EOF), RUN --mount, --network and
// --device flags, COPY --link/--exclude/--parents, the escape directive and
// line continuations all come from it, with the line of every instruction
// for errors. imagebuilder carries an older copy of the same parser.
//
// # What Parse does itself
//
// Variable substitution follows the Dockerfile reference: ARGs before the
// first FROM are visible to FROM lines only, unless a stage declares them
// again; an ARG in a stage takes its value from the build arguments, else
// from its default, else from the global ARG of the same name; ENV wins
// over ARG; RUN commands are not substituted (the shell does that), but the
// ARGs in scope are passed to them as environment variables, and so take
// part in their cache keys. The predefined proxy arguments (HTTP_PROXY and
// friends) reach RUN steps when given as build arguments, without being
// declared and without entering any cache key. The base image's own
// environment, working directory and user are asked of the caller through
// Options.BaseConfig, so that ENV PATH=/x:$PATH extends the base's PATH.
//
// Errors carry the file, line and column of the instruction (Pos), and are
// all reported before anything runs.
package dockerfile
