/* reflection.h -- grpc.reflection.v1 and grpc.reflection.v1alpha ServerReflection on every
 * server, answered from the FileDescriptorSet of proto/ that the build embeds in the runtime
 * (cmake: protoc --include_imports --descriptor_set_out), so generic tools (grpcurl, Postman,
 * grpcui) list, describe and call the services without the .proto files. The same index tells
 * the runtime which methods are streaming, which protobuf-c descriptors do not say.
 *
 * The index is built once before the server starts and is read-only afterwards: lookups take
 * no lock. */
#ifndef LOYALTY_REFLECTION_H
#define LOYALTY_REFLECTION_H

#include "embed.h"
#include "rpc.h"

#include <stddef.h>

#define REFLECTION_FILES_MAX 256
#define REFLECTION_SERVICES_MAX 16
#define REFLECTION_NAME_MAX 256 /* a fully-qualified symbol or file name, in bytes */

/** The runtime's embedded descriptor set: one entry "loyalty.desc", then the {0} end. */
extern const embed_file_t runtime_descriptor_set[];

/** Indexes a serialized google.protobuf.FileDescriptorSet (borrowed: it must outlive the index,
 *  as the embedded one does). INTERNAL when it is malformed or over the limits. Replaces any
 *  previous index. */
status_t reflection_init(const unsigned char *set, size_t len);

/** Frees the index (and the list of services). */
void reflection_dispose(void);

/** Adds a fully-qualified service name to what list_services answers (at most
 *  REFLECTION_SERVICES_MAX, before the server starts; later names are ignored). */
void reflection_register_service(const char *full_name);

/** The index of the file that defines `symbol` (a package-qualified service, method, message,
 *  field, oneof, enum or enum value, without a leading dot), or -1. */
int reflection_find_symbol(const char *symbol);

/** The index of the file named `name` ("loyalty/v1/member.proto"), or -1. */
int reflection_find_file(const char *name);

/** The file and its transitive dependencies, each once, the file first: writes up to `max` file
 *  indexes to `out` and returns how many. */
size_t reflection_file_closure(int file, int *out, size_t max);

/** The serialized FileDescriptorProto of a file (borrowed from the set) and its name. */
const unsigned char *reflection_file_bytes(int file, size_t *len_out);
const char *reflection_file_name(int file);

/** 1 when the method at `path` ("/pkg.Service/Method") streams in either direction, 0 when it
 *  is unary, -1 when the set does not know it. */
int reflection_method_streaming(const char *path);

/** The ServerReflectionInfo handlers (RPC_STREAM), one per protocol version. */
extern const rpc_service_t reflection_v1_service;
extern const rpc_service_t reflection_v1alpha_service;

#endif
